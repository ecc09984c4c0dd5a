"""GenFusion as a schedule: cyclic RGB-D repair of windows along the novel path.

Warm-up 1000 published steps; then every 1000 steps: render 16-frame RGB-D windows along the
lane-shifted camera paths, repair them with the GenFusion video fixer (reference: the captured image of
the window's first frame), and REPLACE the regularisation pool with them (RGB targets plus depth on
`View.depth`). The pool's loss weight follows lambda * sin(pi * (it - start) / (until - start)), set before every step.
Densification is the sparsity-aware strategy ("sparsity", faithfusion/train/sparsity.py).

`crop` is GenFusion's masked-reconstruction protocol: the captured images count only in their central
H/2 x W/2 crop (inset by the SSIM window's radius; the rest of each frame is masked out of the loss, and so are the captured views' lidar and
sky terms, which would carry what the crop hides); the fixer's reference images are grey outside the crop;
the repair windows also run along the captured path (shift 0) to fill the frames' hidden borders; the
evaluation renders full frames.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from faithfusion.data.scene import SceneData
from faithfusion.fusion.config import FuseConfig, GenFusionConfig
from faithfusion.fusion.fixers import ChosenFixer
from faithfusion.fusion.paths import windows
from faithfusion.fusion.pools import ReferenceImages, make_views, render_cameras
from faithfusion.fusion.rounds import Round
from faithfusion.train.views import ViewPool


SSIM_RADIUS = 5
"""Half the training loss's 11-pixel SSIM window: a pixel this far inside the crop sees nothing outside it."""


def centre_crop_mask(height: int, width: int, inset: int = 0) -> torch.Tensor:
    """`[H, W]` bool: the central H/2 x W/2 crop (GenFusion's masked reconstruction keeps only it), less
    `inset` pixels on every side."""
    m = torch.zeros(height, width, dtype=torch.bool)
    top, left = height // 4 + inset, width // 4 + inset
    m[top: height // 4 + height // 2 - inset, left: width // 4 + width // 2 - inset] = True
    return m


def sine_weight(it: int, start: int, until: int, lam: float) -> float:
    """GenFusion's regularisation weight at step `it`: lam * sin(pi (it - start) / (until - start)), 0 outside."""
    if until <= start or it < start or it > until:
        return 0.0
    return lam * math.sin(math.pi * (it - start) / (until - start))


class GenFusionMethod:
    name = "genfusion"

    def __init__(self, cfg: GenFusionConfig, scene: SceneData, fixer: ChosenFixer) -> None:
        self.sched = cfg.genfusion
        self.scene, self.fixer, self.scale, self.total = scene, fixer, cfg.scale, cfg.steps
        self.pool = ViewPool("genfusion_reg", [], probability=self.sched.probability, loss_weight=0.0, paired=self.sched.paired)
        self.pools = [self.pool]
        self.refs = ReferenceImages(scene, scene.train_ids, cfg.scale, visible=centre_crop_mask if self.sched.crop else None)
        self.shifts = tuple(self.sched.shifts)
        if self.sched.crop and not any(abs(d) < 1e-6 for d in self.shifts):
            self.shifts = (0.0, *self.shifts)  # the captured path too: its frames' borders are hidden
        self.start = self.sched.at(self.sched.warmup, cfg.steps)
        self.until = self.sched.at(self.sched.until, cfg.steps) if self.sched.until > 0 else cfg.steps

    def attach(self, trainer) -> None:
        """Masked reconstruction: the captured views count only inside their central crop (the pixels whose
        SSIM window stays inside it, so that nothing the crop hides reaches the loss)."""
        if not self.sched.crop:
            return
        for view in trainer.real.views:
            keep = centre_crop_mask(view.camera.height, view.camera.width, SSIM_RADIUS).to(view.image.device)
            view.mask = keep if view.mask is None else view.mask & keep
            view.lidar, view.sky_mask = None, None  # full-frame supervision the crop would not have

    def recon_config(self, cfg: FuseConfig) -> FuseConfig:
        return replace(cfg, strategy=replace(cfg.strategy, name="sparsity")) if self.sched.sparsity else cfg

    def rounds(self, total: int) -> list[Round]:
        s = self.sched
        return [Round(k, step) for k, step in enumerate(range(self.start, total, max(1, s.at(s.every, total))))]

    def weight(self, it: int) -> float:
        return sine_weight(it, self.start, self.until, self.sched.lam)

    @torch.no_grad()
    def run_round(self, trainer, rnd: Round) -> dict:
        views = []
        for shift in self.shifts:
            for ids in windows(self.scene, self.scene.train_ids, self.sched.window):
                cams = [self.scene.shifted_camera(i, shift, self.scale) for i in ids]
                r = render_cameras(trainer, cams)
                ref_id = self.refs.nearest_id(cams[0], ids[0])  # the first frame's, as curated
                ref = self.refs.image(ref_id)[None].to(r.rgb.device)  # [1, H, W, 3]
                # the reference is RGB-D, as in training: its depth rendered from its own (captured) camera
                ref_depth = render_cameras(trainer, [self.scene.camera(ref_id, self.scale)]).depth  # [1, H, W]
                out = self.fixer.fixer.fix(r.rgb[None], ref=ref, depth=r.depth[None], ref_depth=ref_depth)
                depth = None
                if out.depth is not None:
                    depth = torch.where(r.depth > 0, out.depth[0].to(r.depth.device), torch.zeros_like(r.depth))
                views.extend(make_views(cams, out.images[0], depths=depth, device=trainer.device))
        self.pool.views = views  # replace, not accumulate
        self.pool._order = []
        self.pool.loss_weight = self.weight(trainer.step)
        return {"views": len(views), "loss_weight": self.pool.loss_weight}

    def on_step(self, trainer, stats: dict) -> None:
        self.pool.loss_weight = self.weight(trainer.step)  # the weight of the next step

    def state_dict(self) -> dict:
        return {"start": self.start, "until": self.until}

    def load_state_dict(self, state: dict, trainer) -> None:
        self.start, self.until = int(state["start"]), int(state["until"])

    def render_fn(self, trainer):
        return None
