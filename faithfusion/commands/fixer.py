"""`faithfusion fixer NAME`: curation, training, merging and evaluation of the fixers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from faithfusion.curation import CurateConfig, curate
from faithfusion.fixers.dataset import MergeConfig, merge_indexes
from faithfusion.fixers.train import FixerTrainConfig, train_fixer


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class FixerEvaluateConfig:
    """Held-out figures of an image fixer: PSNR / LPIPS of its output with and without the reference view."""

    index: Path
    """The curated dataset's index.json."""
    model: Path
    """A saved fixer folder (from_pretrained layout)."""
    split: str = "test"
    kinds: tuple[str, ...] = ("lane_shift",)
    """Sample kinds to evaluate (none given = all)."""
    shifts: tuple[float, ...] = (3.0,)
    """|shift| of the samples in metres (none given = all)."""
    device: str | None = None
    """cuda or cpu (None: cuda where there is one)."""
    lpips_weights: Path | None = None
    """LPIPS weights file (default: the usual search)."""
    max_samples: int = 0
    """Evaluate at most this many samples (0 = all)."""
    out: Path | None = None
    """Write the figures as JSON here."""


def run_fixer_evaluate(cfg: FixerEvaluateConfig) -> dict:
    from faithfusion.fixers.load import load_fixer
    from faithfusion.fixers.evaluate import evaluate_fixer_on_index

    res = evaluate_fixer_on_index(load_fixer(cfg.model), cfg.index, cfg.split, cfg.kinds or None, cfg.shifts or None,
                                  cfg.device or default_device(), lpips_weights=cfg.lpips_weights,
                                  max_samples=cfg.max_samples)
    res.update(model=str(cfg.model), index=str(cfg.index))
    print(json.dumps(res, indent=2))
    if cfg.out is not None:
        Path(cfg.out).write_text(json.dumps(res, indent=2) + "\n")
    return res


@dataclass
class FixerEvaluateVideoConfig:
    """Held-out figures of a video fixer (EIGent or GenFusion): image figures, the warp error between consecutive
    frames, the change in the lowest-EIG half and depth abs rel; optionally against a Difix run frame by frame."""

    index: Path
    """The curated dataset's index.json."""
    model: Path
    """A saved video fixer folder (EIGent or GenFusion)."""
    difix: Path | None = None
    """A saved Difix folder to compare with, frame by frame."""
    split: str = "test"
    shifts: tuple[float, ...] = (3.0,)
    """Final |shift| of the windows in metres (none given = all)."""
    device: str | None = None
    """cuda or cpu (None: cuda where there is one)."""
    lpips_weights: Path | None = None
    max_samples: int = 0
    """Evaluate at most this many windows (0 = all)."""
    override: tuple[str, ...] = ()
    """KEY=JSON: a config field of the video fixer to change for this evaluation, e.g. range_quantile=0."""
    warp: bool = True
    """Compute the warp errors (CPU-heavy); --no-warp: depth and image figures only."""
    out: Path | None = None
    """Write the figures as JSON here."""


def run_fixer_evaluate_video(cfg: FixerEvaluateVideoConfig) -> dict:
    from faithfusion.fixers.load import load_fixer
    from faithfusion.fixers.evaluate_video import evaluate_video_fixer_on_index, parse_overrides

    overrides = parse_overrides(list(cfg.override))
    res = evaluate_video_fixer_on_index(load_fixer(cfg.model, **overrides), cfg.index, cfg.split, cfg.shifts or None,
                                        load_fixer(cfg.difix) if cfg.difix else None, cfg.device or default_device(),
                                        cfg.lpips_weights, cfg.max_samples, warp=cfg.warp,
                                        log=lambda m: print(m, file=sys.stderr, flush=True))
    res.update(model=str(cfg.model), overrides=overrides, difix=str(cfg.difix) if cfg.difix else None, index=str(cfg.index))
    print(json.dumps(res, indent=2))
    if cfg.out is not None:
        Path(cfg.out).write_text(json.dumps(res, indent=2) + "\n")
    return res


def fixer_commands() -> dict[str, tuple[type, object, str]]:
    """`faithfusion fixer NAME` -> (config class, the function that runs it, one-line description)."""
    return {
        "curate": (CurateConfig, curate, "curate fixer training data from reconstructions"),
        "train": (FixerTrainConfig, train_fixer, "train a fixer on a curated dataset"),
        "merge": (MergeConfig, merge_indexes, "merge curated datasets into one index"),
        "evaluate": (FixerEvaluateConfig, run_fixer_evaluate, "held-out figures of an image fixer"),
        "evaluate-video": (FixerEvaluateVideoConfig, run_fixer_evaluate_video, "held-out figures of a video fixer"),
    }
