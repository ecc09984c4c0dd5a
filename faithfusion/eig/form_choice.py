"""The written rule that picks FaithFusion's default EIG form from the training-seed summary.

docs/record/2026-12-04-eig-analysis-many-scenes.md (added 2026-12-05): among `fisherrf`, `faithfusion` and
`pixel`, the form with the highest mean AUROC for `unobserved` pixels, averaged over 3 m and 6 m, on the training
seeds only; if the best is within 0.01 of `fisherrf` (best - fisherrf <= 0.01), the paper's `fisherrf` stays.
The summary is `faithfusion eig-analysis --runs ...`'s eig_analysis.json over the training seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from faithfusion.errors import UserError

CANDIDATES: tuple[str, ...] = ("fisherrf", "faithfusion", "pixel")
REFERENCE = "fisherrf"
SHIFTS: tuple[str, ...] = ("3.0", "6.0")
MEASURE = "auroc_unobserved"
MARGIN = 0.01


class FormChoiceError(UserError, ValueError):
    """A summary that lacks what the rule reads."""


@dataclass
class FormChoice:
    chosen: str
    best: str  # the highest-scoring candidate (may differ from `chosen` by the margin rule)
    scores: dict[str, float] = field(default_factory=dict)  # candidate -> mean over SHIFTS of the mean measure
    per_shift: dict[str, dict[str, float]] = field(default_factory=dict)  # shift -> candidate -> mean measure

    def text(self) -> str:
        lines = [f"{MEASURE} (mean over |shift| {' and '.join(SHIFTS)} m; training seeds):"]
        for f, s in self.scores.items():
            shifts = ", ".join(f"{k} m {self.per_shift[k][f]:.3f}" for k in SHIFTS)
            lines.append(f"  {f:<12} {s:.4f}  ({shifts})")
        gap = self.scores[self.best] - self.scores[REFERENCE]
        why = (f"{self.best} beats {REFERENCE} by {gap:.4f} > {MARGIN}" if self.chosen != REFERENCE
               else f"best {self.best}, {gap:+.4f} over {REFERENCE} (<= {MARGIN}): {REFERENCE} stays")
        lines.append(f"chosen: {self.chosen} ({why})")
        return "\n".join(lines)


def choose_form(summary: dict, source: str = "summary") -> FormChoice:
    """Apply the rule to a training-seed summary dict; `source` names it in errors."""
    per_shift = summary.get("per_shift") if isinstance(summary, dict) else None
    if not isinstance(per_shift, dict):
        raise FormChoiceError(f"{source}: no 'per_shift' table (not an `eig-analysis --runs` summary)")
    table: dict[str, dict[str, float]] = {}
    for key in SHIFTS:
        entry = per_shift.get(key)
        if not isinstance(entry, dict) or "maps" not in entry:
            raise FormChoiceError(f"{source}: no rows for |shift| {key} m (has {', '.join(per_shift) or 'none'})")
        row = {}
        for f in CANDIDATES:
            cell = entry["maps"].get(f, {}).get(MEASURE)
            mean = cell.get("mean") if isinstance(cell, dict) else None
            if mean is None:
                raise FormChoiceError(f"{source}: no {MEASURE} mean for form {f!r} at |shift| {key} m")
            row[f] = float(mean)
        table[key] = row
    scores = {f: sum(table[k][f] for k in SHIFTS) / len(SHIFTS) for f in CANDIDATES}
    best = max(CANDIDATES, key=lambda f: scores[f])  # ties: the first in CANDIDATES (fisherrf first)
    chosen = best if scores[best] - scores[REFERENCE] > MARGIN + 1e-12 else REFERENCE  # "within" is inclusive
    return FormChoice(chosen, best, scores, table)


def choose_form_file(path: Path) -> FormChoice:
    from faithfusion.utils.jsonio import read_json

    return choose_form(read_json(Path(path), FormChoiceError), str(path))
