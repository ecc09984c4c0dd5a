"""The Trainer: one optimisation loop over view pools, shared by every method.

Each step draws a pool (the captured views, or a pool of pseudo-views that a fusion schedule
added), draws a view from it, renders, applies the losses and lets the densification strategy
act. Methods (Difix3D, GenFusion, FaithFusion) change the pools and call `fit()` in rounds;
they never copy this loop.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.data.scene import SceneData
from faithfusion.gaussians.model import GaussianModel
from faithfusion.render import RenderOutput, render
from faithfusion.train.config import ReconConfig
from faithfusion.train.init import camera_extent, init_gaussians
from faithfusion.train.losses import (
    dense_depth_loss, dense_depth_target, lidar_target_loss, lidar_targets, photometric_loss, sky_opacity_loss)
from faithfusion.train.optim import adam, build_optimizers, means_lr_factor, set_means_lr
from faithfusion.train.sky import SkyModel, pixel_directions
from faithfusion.train.strategy import make_strategy, strategy_state_to
from faithfusion.train.views import View, ViewPool, choose_paired, choose_pool
from faithfusion.utils.atomic import atomic_write
from faithfusion.utils.device import resolve_device
from faithfusion.utils.progress import ProgressBar


def scene_up(scene: SceneData) -> Tensor:
    """The scene's up direction `[3]`: the ego z axis for driving scenes, else the mean camera -y."""
    if scene.kind == "driving" and scene.frames[0].ego_to_world is not None:
        ups = torch.stack([f.ego_to_world[:3, 2] for f in scene.frames if f.ego_to_world is not None])
    else:
        ups = torch.stack([-f.camera.camtoworld[:3, 1] for f in scene.frames])
    return torch.nn.functional.normalize(ups.mean(0), dim=0)


def real_views(scene: SceneData, ids: list[int], scale: float, device: torch.device) -> list[View]:
    """The captured images of `ids` as training views (uint8 on `device`; sky and loss masks, lidar and dense depth
    attached: a loss mask's 0 pixels get no photometric loss, a depth image feeds the dense depth term)."""
    views = []
    for i in ids:
        cam = scene.camera(i, scale).to(device)
        img = scene.load_image(i, scale)
        sky = scene.load_sky_mask(i, scale)
        lidar = scene.frames[i].lidar_points
        mask, depth = scene.load_loss_mask(i, scale), scene.load_depth(i, scale)
        views.append(
            View(
                camera=cam,
                image=(img * 255).round().to(torch.uint8).to(device),
                sky_mask=sky.to(device) if sky is not None else None,
                lidar=lidar.to(device) if lidar is not None else None,
                mask=mask.to(device) if mask is not None else None,
                depth=depth.to(device) if depth is not None else None,
                index=i,
            )
        )
    return views


def view_weight(view: View) -> Tensor | None:
    """The view's per-pixel loss weight `[H, W]` (EIG weight times mask), built once per view data (`View.derived`)."""
    if view.mask is None:
        return view.weight
    return view.derived("weight", lambda: view.mask.float() if view.weight is None else view.weight * view.mask.float())


class Trainer:
    """3DGS optimisation on a SceneData with pools of views."""

    def __init__(self, scene: SceneData, cfg: ReconConfig, device: torch.device | None = None) -> None:
        self.scene = scene
        self.cfg = cfg
        self.device = device or resolve_device(cfg.device)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        if not scene.train_ids:
            raise ValueError(f"{scene.source}: no training views after the hold-out split")
        self.model = init_gaussians(scene, cfg.init, cfg.sh_degree, self.generator)
        self.graph = None  # SceneGraph with --scene-graph (faithfusion/scene_graph), else None
        if cfg.scene_graph:
            from faithfusion.scene_graph.init import graph_for_scene

            self.model, self.graph = graph_for_scene(scene, self.model, cfg.graph, self.generator,
                                                     opacity=cfg.init.opacity, init_scale=cfg.init.scale)
            self.graph = self.graph.to(self.device)
        self.model = self.model.to(self.device)
        _, radius = camera_extent([scene.frames[i].camera for i in scene.train_ids])
        self.scene_scale = radius * 1.1
        self.optimizers = build_optimizers(self.model, cfg.lr, self.scene_scale)
        self.strategy = make_strategy(cfg.strategy)
        self.strategy.initialize(self.model.params, self.optimizers, self.scene_scale)
        self.graph_optimizer: torch.optim.Optimizer | None = None
        if self.has_nodes:
            self._attach_graph()
        self.sky: SkyModel | None = None
        self.sky_optimizer: torch.optim.Optimizer | None = None
        if scene.kind == "driving":
            self.sky = SkyModel(scene_up(scene)).to(self.device)
            self.sky_optimizer = adam(self.sky.parameters(), lr=cfg.lr.sky)
        self.appearance = None
        self.appearance_optimizer = None
        if cfg.appearance:
            from faithfusion.train.appearance import AppearanceModel

            self.appearance = AppearanceModel(len(scene.frames)).to(self.device)
            self.appearance_optimizer = adam(self.appearance.parameters(), lr=cfg.appearance_lr)
        self.real = ViewPool("real", real_views(scene, self.real_view_ids(), cfg.scale, self.device))
        self.pools: list[ViewPool] = []
        self.step = 0
        self.train_seconds = 0.0
        self.total_steps = cfg.steps

    def real_view_ids(self) -> list[int]:
        """The captured frames this trainer holds as training views (all of them; a data-parallel rank its shards)."""
        return self.scene.train_ids

    # --- scene graph ----------------------------------------------------------------------

    @property
    def has_nodes(self) -> bool:
        return self.graph is not None and self.graph.num_nodes > 0

    def _attach_graph(self) -> None:
        """The pose-refinement optimizer, and the node ids carried by the strategy through clone/split/prune."""
        from faithfusion.scene_graph.densify import NODE_IDS, check_strategy

        check_strategy(self.strategy, self.cfg.strategy.name)
        self.strategy.state[NODE_IDS] = self.graph.node_ids.to(self.device)
        g = self.cfg.graph
        self.graph_optimizer = adam([
            {"params": [self.graph.pose_rotation], "lr": g.lr_rotation, "name": "pose_rotation"},
            {"params": [self.graph.pose_translation], "lr": g.lr_translation, "name": "pose_translation"},
        ])

    def timestep_of(self, camera: Camera) -> int:
        """The scene timestep a camera renders: its own (`meta["timestep"]`, kept by scaled and shifted copies),
        else that of the frame whose camera centre is nearest."""
        t = camera.meta.get("timestep")
        if t is not None:
            return int(t)
        centers = torch.stack([f.camera.center for f in self.scene.frames])
        return self.scene.frames[int((centers - camera.center.cpu()).norm(dim=-1).argmin())].timestep

    def gaussians_for(self, camera: Camera) -> GaussianModel:
        """The Gaussian set that `camera` sees: the model, or the scene graph composed at the camera's timestep."""
        if not self.has_nodes:
            return self.model
        return self.graph.compose(self.model, self.timestep_of(camera))

    def world_model(self, timestep: int | None = None) -> GaussianModel:
        """The Gaussians in scene coordinates (nodes placed at `timestep`, default the first training one) as a
        plain GaussianModel: what PLY export and the per-model tools take."""
        if not self.has_nodes:
            return self.model
        t = self.scene.frames[self.scene.train_ids[0]].timestep if timestep is None else timestep
        return self.graph.compose(self.model, t).detached()

    # --- rendering ------------------------------------------------------------------------

    def render_camera(self, camera: Camera, sh_degree: int | None = None) -> tuple[Tensor, RenderOutput]:
        """RGB `[H, W, 3]` with the sky composited behind the Gaussians, and the raw render output."""
        out = render(
            self.gaussians_for(camera),
            camera.viewmat[None],
            camera.K[None],
            camera.width,
            camera.height,
            sh_degree=sh_degree,
            backend=self.cfg.backend,
            absgrad=self.cfg.strategy.absgrad,
        )
        rgb = out.rgb[0]
        if self.sky is not None:
            rgb = rgb + (1.0 - out.alpha[0]) * self.sky(pixel_directions(camera))
        return rgb, out

    def active_sh_degree(self) -> int:
        return min(self.step // max(self.cfg.sh_degree_interval, 1), self.cfg.sh_degree)

    # --- one step -------------------------------------------------------------------------

    def view_loss(self, view: View, pool: ViewPool) -> tuple[Tensor, RenderOutput, Tensor, Tensor]:
        """One view's loss (photometric, weighted and masked; depth; sky), its render output, prediction
        `[1, H, W, 3]` and target `[1, H, W, 3]`."""
        cfg = self.cfg
        target = view.image_float(self.device)[None]  # [1, H, W, 3]
        rgb, out = self.render_camera(view.camera, self.active_sh_degree())
        if self.appearance is not None and pool is self.real:
            rgb = self.appearance(rgb, view.index)
        pred = rgb[None]
        weight = view_weight(view)
        loss = pool.loss_weight * photometric_loss(pred, target, cfg.ssim_lambda, None if weight is None else weight[None])
        if view.lidar is not None and cfg.depth_lambda > 0:
            lidar = view.derived("lidar_targets", lambda: lidar_targets(view.lidar, view.camera))
            if lidar is not None:
                loss = loss + cfg.depth_lambda * lidar_target_loss(out.depth[0], out.alpha[0], lidar)
        if view.depth is not None:
            dense = view.derived("depth_target", lambda: dense_depth_target(view.depth))
            if dense is not None:
                loss = loss + pool.loss_weight * cfg.depth_lambda * dense_depth_loss(out.depth[0, ..., 0], dense)
        if view.sky_mask is not None and cfg.sky_lambda > 0:
            sky_target = view.derived("sky_target", lambda: (~view.sky_mask).float())
            loss = loss + cfg.sky_lambda * sky_opacity_loss(out.alpha[0], view.sky_mask, target=sky_target)
        return loss, out, pred, target

    def train_step(self) -> dict:
        """One optimisation step. "loss" and "psnr" are 0-dim tensors on the device (no host synchronisation
        in the step: callers convert them when they log); "pool" and "paired" name the pools drawn."""
        cfg = self.cfg
        pool = choose_pool(self.real, self.pools, self.generator)
        view = pool.sample(self.generator)
        factor = means_lr_factor(self.step, self.total_steps, cfg.lr.means_final_ratio)
        means_lr = cfg.lr.means * self.scene_scale * factor
        set_means_lr(self.optimizers["means"], cfg.lr.means * self.scene_scale, factor)

        loss, out, pred, target = self.view_loss(view, pool)
        if cfg.opacity_reg > 0:
            loss = loss + cfg.opacity_reg * self.model.opacities.mean()
        if cfg.scale_reg > 0:
            loss = loss + cfg.scale_reg * self.model.scales.mean()

        # the densification strategy sees the step's own view; paired views only add their gradients
        self.strategy.pre_backward(self.model.params, self.optimizers, self.step, out.info)
        with pool.guarded_backward(self):
            loss.backward()
        paired = choose_paired(self.pools, self.generator)
        for extra in paired:
            for _ in range(max(1, extra.draws)):  # K views of the pool, each its own backward (memory stays one view's)
                extra_loss, _, _, _ = self.view_loss(extra.sample(self.generator), extra)
                with extra.guarded_backward(self):
                    extra_loss.backward()
                loss = loss.detach() + extra_loss.detach()
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        for extra in (self.sky_optimizer, self.appearance_optimizer, self.graph_optimizer):
            if extra is not None:
                extra.step()
                extra.zero_grad(set_to_none=True)
        self.strategy.post_backward(self.model.params, self.optimizers, self.step, out.info, means_lr)
        self.strategy.after_optimizer_step(self.model.params, self.optimizers, self.step, means_lr)
        if self.has_nodes:
            from faithfusion.scene_graph.densify import after_refinement

            after_refinement(self, self.step)
        self.step += 1
        with torch.no_grad():
            mse = ((pred.detach().clamp(0, 1) - target) ** 2).mean()
            psnr = -10 * torch.log10(mse.clamp_min(1e-10))
        return {"loss": loss.detach(), "psnr": psnr, "pool": pool.name, "paired": [p.name for p in paired]}

    def fit(self, until: int, progress: bool = True, on_step=None) -> None:
        """Train until `self.step == until`; `on_step(trainer, stats)` runs after every step."""
        figures = "loss {task.fields[loss]:.4f}  psnr {task.fields[psnr]:.2f}  N {task.fields[n]}"
        with ProgressBar("train", until, start=self.step, enabled=progress, figures=figures, every=10,
                         loss=0.0, psnr=0.0, n=0) as bar:
            while self.step < until:
                t0 = time.perf_counter()
                stats = self.train_step()
                if self.device.type == "cuda" and self.step % 100 == 0:
                    torch.cuda.synchronize()
                self.train_seconds += time.perf_counter() - t0
                if bar.due(self.step):  # the figures reach the host only when they are shown
                    bar.update(self.step, loss=float(stats["loss"]), psnr=float(stats["psnr"]), n=len(self.model))
                if on_step is not None:
                    on_step(self, stats)

    # --- evaluation -----------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, ids: list[int], render_dir: Path | None = None, metrics=None) -> dict:
        """Held-out PSNR / SSIM / LPIPS over frames `ids`; saves pred|gt images to `render_dir`."""
        from faithfusion.eval.metrics import Metrics

        metrics = metrics or Metrics()
        per_view = []
        for k, i in enumerate(ids):
            cam = self.scene.camera(i, self.cfg.scale).to(self.device)
            gt = self.scene.load_image(i, self.cfg.scale).to(self.device)
            rgb, _ = self.render_camera(cam)
            pred = rgb.clamp(0, 1)
            values = metrics(pred[None], gt[None])
            values["frame"] = i
            per_view.append(values)
            if render_dir is not None:
                save_side_by_side(render_dir / f"test_{i:04d}.png", pred, gt)
        summary = {key: float(np.mean([v[key] for v in per_view])) for key in per_view[0] if key != "frame" and per_view[0][key] is not None} if per_view else {}
        return {"mean": summary, "per_view": per_view, "lpips_net": metrics.lpips_net}

    # --- checkpoints ----------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "params": self.model.state_for_save(),
            "sh_degree": self.model.sh_degree,
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "strategy": strategy_state_to(self.strategy.state_dict(), torch.device("cpu")),
            "sky": self.sky.state_dict() if self.sky is not None else None,
            "sky_optimizer": self.sky_optimizer.state_dict() if self.sky_optimizer is not None else None,
            "appearance": self.appearance.state_dict() if self.appearance is not None else None,
            "appearance_optimizer": self.appearance_optimizer.state_dict() if self.appearance_optimizer is not None else None,
            "scene_graph": {"pose_rotation": self.graph.pose_rotation.detach().cpu(),
                            "pose_translation": self.graph.pose_translation.detach().cpu(),
                            "optimizer": self.graph_optimizer.state_dict(), **self.graph.meta()} if self.has_nodes else None,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "pool_orders": {p.name: list(p._order) for p in [self.real, *self.pools]},
            "train_seconds": self.train_seconds,
            "config": asdict(self.cfg),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model = GaussianModel({k: v.to(self.device) for k, v in state["params"].items()}, state["sh_degree"])
        self.optimizers = build_optimizers(self.model, self.cfg.lr, self.scene_scale)
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        self.strategy.load_state_dict(strategy_state_to(state["strategy"], self.device))
        if self.sky is not None and state.get("sky") is not None:
            self.sky.load_state_dict(state["sky"])
            self.sky_optimizer.load_state_dict(state["sky_optimizer"])
        if self.appearance is not None and state.get("appearance") is not None:
            self.appearance.load_state_dict(state["appearance"])
            self.appearance_optimizer.load_state_dict(state["appearance_optimizer"])
        if self.has_nodes:
            from faithfusion.scene_graph.densify import NODE_IDS

            saved = state.get("scene_graph")
            if saved is None or NODE_IDS not in self.strategy.state or saved.get("keys") != self.graph.keys:
                raise ValueError("checkpoint was not made with this scene graph (--scene-graph and the same tracks)")
            self.graph.node_ids = self.strategy.state[NODE_IDS]
            with torch.no_grad():
                self.graph.pose_rotation.copy_(saved["pose_rotation"])
                self.graph.pose_translation.copy_(saved["pose_translation"])
            self.graph_optimizer.load_state_dict(saved["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        for pool in [self.real, *self.pools]:
            pool._order = list(state.get("pool_orders", {}).get(pool.name, []))
        self.step = int(state["step"])
        self.train_seconds = float(state.get("train_seconds", 0.0))


def save_side_by_side(path: Path, pred: Tensor, gt: Tensor) -> None:
    """pred | gt as one PNG (uint8), written atomically."""
    import imageio.v3 as iio

    both = torch.cat([pred, gt], dim=1).clamp(0, 1)
    arr = (both.cpu().numpy() * 255).round().astype(np.uint8)
    atomic_write(path, save=lambda tmp: iio.imwrite(tmp, arr, extension=".png"), what="render")
