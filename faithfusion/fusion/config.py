"""Configuration of a fusion run: one schedule per method and one config per kind of method (`faithfusion fuse METHOD`).

Step numbers in a schedule are the published ones, for `reference_steps` of training; a run with
`--steps N` scales every one of them by N / reference_steps (`Schedule.at`), so the same schedule runs
as a tiny CPU test and as the published one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from faithfusion.train.config import ReconConfig


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
    """True: a fused view is drawn on top of the step's captured view (its loss added to the step, so the captured
    views keep every step of the budget); False: instead of it (the captured views get 60 % of the steps after
    the first round)."""
    loss_weight: float = 0.1
    """Pool loss weight, on top of the per-pixel EIG weight."""
    calib_views: int = 8
    """Training views whose EIG maps calibrate the scale each round."""
    eig_form: Literal["fisherrf", "faithfusion", "pixel", "combined"] = "faithfusion"
    """The EIG map of the rounds (eig/maps.py): the paper's composited `fisherrf` / `faithfusion` (the default,
    chosen by the written form-choice rule on the training seeds: docs/eig.md), or `pixel`,
    the per-pixel split of the same bound 1/2 log(1 + Var_p / sigma^2) with its default prior (eig/pixel.py), or
    `combined`, the per-view rank mean of `pixel` and the render's image gradient (eig/combined.py; research: its
    per-view ranks drop the level of uncertainty across views)."""
    difix_blend: bool = True
    """Blend Difix's output with the render by the calibrated EIG soft mask (EIGent gates by EIG itself)."""
    view_stride: int | None = None
    """Fuse every n-th captured frame of each camera per round (1 = all): fewer fused views, cheaper EIG.
    None = 1 for `fuse`; the demo size's stride for `demo`."""
    h_train_refresh: int = 1
    """Recompute H_train over every remembered view every this many rounds (1 = every round: exact). In the
    rounds between, H_train is carried through densification (a clone or split copies its parent's Fisher, a
    prune drops it) at the cost of one index per Gaussian; strategies that do not follow their Gaussians'
    lineage (mcmc) recompute every round."""
    post_fix_floor: float = 0.0
    """FaithFusion+ only: the share of the post-render Difix fix taken everywhere, the EIG gate adding the rest
    (gate = floor + (1 - floor) * soft mask; 0 = the EIG gate alone, 1 = the fix everywhere, as Difix3D+)."""
    weighting: Literal["eig", "uniform", "shuffled", "none"] = "eig"
    """What the EIG maps of a fused view become (fusion/weighting.py; the ablation arms): `eig` the maps as
    computed; `uniform` each view's maps replaced by their own mean; `shuffled` each view's pixels permuted at
    random (one permutation per view, seeded); `none` no EIG at all (as `faithfusion-no-eig`). The loss weight,
    the fixer's EIG condition and Difix's blend mask all follow the same arm."""
    fused_share: float | None = None
    """Fraction of each step's expected photometric loss mass that comes from fused views (fusion/gradient_share.py):
    the pool's loss weight is set from it and `probability`; None = `loss_weight` as given (share about 0.04)."""
    share_views: int = 1
    """Fused views added to a step that draws the (paired) pool, each its own loss term with the pool's loss weight
    (1 = one, as before); `fused_share` accounts for it."""
    freeze_original: bool = False
    """Fused views' losses give no gradient to the Gaussians' positions and rotations (fusion/anti_drift.py)."""
    fused_lidar: bool = False
    """Each fused view carries its captured frame's lidar points as a depth loss in the shifted camera (scenes with
    lidar; the trainer's lidar term, weight --depth-lambda)."""
    pool: Literal["grow", "replace"] = "grow"
    """`grow`: each round's fused views join those of earlier rounds; `replace`: they replace them (as published)."""


@dataclass
class FuseConfig(ReconConfig):
    """Reconstruct a scene with a fusion method preset (the `faithfusion fuse METHOD` subcommands).

    Writes what `recon` writes; a method with rounds also writes RUN/ckpt/round_XXX.pt, the state at each
    round boundary (trainer, pools with their images, method state), and --resume continues from the last one."""

    steps: int = 30_000


@dataclass
class RoundsConfig(FuseConfig):
    """A method that trains in rounds of repaired novel views."""

    stop_after_rounds: int = 0
    """Stop after this many completed rounds, as if interrupted (0 = run to the end)."""


@dataclass
class Difix3DConfig(RoundsConfig):
    """Difix3D: progressive novel poses repaired by Difix."""

    fixer: str | None = None
    """Difix folder (config.json + model.safetensors); `identity` = an untrained identity model (tests)."""
    difix3d: Difix3DSchedule = field(default_factory=Difix3DSchedule)


@dataclass
class GenFusionConfig(RoundsConfig):
    """GenFusion: cyclic RGB-D repair of windows along the novel path."""

    video_fixer: str | None = None
    """GenFusion video fixer folder; `identity` = an untrained identity model (tests)."""
    genfusion: GenFusionSchedule = field(default_factory=GenFusionSchedule)


@dataclass
class FaithFusionConfig(RoundsConfig):
    """FaithFusion: EIG-conditioned fixing of lane-shifted views and EIG-weighted loss."""

    fixer: str | None = None
    """Difix folder (config.json + model.safetensors); `identity` = an untrained identity model, for the video
    fixer too unless --video-fixer is given (tests)."""
    video_fixer: str | None = None
    """EIGent video fixer folder; `identity` as above."""
    faithfusion: FaithFusionSchedule = field(default_factory=FaithFusionSchedule)


def fuse_config(cls: type[FuseConfig], recon: ReconConfig, **settings) -> FuseConfig:
    """A `cls` carrying `recon`'s reconstruction settings, plus those of `settings` that `cls` has."""
    names = {f.name for f in fields(cls)}
    values = {f.name: getattr(recon, f.name) for f in fields(recon) if f.name in names}
    values.update({k: v for k, v in settings.items() if k in names})
    return cls(**values)
