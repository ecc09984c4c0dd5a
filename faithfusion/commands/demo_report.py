"""A Markdown report of a comparison: per-shift tables, the quality-vs-shift plot, and pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from faithfusion.utils.atomic import atomic_write


def picture_grid(results: dict, scene_dir: Path, shifts: list[float], path: Path) -> Path:
    """Rows: ground truth, then one row per method; columns: the chosen shifts (first test frame).

    `results[name]` holds "scene" and "render" (camera -> RGB `[H, W, 3]`)."""
    from PIL import Image

    from faithfusion.eval.lane_shift import load_gt_image

    first = next(iter(results.values()))
    scene = first["scene"]
    frame_id = scene.test_ids[0] if scene.test_ids else 0
    frame = scene.frames[frame_id]
    rows = []
    gt_row = []
    method_rows = {name: [] for name in results}
    for d in shifts:
        cam = scene.shifted_camera(frame_id, d)
        gt_row.append(load_gt_image(scene_dir, d, frame.timestep, frame.cam_name, (cam.height, cam.width)))
        for name, r in results.items():
            with torch.no_grad():
                rgb = r["render"](cam)  # the method's render function, the one its figures were measured with
            method_rows[name].append(rgb.clamp(0, 1).cpu())
    rows.append(torch.cat(gt_row, dim=1))
    rows += [torch.cat(v, dim=1) for v in method_rows.values()]
    grid = (torch.cat(rows, dim=0).numpy() * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path


def drive_videos(results: dict, shift: float, frames: int, folder: Path, fps: float = 4.0) -> dict[str, Path]:
    """One short MP4 per method: its render function along the first camera's drive moved `shift` metres left,
    `frames` timesteps spread over the drive (`folder/<method>_<shift>m.mp4`)."""
    from faithfusion.viewer.video import label, render_fn_frames, write_mp4

    scene = next(iter(results.values()))["scene"]
    first = scene.frames[0].cam_name
    ids = sorted((i for i, f in enumerate(scene.frames) if f.cam_name == first), key=lambda i: scene.frames[i].timestep)
    if frames < len(ids):
        ids = [ids[round(k * (len(ids) - 1) / max(frames - 1, 1))] for k in range(frames)]
    cams = [scene.shifted_camera(i, shift) for i in ids]
    videos = {}
    for name, r in results.items():
        path = folder / f"{name}_{shift:g}m.mp4"
        write_mp4(path, (label(f, f"{name} {shift:+g} m") for f in render_fn_frames(r["render"], cams)), fps)
        videos[name] = path
    return videos


def write_report(out: Path, results: dict, sizes: dict, timings: dict, scene_dir: Path,
                 notes: list[str] | None = None, video_frames: int = 0, video_shift: float = 3.0) -> Path:
    """OUT/report.md with the lane-shift table per method, the plot and a picture grid; with `video_frames` > 0
    a short drive video per method at `video_shift` metres, linked from the report."""
    from faithfusion.bench.info import git_commit

    shifts_pics = [d for d in (0.0, 3.0, 6.0) if d == 0.0 or d in sizes["shifts"]]
    grid = picture_grid(results, scene_dir, shifts_pics, out / "report" / "views.png")
    notes = list(notes or [])
    videos = {}
    if video_frames > 0:
        try:
            videos = drive_videos(results, video_shift, video_frames, out / "report")
        except ImportError as e:  # the encoder (imageio-ffmpeg) missing: the report says so instead of losing the run
            notes.append(f"drive videos not written: {e} (pip install imageio-ffmpeg)")
            print(f"demo: drive videos not written: {e}")
    mags = sorted({float(m) for r in results.values() for m in r["result"]["by_magnitude"]})
    lines = [
        "# FaithFusion demo: SynthStreet lane shift",
        "",
        f"Scene: `{scene_dir}` ({sizes['frames']} frames, {sizes['width']}x{sizes['height']}); "
        f"{sizes['steps']} training steps per method. Shift 0 = held-out frames of the recorded lane; "
        "other shifts: every evaluated frame from an ego moved sideways, both directions, against exact ground truth.",
        "",
        f"LPIPS: {next(iter(results.values()))['result'].get('lpips_net', 'network not recorded') if results else '-'}.",
        "",
        "| method | " + " | ".join(f"{m:g} m PSNR / SSIM / LPIPS" for m in mags) + " | time (s) |",
        "| --- | " + " | ".join("---" for _ in mags) + " | --- |",
    ]
    for name, r in results.items():
        by = r["result"]["by_magnitude"]
        cells = []
        for m in mags:
            v = by.get(f"{m:.1f}")
            if v is None:
                cells.append("-")
                continue
            lp = f"{v['lpips']:.3f}" if "lpips" in v else "n/a"
            cells.append(f"{v['psnr']:.2f} / {v['ssim']:.3f} / {lp}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {timings.get(name, 0):.0f} |")
    lines += [
        "",
        "![quality against lane shift](lane_shift.png)",
        "",
        f"Rows: ground truth, then {', '.join(results)}; columns: shift " + ", ".join(f"{d:g} m" for d in shifts_pics) + ".",
        "",
        f"![views]({grid.relative_to(out).as_posix()})",
        "",
    ]
    if videos:
        lines += [f"Drive videos at {video_shift:+g} m ({video_frames} frames): "
                  + ", ".join(f"[{name}]({p.relative_to(out).as_posix()})" for name, p in videos.items()) + ".", ""]
    lines += [f"Runs: {', '.join(f'`{(out / name).resolve()}`' for name in results)}; code commit `{git_commit()}`.", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    path = out / "report.md"
    atomic_write(path, "\n".join(lines))
    return path
