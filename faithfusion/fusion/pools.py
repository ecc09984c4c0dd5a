"""Pseudo-view pools: render novel cameras with the current model, repair them, keep them as `View`s.

A pool is the trainer's `ViewPool`; this module builds its views and writes them to (and reads them
back from) a checkpoint, so that a fusion run resumes without calling the fixer again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.data.scene import SceneData
from faithfusion.fixers.reference import ReferencePicker
from faithfusion.train.views import View, ViewPool


@dataclass
class Renders:
    """What the current model shows from some cameras."""

    rgb: Tensor  # [N, H, W, 3] in [0, 1], sky composited
    alpha: Tensor  # [N, H, W]
    depth: Tensor  # [N, H, W] expected depth, 0 where alpha is (almost) 0


@torch.no_grad()
def render_cameras(trainer, cameras: list[Camera], alpha_min: float = 1e-3) -> Renders:
    """Render `cameras` (one size) with the trainer's model and sky."""
    rgbs, alphas, depths = [], [], []
    for cam in cameras:
        rgb, out = trainer.render_camera(cam.to(trainer.device))
        a = out.alpha[0, ..., 0]
        d = out.depth[0, ..., 0]
        rgbs.append(rgb.clamp(0, 1))
        alphas.append(a)
        depths.append(torch.where(a > alpha_min, d, torch.zeros_like(d)))
    return Renders(torch.stack(rgbs), torch.stack(alphas), torch.stack(depths))


class ReferenceImages:
    """The fixers' reference view of a camera (`faithfusion.fixers.reference`'s rule, as in their training data),
    loaded once per frame. With `visible(height, width) -> [H, W] bool` the images are mid-grey outside it (what a
    masked protocol shows)."""

    def __init__(self, scene: SceneData, ids: list[int], scale: float = 1.0, visible=None) -> None:
        self.scene, self.ids, self.scale, self.visible = scene, list(ids), scale, visible
        self.picker = ReferencePicker(self.ids, [scene.camera(i, scale) for i in self.ids])
        self._cache: dict[int, Tensor] = {}

    def nearest_id(self, camera: Camera, frame: int | None = None) -> int:
        """Frame index of the reference of `camera`, rendered from captured frame `frame` (None: no frame)."""
        return self.picker.pick(camera, frame)

    def image(self, index: int) -> Tensor:  # [H, W, 3]
        if index not in self._cache:
            img = self.scene.load_image(index, self.scale)
            if self.visible is not None:
                img = torch.where(self.visible(*img.shape[:2])[..., None], img, torch.full_like(img, 0.5))
            self._cache[index] = img
        return self._cache[index]

    def for_cameras(self, cameras: list[Camera], frames: list[int] | None = None) -> Tensor:  # [N, H, W, 3]
        return torch.stack([self.image(i) for i in self.picker.pick_all(cameras, frames)])


def make_views(
    cameras: list[Camera],
    images: Tensor,  # [N, H, W, 3] in [0, 1]
    weights: Tensor | None = None,  # [N, H, W]
    masks: Tensor | None = None,  # [N, H, W] bool
    depths: Tensor | None = None,  # [N, H, W]
    device: torch.device | str = "cpu",
) -> list[View]:
    """Pseudo-views with uint8 targets (what the checkpoint stores, so a resumed run sees the same bytes)."""
    img8 = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    views = []
    for k, cam in enumerate(cameras):
        views.append(
            View(
                camera=cam.to(device),
                image=img8[k].to(device),
                weight=None if weights is None else weights[k].float().to(device),
                mask=None if masks is None else masks[k].bool().to(device),
                depth=None if depths is None else depths[k].float().to(device),
            )
        )
    return views


# --- checkpoints -------------------------------------------------------------------------------


def _cpu(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.detach().cpu()


def pool_state(pool: ViewPool) -> dict:
    """Everything needed to rebuild `pool` (images as uint8, per-pixel maps and lidar points as stored)."""
    return {
        "name": pool.name,
        "probability": pool.probability,
        "loss_weight": pool.loss_weight,
        "paired": pool.paired,
        "draws": pool.draws,
        "views": [
            {
                "K": v.camera.K.cpu(), "viewmat": v.camera.viewmat.cpu(), "width": v.camera.width,
                "height": v.camera.height, "camera_name": v.camera.name, "meta": dict(v.camera.meta), "image": _cpu(v.image),
                "weight": _cpu(v.weight), "mask": _cpu(v.mask), "depth": _cpu(v.depth), "index": v.index,
                "lidar": _cpu(v.lidar),
            }
            for v in pool.views
        ],
    }


def load_pool_state(pool: ViewPool, state: dict, device: torch.device | str) -> None:
    """Refill `pool` in place from `pool_state` output (the trainer keeps its reference to the pool)."""
    def dev(x):
        return None if x is None else x.to(device)

    pool.probability = float(state["probability"])
    pool.loss_weight = float(state["loss_weight"])
    pool.paired = bool(state.get("paired", False))
    pool.draws = int(state.get("draws", 1))
    pool.views = [
        View(
            camera=Camera(K=v["K"], viewmat=v["viewmat"], width=v["width"], height=v["height"], name=v["camera_name"],
                          meta=dict(v.get("meta") or {})).to(device),
            image=dev(v["image"]), weight=dev(v["weight"]), mask=dev(v["mask"]), depth=dev(v["depth"]), index=v["index"],
            lidar=dev(v.get("lidar")),
        )
        for v in state["views"]
    ]
    pool._order = []


def camera_state(cam: Camera) -> dict:
    """A camera as a checkpoint stores it; `meta` keeps its timestep (what a scene graph composes for it)."""
    return {"K": cam.K.cpu(), "viewmat": cam.viewmat.cpu(), "width": cam.width, "height": cam.height, "name": cam.name,
            "meta": dict(cam.meta)}


def camera_from_state(state: dict) -> Camera:
    return Camera(K=state["K"], viewmat=state["viewmat"], width=state["width"], height=state["height"], name=state["name"],
                  meta=dict(state.get("meta") or {}))


def post_render_fixer(trainer, fixer, refs: ReferenceImages, gate=None):
    """Difix3D+'s post-render step as a render function `camera -> [H, W, 3]`: the render, fixed once more with
    the nearest captured image as reference. With `gate(camera) -> [H, W]` in [0, 1] the fix is blended with the
    render by it (FaithFusion+: repainted where EIG is high, the render kept where the model is sure)."""

    def render(camera: Camera) -> Tensor:  # [H, W, 3]
        with torch.no_grad():
            rgb, _ = trainer.render_camera(camera.to(trainer.device))
            rgb = rgb.clamp(0, 1)
            ref = refs.for_cameras([camera]).to(rgb.device)
            fixed = fix_frames(fixer, rgb[None], ref)[0]
            if gate is None:
                return fixed
            m = gate(camera).to(rgb.device)[..., None]  # [H, W, 1]
            return m * fixed + (1 - m) * rgb

    return render


def fix_frames(fixer, images: Tensor, refs: Tensor | None, eig: Tensor | None = None, chunk: int = 8) -> Tensor:
    """Repair single frames `[N, H, W, 3]` (each its own window of one) with references `[N, H, W, 3]`."""
    out = []
    for k in range(0, images.shape[0], chunk):
        sl = slice(k, k + chunk)
        res = fixer.fix(images[sl, None], ref=None if refs is None else refs[sl], eig=None if eig is None else eig[sl, None])
        out.append(res.images[:, 0].to(images.device))
    return torch.cat(out) if out else images
