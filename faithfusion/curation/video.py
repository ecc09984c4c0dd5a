"""Video windows for the video fixers: a lateral ramp out to the full shift, and windows of the left-out camera."""

from __future__ import annotations

from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.curation.files import rel, save_map, write_frame
from faithfusion.curation.ground_truth import SynthOracle, load_gt_depth
from faithfusion.curation.samples import Ctx, signed_shifts
from faithfusion.curation.snapshots import Renderer
from faithfusion.eval.lane_shift import load_gt_image
from faithfusion.fixers.windows import ramp_shifts


def window_starts(n_steps: int, frames: int) -> list[int]:
    return list(range(0, n_steps - frames + 1, frames))


def video_target(ctx: Ctx, oracle: SynthOracle | None, i: int, d: float) -> tuple[Tensor, Tensor | None]:
    """Target RGB and depth of frame i at shift d: the photo (0), gt_shifted (generated shifts), else the oracle."""
    f, size = ctx.scene.frames[i], ctx.size(i)
    generated = {float(x) for x in signed_shifts(ctx.cfg.shifts)} | {0.0}
    if oracle is None:
        return ctx.scene.load_image(i, ctx.cfg.scale), None
    if round(d, 6) in generated:
        dd = round(d, 6)
        img = ctx.scene.load_image(i, ctx.cfg.scale) if dd == 0.0 else load_gt_image(ctx.job.path, dd, f.timestep, f.cam_name, size)
        return img, load_gt_depth(ctx.job.path, dd, f.timestep, f.cam_name, size)
    return oracle.render(f.timestep, d, int(f.cam_name), size)


def camera_record(cam: Camera, scene_scale: float) -> dict[str, list]:
    """A frame's intrinsics and its camera-to-world pose in metres (the scene's rotation kept, its scale undone)."""
    c2w = cam.camtoworld.double().clone()
    c2w[:3, 3] /= scene_scale
    return {"K": cam.K.double().tolist(), "camtoworld_m": c2w.tolist(), "width": cam.width, "height": cam.height}


def video_window(ctx: Ctx, rd: Renderer, oracle: SynthOracle | None, ids: list[int], shifts: list[float], stem: str,
                 tag: str) -> dict:
    """One window: degraded / target / maps per frame; the reference nearest to its first frame."""
    folder = ctx.folder / "video" / stem
    lists: dict[str, list[str]] = {"degraded": [], "target": [], "depth": [], "alpha": [], "eig": [], "target_depth": []}
    cameras = []
    for j, (i, d) in enumerate(zip(ids, shifts)):
        cam = ctx.scene.shifted_camera(i, d, ctx.cfg.scale)
        cameras.append(camera_record(cam, ctx.scene.transform.scale))
        tgt, tdepth = video_target(ctx, oracle, i, d)
        files = write_frame(folder, f"{j:02d}", ctx.root, rd.render(cam), tgt, rd.eig(cam))
        if tdepth is not None:
            p = folder / f"{j:02d}_target_depth.npy"
            save_map(p, tdepth)
            files["target_depth"] = rel(p, ctx.root)
        for k in lists:
            if k in files:
                lists[k].append(files[k])
    first = ctx.scene.frames[ids[0]]
    ref = ctx.refs.pick(ctx.scene.camera(ids[0]), ids[0])  # a window takes the reference of its first frame
    ref_depth = folder / "reference_depth.npy"
    save_map(ref_depth, rd.render(ctx.scene.camera(ref, ctx.cfg.scale)).depth)
    ctx.tick("video")
    return ctx.sample("video", first.timestep, first.cam_name, shifts[-1],
                      {**{k: v for k, v in lists.items() if len(v) == len(ids)}, "reference": ctx.refs.path(ref),
                       "reference_depth": rel(ref_depth, ctx.root)}, window=tag, shifts=[round(s, 4) for s in shifts],
                      cameras=cameras)


def video_samples(ctx: Ctx, rd: Renderer, oracle: SynthOracle | None) -> list[dict]:
    """Lane-shift ramp windows of the trained cameras and windows of the left-out camera."""
    cfg, idx = ctx.cfg, ctx.frame_index()
    steps = sorted({f.timestep for f in ctx.scene.frames})
    trained = sorted({ctx.scene.frames[i].cam_name for i in ctx.scene.train_ids})
    others = sorted({f.cam_name for f in ctx.scene.frames} - set(trained))
    out = []
    for s in window_starts(len(steps), cfg.video_frames):
        ts = steps[s:s + cfg.video_frames]
        for cam in trained:
            ids = [idx[(t, cam)] for t in ts]
            for d in signed_shifts(cfg.video_shifts or cfg.shifts):
                out.append(video_window(ctx, rd, oracle, ids, ramp_shifts(d, len(ids), cfg.video_ramp),
                                        f"t{ts[0]:03d}_{cam}_{d:+.1f}m", "lane_shift"))
        for cam in others:
            ids = [idx[(t, cam)] for t in ts]
            out.append(video_window(ctx, rd, oracle, ids, [0.0] * len(ids), f"t{ts[0]:03d}_{cam}_cross", "cross_camera"))
    return out
