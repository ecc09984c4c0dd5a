"""The per-frame sample kinds: sparse, underfit, cross_camera and lane_shift."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.curation.config import CurateConfig
from faithfusion.curation.files import write_frame
from faithfusion.curation.jobs import SceneJob
from faithfusion.curation.references import References
from faithfusion.curation.snapshots import Renderer
from faithfusion.data.scene import SceneData
from faithfusion.eval.lane_shift import load_gt_image


@dataclass
class Ctx:
    """What every strategy of one scene needs."""

    job: SceneJob
    cfg: CurateConfig
    scene: SceneData
    refs: References
    root: Path  # out/
    folder: Path  # out/samples/<scene>
    tick: Callable[[str], None]

    def sample(self, kind: str, frame: int, cam: str, shift: float | None, files: dict[str, Any], **extra: Any) -> dict:
        return {**files, "scene": self.job.name, "split": self.job.split, "kind": kind, "shift": shift,
                "frame": frame, "cam": cam, **extra}

    def size(self, i: int) -> tuple[int, int]:
        c = self.scene.camera(i, self.cfg.scale)
        return c.height, c.width

    def frame_index(self) -> dict[tuple[int, str], int]:
        return {(f.timestep, f.cam_name): i for i, f in enumerate(self.scene.frames)}


def image_sample(ctx: Ctx, rd: Renderer, kind: str, i: int, cam: Camera, target: Tensor, stem: str,
                 shift: float | None, ref_frame: int | None = None) -> dict:
    f = ctx.scene.frames[i]
    r = rd.render(cam)
    files = write_frame(ctx.folder / kind, stem, ctx.root, r, target, rd.eig(cam))
    files["reference"] = ctx.refs.path(ctx.refs.pick(cam, ref_frame))
    ctx.tick(kind)
    return ctx.sample(kind, f.timestep, f.cam_name, shift, files)


def trained_cam_frames(ctx: Ctx) -> list[int]:
    """Frames of the cameras that took part in training, ordered by (timestep, camera)."""
    cams = {ctx.scene.frames[i].cam_name for i in ctx.scene.train_ids}
    return [i for i, f in enumerate(ctx.scene.frames) if f.cam_name in cams]


def sparse_samples(ctx: Ctx, rd: Renderer) -> list[dict]:
    """(1) held-out timesteps of the trained cameras (real scenes: the held-out images) -> the real images."""
    test = set(ctx.scene.test_ids)
    ids = [i for i in trained_cam_frames(ctx) if i in test] if ctx.job.synth else sorted(test)
    return [image_sample(ctx, rd, "sparse", i, ctx.scene.camera(i, ctx.cfg.scale), ctx.scene.load_image(i, ctx.cfg.scale),
                         f"{i:04d}", None) for i in ids]


def underfit_samples(ctx: Ctx, rd: Renderer, level: int, pct: int) -> list[dict]:
    """(2) views of the trained cameras from an under-fitted checkpoint (every n-th, offset by level)."""
    ids = trained_cam_frames(ctx) if ctx.job.synth else list(range(len(ctx.scene.frames)))
    ids = ids[level % ctx.cfg.underfit_stride::ctx.cfg.underfit_stride]
    return [image_sample(ctx, rd, "underfit", i, ctx.scene.camera(i, ctx.cfg.scale), ctx.scene.load_image(i, ctx.cfg.scale),
                         f"{i:04d}_p{pct:02d}", None) | {"checkpoint": pct} for i in ids]


def cross_camera_samples(ctx: Ctx, rd: Renderer) -> list[dict]:
    """(3) the camera left out of training -> its real images."""
    trained = {ctx.scene.frames[i].cam_name for i in ctx.scene.train_ids}
    ids = [i for i, f in enumerate(ctx.scene.frames) if f.cam_name not in trained]
    return [image_sample(ctx, rd, "cross_camera", i, ctx.scene.camera(i, ctx.cfg.scale), ctx.scene.load_image(i, ctx.cfg.scale),
                         f"{i:04d}", None) for i in ids]


def signed_shifts(shifts: tuple[float, ...]) -> list[float]:
    return [s for d in shifts for s in (abs(float(d)), -abs(float(d)))]


def lane_shift_samples(ctx: Ctx, rd: Renderer) -> list[dict]:
    """(4) the final model at +-d for every `shift_stride`-th timestep -> gt_shifted ground truth."""
    ids = [i for i in trained_cam_frames(ctx) if ctx.scene.frames[i].timestep % ctx.cfg.shift_stride == 0]
    out = []
    for d in signed_shifts(ctx.cfg.shifts):
        for i in ids:
            f = ctx.scene.frames[i]
            gt = load_gt_image(ctx.job.path, d, f.timestep, f.cam_name, ctx.size(i))
            out.append(image_sample(ctx, rd, "lane_shift", i, ctx.scene.shifted_camera(i, d, ctx.cfg.scale), gt,
                                    f"{i:04d}_{d:+.1f}m", d, ref_frame=i))
    return out
