"""(a) How fast does the project's trainer train, against a minimal loop on the same scene and the same Gaussians?

The minimal loop is what a plain gsplat script does per iteration: draw a captured view, `gsplat.rasterization`,
(1 - l) L1 + l (1 - SSIM), backward, one Adam step per parameter group. No sky model, depth or sky losses, pools,
learning-rate schedule or densification statistics: whatever the trainer spends beyond it is its overhead.
Off CUDA, gsplat cannot run; the same loop is then timed with the project's torch rasterizer, and the JSON says so.
"""

from __future__ import annotations

import statistics
from typing import Callable

import torch
from torch import Tensor

from faithfusion.bench.info import gsplat_missing
from faithfusion.bench.timing import block_sizes, peak_memory, ratio, time_blocks
from faithfusion.gaussians.model import GaussianModel
from faithfusion.train.config import ReconConfig
from faithfusion.train.losses import photometric_loss
from faithfusion.train.optim import build_optimizers
from faithfusion.train.views import View

RasterFn = Callable[[GaussianModel, View], Tensor]
"""(model, view) -> RGB `[1, H, W, 3]`, differentiable."""


def gsplat_rgb(model: GaussianModel, view: View) -> Tensor:
    """`gsplat.rasterization` called directly (packed=False, RGB), at the model's full SH degree."""
    from gsplat import rasterization

    cam, p = view.camera, model.params
    rgb, _, _ = rasterization(
        p["means"], p["quats"], torch.exp(p["scales"]), torch.sigmoid(p["opacities"]),
        torch.cat([p["sh0"], p["shN"]], 1), cam.viewmat[None], cam.K[None], cam.width, cam.height,
        sh_degree=model.sh_degree, packed=False,
    )
    return rgb  # [1, H, W, 3]


def torch_rgb(model: GaussianModel, view: View) -> Tensor:
    """The project's pure-PyTorch rasterizer (the CPU stand-in for gsplat)."""
    from faithfusion.render import render

    cam = view.camera
    return render(model, cam.viewmat[None], cam.K[None], cam.width, cam.height, backend="torch").rgb  # [1, H, W, 3]


class MinimalLoop:
    """A training loop with nothing but a render, the photometric loss and Adam, on its own copy of the Gaussians."""

    def __init__(self, params: dict[str, Tensor], sh_degree: int, views: list[View], cfg: ReconConfig,
                 scene_scale: float, raster: RasterFn, seed: int = 0) -> None:
        self.model = GaussianModel({k: v.detach().clone() for k, v in params.items()}, sh_degree)
        # plain Adam, as gsplat's simple_trainer (the baseline the trainer's fused Adam is measured against)
        self.optimizers = build_optimizers(self.model, cfg.lr, scene_scale, fused=False)
        self.views, self.raster, self.ssim_lambda = views, raster, cfg.ssim_lambda
        self.generator = torch.Generator().manual_seed(seed)

    def step(self) -> None:
        k = int(torch.randint(len(self.views), (1,), generator=self.generator))
        view = self.views[k]
        target = view.image.float()[None] / 255.0  # [1, H, W, 3]
        loss = photometric_loss(self.raster(self.model, view), target, self.ssim_lambda)
        loss.backward()
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)


BLOCKS = 5
"""The timed steps are timed in this many blocks; the figures are the median block's."""


def loop_figures(step: Callable[[], object], device: torch.device, warmup: int, steps: int, n_gaussians: Callable[[], int]) -> dict:
    """Iterations per second of `step` at the median of `BLOCKS` blocks of its timed steps, and the peak memory."""
    with peak_memory(device) as mem:
        blocks = time_blocks(step, device, warmup=warmup, calls=steps, blocks=BLOCKS)
    per_step = [s / n for s, n in zip(blocks, block_sizes(steps, len(blocks)))]
    median = statistics.median(per_step)
    return {"steps": steps, "warmup_steps": warmup, "seconds": sum(blocks), "block_seconds": blocks,
            "iterations_per_second": 1.0 / median, "ms_per_iteration": 1e3 * median,
            "ms_per_iteration_overall": 1e3 * sum(blocks) / steps, "peak_memory_gib": mem.gib,
            "peak_memory_above_start_gib": mem.above_start_gib, "num_gaussians": n_gaussians()}


def bench_training(trainer, warmup: int, steps: int) -> dict:
    """The trainer's `train_step` against a `MinimalLoop` started from the trainer's current Gaussians.

    Both run `warmup` untimed and `steps` timed iterations over the trainer's captured views; the trainer's
    Gaussians must not change in number (the benchmark's strategy never densifies)."""
    device = trainer.device
    missing = gsplat_missing(device)
    raster, reference = (torch_rgb, "minimal loop, faithfusion torch rasterizer") if missing else \
        (gsplat_rgb, "minimal loop, gsplat.rasterization")
    loop = MinimalLoop(dict(trainer.model.params), trainer.model.sh_degree, trainer.real.views, trainer.cfg,
                       trainer.scene_scale, raster, seed=trainer.cfg.seed)
    plain = loop_figures(loop.step, device, warmup, steps, lambda: len(loop.model))
    del loop
    if device.type == "cuda":
        torch.cuda.empty_cache()
    ours = loop_figures(trainer.train_step, device, warmup, steps, lambda: len(trainer.model))
    out = {
        "reference": reference, "trainer": ours, "plain_loop": plain,
        "trainer_time_per_iteration_over_plain": ratio(ours["ms_per_iteration"], plain["ms_per_iteration"]),
        "resolution": [trainer.real.views[0].camera.width, trainer.real.views[0].camera.height],
        "train_views": len(trainer.real.views),
    }
    if missing:
        out["note"] = f"no gsplat loop: {missing}; the reference loop used the project's torch rasterizer instead"
    return out
