"""Configuration of a fusion run: `FuseConfig` (the `faithfusion fuse` command) and one schedule per method.

Step numbers in a schedule are the published ones, for `reference_steps` of training; a run with
`--steps N` scales every one of them by N / reference_steps (`Schedule.at`), so the same schedule runs
as a tiny CPU test and as the published one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from faithfusion.train.config import ReconConfig

MethodName = Literal["3dgs", "difix3d", "difix3d+", "genfusion", "faithfusion", "faithfusion+"]


@dataclass
class Schedule:
    """Shared timing fields: the published step numbers and the budget they were written for."""

    reference_steps: int = 30_000

    def at(self, step: int, total: int) -> int:
        """A published step number scaled to a run of `total` steps (at least 1)."""
        return max(1, round(step * total / self.reference_steps))


@dataclass
class Difix3DSchedule(Schedule):
    """Difix3D: progressive novel poses, 0.5 m per round toward the targets; a round every 2000 steps."""

    warmup: int = 2000
    """First round at this step (published steps)."""
    every: int = 2000
    step_metres: float = 0.5
    target_shifts: tuple[float, ...] = (6.0, -6.0)
    """Lane shifts (metres, left +) of the target cameras: every training frame at each shift."""
    max_rounds: int = 0
    """0 = rounds until the end of training (rounds after the targets are reached re-fix at the targets)."""
    probability: float = 0.3
    """Chance that a step draws a novel view (0.7 real / 0.3 novel)."""
    paired: bool = False
    """True: a novel view is added on top of the step's captured view instead of replacing it (not Difix3D's recipe)."""
    loss_weight: float = 0.3
    alpha_min: float = 0.5
    """Novel-view pixels with rendered alpha below this do not count."""


@dataclass
class GenFusionSchedule(Schedule):
    """GenFusion: warm-up, then a repair cycle every 1000 steps that replaces the regularisation pool."""

    warmup: int = 1000
    every: int = 1000
    window: int = 16
    """Frames per RGB-D window along the novel path."""
    shifts: tuple[float, ...] = (2.0, -2.0, 4.0, -4.0, 6.0, -6.0)
    lam: float = 1.0
    """Peak regularisation weight: lam * sin(pi * (it - start) / (until - start))."""
    until: int = 0
    """End of the regularisation (published steps; 0 = the end of training)."""
    probability: float = 0.3
    paired: bool = False
    """True: the regularisation view is added on top of the step's captured view instead of replacing it."""
    sparsity: bool = True
    """Sparsity-aware densification (strategy "sparsity": no opacity reset, visibility-gated growth)."""
    crop: bool = False
    """Masked reconstruction protocol: the captured images count only in their central H/2 x W/2 crop (the
    repair windows also run along the captured path); evaluation on full frames."""


@dataclass
class FaithFusionSchedule(Schedule):
    """FaithFusion: lane shift grows 1 m per round to 6 m; EIG-conditioned fixing and EIG-weighted L1."""

    first: int = 3000
    every: int = 2000
    step_metres: float = 1.0
    max_shift: float = 6.0
    sides: tuple[float, ...] = (1.0, -1.0)
    """Directions of the shift (left +1, right -1)."""
    video_until: float = 3.0
    """Use the video fixer (EIGent) while the shift is at most this (metres), Difix after; 0 = Difix at every
    shift (no video fixer is loaded)."""
    window: int = 16
    ramp: int = 9
    """Video rounds: the first window of each camera path ramps laterally from 0 to the shift over this many
    frames (as EIGent was trained); frames at shift 0 are context only and do not join the pool."""
    probability: float = 0.4
    paired: bool = True
    """True (default): a fused view is drawn on top of the step's captured view (its loss added to the step, so
    the captured views keep every step of the budget); False: instead of it (the captured views get 60 % of the
    steps after the first round). Chosen on training seed 0 at the quick demo size (2-core CPU,
    benchmarks/results/fusion_comparison_quick_cpu.json, "paired_selection"): unpaired 22.67 / 21.60 / 19.81 dB at
    0 / 3 / 6 m, paired 23.24 / 21.65 / 19.79 against 3DGS's 23.15 / 21.45 / 19.56."""
    loss_weight: float = 0.1
    """Pool loss weight on top of the per-pixel EIG weight, chosen among 0.1 / 0.3 / 1.0 on SynthStreet training
    seeds 0-2 at the quick demo size by a rule fixed beforehand (benchmarks/results/fusion_loss_weight_selection_cpu.json):
    no weight stayed within 0.5 dB of 3DGS at 0 m (0.1: -0.51, 0.3: -0.60, 1.0: -1.44), so the best 0 m PSNR, 0.1;
    0.3 was 0.11 dB better at 3-6 m."""
    calib_views: int = 8
    """Training views whose EIG maps calibrate the scale each round."""
    difix_blend: bool = True
    """Blend Difix's output with the render by the calibrated EIG soft mask (EIGent gates by EIG itself)."""
    view_stride: int = 1
    """Fuse every n-th captured frame of each camera per round (1 = all): fewer fused views, cheaper EIG."""
    post_fix_floor: float = 0.0
    """FaithFusion+ only: the share of the post-render Difix fix taken everywhere, the EIG gate adding the rest
    (gate = floor + (1 - floor) * soft mask; 0 = the EIG gate alone, 1 = the fix everywhere, as Difix3D+)."""


@dataclass
class FuseConfig(ReconConfig):
    """Reconstruct a scene with a fusion method: 3DGS plus repaired novel views on a schedule.

    Writes what `recon` writes; RUN/ckpt/round_XXX.pt holds the state at each round boundary
    (trainer, pools with their images, method state) and --resume continues from the last one."""

    method: MethodName = "faithfusion"
    steps: int = 30_000
    fixer: str | None = None
    """Difix folder (config.json + model.safetensors); `identity` = an untrained identity model (tests)."""
    video_fixer: str | None = None
    """Video fixer folder (EIGent for faithfusion, GenFusion for genfusion); `identity` as above."""
    no_eig: bool = False
    """FaithFusion ablation: uniform loss weights and an EIG condition of 1 everywhere."""
    stop_after_rounds: int = 0
    """Stop after this many completed rounds, as if interrupted (0 = run to the end)."""
    difix3d: Difix3DSchedule = field(default_factory=Difix3DSchedule)
    genfusion: GenFusionSchedule = field(default_factory=GenFusionSchedule)
    faithfusion: FaithFusionSchedule = field(default_factory=FaithFusionSchedule)


def as_fuse_config(cfg: ReconConfig, **overrides) -> FuseConfig:
    """A FuseConfig carrying `cfg`'s reconstruction settings (and its fusion settings if it has them)."""
    if isinstance(cfg, FuseConfig) and not overrides:
        return cfg
    values = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    values.update(overrides)
    return FuseConfig(**values)

