"""Which fixer a fusion run uses: a saved folder, the project's shipped weights, or an identity model.

    --fixer PATH / --video-fixer PATH load_fixer(PATH): a saved fixer folder, a published Difix pipeline folder
                                      (nvidia/difix, nvidia/difix_ref), a Difix3D .pkl, an SD-Turbo folder, or
                                      such a hub id from the local cache (docs/weights.md)
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
    from faithfusion.fixers.published import FixerSourceError

    if spec is not None and str(spec) == IDENTITY:
        print(f"WARNING: {flag} identity: using an UNTRAINED identity-initialised {kind} model; "
              "the fused views are plain renders and results say nothing about the fixer")
        return ChosenFixer(identity_fixer(kind).to(device), kind, IDENTITY)
    if spec is None:
        path = WEIGHTS_ROOT / kind
        if not (path / "config.json").is_file():
            raise MissingFixerError(
                f"no {kind} fixer at the shipped default {path} (config.json + model.safetensors missing); train one "
                f"with `faithfusion fixer train`, pass {flag} PATH, or pass {flag} identity for an untrained identity model"
            )
        return ChosenFixer(load_fixer(path, map_location=device).eval(), kind, str(path))
    # a saved fixer, a published Difix pipeline folder, a Difix3D .pkl or an SD-Turbo folder; path or cached hub id
    try:
        fixer = load_fixer(spec, map_location=device)
    except FixerSourceError as err:
        raise MissingFixerError(f"no {kind} fixer at {flag} {spec}: {err}") from err
    return ChosenFixer(fixer.eval(), kind, str(spec))
