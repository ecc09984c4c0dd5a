"""Configuration of a reconstruction run (the `faithfusion recon` command's options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass
class LearningRates:
    """Adam learning rates per parameter group (gsplat's simple_trainer defaults).

    `means` is multiplied by the scene scale and decays exponentially to `means_final_ratio`
    of its value over the run."""

    means: float = 1.6e-4
    means_final_ratio: float = 0.01
    scales: float = 5e-3
    quats: float = 1e-3
    opacities: float = 5e-2
    sh0: float = 2.5e-3
    shN: float = 2.5e-3 / 20
    sky: float = 1e-2


@dataclass
class InitConfig:
    """How the Gaussians start: the scene's points plus random points for unobserved space."""

    max_points: int = 300_000  # scene points kept (random subset above this)
    random_points: int = 50_000  # extra points: half in a ball at the look-at centre, half in a far shell
    ball_radius: float = 0.6  # in scene units (object scenes are normalised to camera radius 1)
    shell_radius: tuple[float, float] = (2.0, 10.0)  # inner and outer radius of the far shell
    opacity: float = 0.1
    scale: float = 1.0


@dataclass
class StrategyConfig:
    """Densification: gsplat's DefaultStrategy or MCMCStrategy, or a custom one by name."""

    name: Literal["default", "mcmc", "sparsity"] = "default"
    refine_start: int = 500
    refine_stop: int = 15_000
    refine_every: int = 100
    reset_every: int = 3000
    grow_grad2d: float = 0.0002
    absgrad: bool = False
    cap_max: int = 1_000_000  # MCMC: the number of Gaussians it grows to
    prune_opa: float = 0.005
    max_gaussians: int = 3_000_000  # safety cap for DefaultStrategy growth


@dataclass
class SceneGraphConfig:
    """Rigid vehicle nodes (`--scene-graph`): which tracks become nodes, their initial points, pruning, pose lrs."""

    min_trajectory: float = 1.0
    """Metres a vehicle track must travel over the scene to get a node (DriveStudio's traj_length_thres); parked ones stay background."""
    max_points: int = 5000
    """Lidar points kept per node (a random subset above this; DriveStudio's instance_max_pts)."""
    min_points: int = 500
    """Random points in the box fill a node up to this many where the lidar is thin."""
    box_margin: float = 1.1
    """Node Gaussians whose centre leaves the box scaled by this are pruned at each refinement."""
    lr_rotation: float = 1e-5
    """Adam learning rate of the per-frame rotation refinement (radians; DriveStudio's ins_rotation)."""
    lr_translation: float = 5e-4
    """Adam learning rate of the per-frame translation refinement (scene units; DriveStudio's ins_translation)."""


@dataclass
class ReconConfig:
    """Reconstruct a scene with 3D Gaussian Splatting.

    Writes RUN/config.yaml, RUN/ckpt/, RUN/point_cloud.ply, RUN/renders/ and RUN/metrics.json."""

    config: Path | None = None
    """Start from the flags of an earlier run: RUN/config.yaml (or RUN); flags given beside it override them."""
    data: Path = Path("data/scene")
    """Scene folder: DriveStudio layout, nerfstudio transforms.json, COLMAP sparse/0 or LLFF."""
    out: Path = Path("runs/recon")
    """Run folder to create (or to continue with --resume)."""
    steps: int = 7000
    device: Literal["auto", "cpu", "cuda"] = "auto"
    scale: float = 1.0
    """Image resolution factor applied to every camera (0.25 = quarter size)."""
    holdout_every: int = 8
    """Every k-th frame is held out for evaluation (0 = train on all)."""
    cameras: tuple[int, ...] = (0, 1, 2)
    """DriveStudio camera ids to load."""
    sh_degree: int = 3
    sh_degree_interval: int = 1000
    """Raise the active SH degree by one every this many steps."""
    ssim_lambda: float = 0.2
    """Loss = (1 - ssim_lambda) * L1 + ssim_lambda * (1 - SSIM)."""
    depth_lambda: float = 0.05
    """Weight of the lidar depth loss (driving scenes with lidar)."""
    sky_lambda: float = 0.05
    """Weight of the loss pushing alpha to 0 on sky-mask pixels."""
    appearance: bool = False
    """Learn a per-image affine colour transform (exposure, white balance) on the training images."""
    appearance_lr: float = 1e-3
    opacity_reg: float = 0.0
    scale_reg: float = 0.0
    lr: LearningRates = field(default_factory=LearningRates)
    init: InitConfig = field(default_factory=InitConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    ckpt_every: int = 2000
    eval_every: int = 0
    """Evaluate held-out views every this many steps (0 = only at the end)."""
    save_renders: bool = True
    resume: bool = False
    """Continue from the newest checkpoint in RUN/ckpt/."""
    overwrite: bool = False
    """Allow writing into a non-empty run folder without --resume."""
    seed: int = 0
    backend: Literal["auto", "torch", "gsplat"] = "auto"
    progress: bool = True
    max_eval_views: int = 0
    """Evaluate at most this many held-out views (0 = all)."""
    ply_global_frame: bool = False
    """Write RUN/point_cloud.ply in the dataset's global frame; by default it is recentred on the rounded mean
    camera centre (world = file + origin, the origin in the PLY's header comments and config.yaml)."""
    scene_graph: bool = False
    """Moving vehicles as rigid nodes placed by their tracks (instances/*.json) at each timestep (docs/scene_graph.md)."""
    graph: SceneGraphConfig = field(default_factory=SceneGraphConfig)


def check_recon_config(cfg: ReconConfig) -> None:
    """Refuse flag values that cannot make a run (NaN, out of range, CUDA without CUDA): FlagError naming the flag."""
    from faithfusion.utils.flags import FlagError, require_at_least, require_between, require_device, require_finite, require_positive

    require_at_least("--steps", cfg.steps, 1)
    require_positive("--scale", cfg.scale)
    require_at_least("--holdout-every", cfg.holdout_every, 0)
    require_between("--sh-degree", cfg.sh_degree, 0, 3)
    require_at_least("--sh-degree-interval", cfg.sh_degree_interval, 1)
    for flag in ("ssim_lambda", "depth_lambda", "sky_lambda", "opacity_reg", "scale_reg", "appearance_lr"):
        require_at_least("--" + flag.replace("_", "-"), getattr(cfg, flag), 0.0)
    require_between("--ssim-lambda", cfg.ssim_lambda, 0.0, 1.0)
    for name, value in vars(cfg.lr).items():
        require_at_least(f"--lr.{name.replace('_', '-')}", value, 0.0)
    require_at_least("--init.max-points", cfg.init.max_points, 1)
    require_at_least("--init.random-points", cfg.init.random_points, 0)
    require_finite("--init.scale", cfg.init.scale)
    require_between("--init.opacity", cfg.init.opacity, 0.0, 1.0)
    require_at_least("--ckpt-every", cfg.ckpt_every, 0)
    require_at_least("--eval-every", cfg.eval_every, 0)
    require_at_least("--max-eval-views", cfg.max_eval_views, 0)
    require_at_least("--graph.min-trajectory", cfg.graph.min_trajectory, 0.0)
    require_at_least("--graph.max-points", cfg.graph.max_points, 1)
    require_at_least("--graph.min-points", cfg.graph.min_points, 0)
    require_at_least("--graph.box-margin", cfg.graph.box_margin, 1.0)
    require_at_least("--graph.lr-rotation", cfg.graph.lr_rotation, 0.0)
    require_at_least("--graph.lr-translation", cfg.graph.lr_translation, 0.0)
    if cfg.resume and cfg.overwrite:
        raise FlagError("--resume continues the run folder and --overwrite replaces it: pass one of them")
    require_device("--device", cfg.device)
