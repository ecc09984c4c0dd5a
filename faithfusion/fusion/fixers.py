"""Which fixer a fusion run uses: a saved folder, the project's shipped weights, or an identity model.

    --fixer DIR / --video-fixer DIR   load_fixer(DIR)
    (not given)                       faithfusion/fixers/weights/<name>/ if it is there, else an error
    --fixer identity                  an UNTRAINED, identity-initialised small model of the right class
                                      (zero-initialised output heads: it returns its input). For tests
                                      and plumbing only: the run's log and metrics.json say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from faithfusion.errors import UserError
from faithfusion.fixers.base import Fixer

WEIGHTS_ROOT = Path(__file__).resolve().parents[1] / "fixers" / "weights"
IDENTITY = "identity"


class MissingFixerError(UserError, FileNotFoundError):
    pass


@dataclass
class ChosenFixer:
    fixer: Fixer
    kind: str  # difix | eigent | genfusion
    source: str  # the folder it came from, or "identity"

    @property
    def identity(self) -> bool:
        return self.source == IDENTITY


def identity_fixer(kind: str) -> Fixer:
    """A small untrained model of `kind` whose zero-initialised heads make it return its input."""
    if kind == "difix":
        from faithfusion.fixers.difix import Difix, DifixConfig

        return Difix(DifixConfig(channels=(8, 16), dim=32, depth=1, heads=1)).eval()
    if kind == "eigent":
        from faithfusion.fixers.eigent import EIGent, EIGentConfig

        return EIGent(EIGentConfig(difix_channels=(8, 16), difix_dim=32, difix_depth=1, difix_heads=1, latent_channels=4,
                                   dim=32, heads=1, coarse_depth=1, fine_depth=1, context_width=8)).eval()
    if kind == "genfusion":
        from faithfusion.fixers.genfusion import GenFusion, GenFusionConfig

        return GenFusion(GenFusionConfig(channels=(8, 16), dim=32, heads=1, coarse_depth=1, fine_depth=1)).eval()
    raise ValueError(f"unknown fixer kind {kind!r} (difix | eigent | genfusion)")


def choose_fixer(spec: str | Path | None, kind: str, device: torch.device | str = "cpu", flag: str = "--fixer") -> ChosenFixer:
    """Resolve a `--fixer` / `--video-fixer` value for a fixer of `kind`."""
    from faithfusion.fixers.load import load_fixer

    if spec is not None and str(spec) == IDENTITY:
        print(f"WARNING: {flag} identity: using an UNTRAINED identity-initialised {kind} model; "
              "the fused views are plain renders and results say nothing about the fixer")
        return ChosenFixer(identity_fixer(kind).to(device), kind, IDENTITY)
    path = Path(spec) if spec is not None else WEIGHTS_ROOT / kind
    if not (path / "config.json").is_file():
        where = f"{flag} {path}" if spec is not None else f"the shipped default {path}"
        raise MissingFixerError(
            f"no {kind} fixer at {where} (config.json + model.safetensors missing); train one with "
            f"`faithfusion fixer train`, pass {flag} DIR, or pass {flag} identity for an untrained identity model"
        )
    return ChosenFixer(load_fixer(path, map_location=device).eval(), kind, str(path))
