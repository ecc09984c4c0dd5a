"""Which scenes does `--scenes` name? SynthStreet seeds to synthesise, scene folders, or globs of them."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from faithfusion.errors import UserError

SYNTH_PREFIX = "synth:"


class SceneListError(UserError, ValueError):
    """A --scenes entry that names no scene, or two scenes of one name."""


@dataclass(frozen=True)
class SceneSpec:
    """One scene of a batch: its name (unique in the batch), its folder, and its SynthStreet seed when it is synthesised."""

    name: str
    data: Path
    seed: int | None = None

    @property
    def synthesised(self) -> bool:
        return self.seed is not None


def parse_seeds(text: str) -> list[int]:
    """`3` -> [3]; `0-7` -> [0, ..., 7] (inclusive)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if m is None or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
        raise SceneListError(f"--scenes {SYNTH_PREFIX}{text}: give a seed (synth:3) or an inclusive range (synth:0-7)")
    lo = int(m.group(1))
    return list(range(lo, int(m.group(2) or lo) + 1))


def split_entries(scenes: str | tuple[str, ...] | list[str]) -> list[str]:
    """Entries of --scenes: comma-separated text or a tuple of them (each may itself hold commas)."""
    items = [scenes] if isinstance(scenes, str) else list(scenes)
    return [e.strip() for item in items for e in str(item).split(",") if e.strip()]


def parse_scenes(scenes: str | tuple[str, ...] | list[str], out: Path) -> list[SceneSpec]:
    """The scenes `--scenes` names, in order: `synth:SEED` or `synth:A-B` (synthesised into OUT/scenes/synth_SEED),
    a scene folder, or a glob of scene folders (`data/waymo/*`)."""
    specs: list[SceneSpec] = []
    for entry in split_entries(scenes):
        if entry.startswith(SYNTH_PREFIX):
            for seed in parse_seeds(entry[len(SYNTH_PREFIX):]):
                specs.append(SceneSpec(f"synth_{seed}", Path(out) / "scenes" / f"synth_{seed}", seed))
            continue
        if any(c in entry for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(str(Path(entry).expanduser())) if Path(p).is_dir())
            if not found:
                raise SceneListError(f"--scenes {entry}: the glob matches no folder")
            specs.extend(SceneSpec(p.name, p.resolve()) for p in found)
            continue
        path = Path(entry).expanduser()
        if not path.is_dir():
            raise SceneListError(f"--scenes {entry}: no such scene folder (a folder, a glob, or synth:SEED)")
        specs.append(SceneSpec(path.name, path.resolve()))
    if not specs:
        raise SceneListError("--scenes: no scene given (e.g. --scenes synth:0-7 or --scenes 'data/waymo/*')")
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SceneListError(f"--scenes: two scenes are named {', '.join(twice)} (the folder name names a scene's run)")
    return specs
