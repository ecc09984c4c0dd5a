"""How is a SynthStreet scene stored? DriveStudio's processed-Waymo files plus the lane-shift ground truth.

The DriveStudio part goes through `faithfusion.data.drivestudio`'s writers when that module is
importable, otherwise through the minimal writers below, which produce the same files.

Ground truth of a lateral offset d (metres, + = left) lives in `gt_shifted/{d:+.1f}m/`:

    images/{t:03d}_{cam}.jpg         RGB (JPEG q95 like images/, or .png when lossless)
    depth/{t:03d}_{cam}.png          uint16, camera-axis depth z in metres * 256 (KITTI's encoding);
                                     0 = sky / nothing, 65535 = 255.996 m or farther
    sky_masks/{t:03d}_{cam}.png      255 = sky
    instance_masks/{t:03d}_{cam}.png uint16, instance id + 1 (ids of instances/instances_info.json), 0 = none
    unobserved/{t:03d}_{cam}.png     255 = surface no training (recorded) camera saw at any frame (sky: 0)
    disoccluded/{t:03d}_{cam}.png    255 = unobserved and hidden behind a surface in some training view
                                     (both: faithfusion.synth.observation)
    lane_masks/{t:03d}_{cam}.png     255 = lane-line paint (at least half of the pixel's 4 x 4 samples;
                                     faithfusion.synth.lane_mask); not listed in meta.json, which predates it
    ego_pose/{t:03d}.txt             4x4 vehicle-to-world of the shifted ego
    boxes_2d.json                    {"{t:03d}_{cam}": [{instance, track_id, class_name, box_visible,
                                     box_projected, visible_pixels}]}, boxes [x0, y0, x1, y1] in pixels
                                     (pixel i spans [i, i + 1))
    meta.json                        the shift and these conventions

`+0.0m` is the recorded trajectory itself. JSON is written with sorted keys; every encoder is
deterministic, so one seed always gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from faithfusion.utils.atomic import atomic_write
from faithfusion.utils.jsonio import save_json_atomic

DEPTH_SCALE = 256.0  # uint16 depth = round(z * DEPTH_SCALE)
JPEG_QUALITY = 95


def shift_dir(d: float) -> str:
    return f"{d:+.1f}m"


def save_json(path: Path, payload) -> None:
    save_json_atomic(path, payload, indent=1, sort_keys=True)


def save_rgb(path: Path, rgb: np.ndarray) -> None:  # [H, W, 3] uint8
    fmt = "PNG" if path.suffix == ".png" else "JPEG"
    kw = {"compress_level": 1} if fmt == "PNG" else {"quality": JPEG_QUALITY, "subsampling": 0}
    atomic_write(path, save=lambda tmp: Image.fromarray(rgb).save(tmp, format=fmt, **kw))


def save_mask(path: Path, mask: np.ndarray) -> None:  # [H, W] bool
    atomic_write(path, save=lambda tmp: Image.fromarray(mask.astype(np.uint8) * 255).save(tmp, format="PNG"))


def save_u16(path: Path, a: np.ndarray) -> None:  # [H, W] uint16
    atomic_write(path, save=lambda tmp: Image.fromarray(np.ascontiguousarray(a, dtype=np.uint16)).save(tmp, format="PNG", compress_level=1))


def encode_depth(depth: np.ndarray) -> np.ndarray:  # [H, W] float metres -> uint16
    return np.clip(np.round(depth.astype(np.float64) * DEPTH_SCALE), 0, 65535).astype(np.uint16)


def decode_depth(png: np.ndarray) -> np.ndarray:  # [H, W] uint16 -> float32 metres (0 = none)
    return png.astype(np.float32) / DEPTH_SCALE


def save_matrix(path: Path, M: np.ndarray) -> None:
    atomic_write(path, save=lambda tmp: np.savetxt(tmp, np.asarray(M, dtype=np.float64)))


def write_shift_view(root: Path, d: float, t: int, cam: int, rgb: np.ndarray, depth: np.ndarray, inst: np.ndarray, lossless: bool = False) -> None:
    """One camera of one frame of one shift: RGB, depth, sky mask, instance mask."""
    base = root / "gt_shifted" / shift_dir(d)
    name = f"{t:03d}_{cam}"
    save_rgb(base / "images" / f"{name}.{'png' if lossless else 'jpg'}", rgb)
    save_u16(base / "depth" / f"{name}.png", encode_depth(depth))
    save_mask(base / "sky_masks" / f"{name}.png", depth <= 0)
    save_u16(base / "instance_masks" / f"{name}.png", inst)


def write_lane_mask(root: Path, d: float, t: int, cam: int, mask: np.ndarray) -> None:
    """The lane-line ground truth of one view: `mask [H, W]` bool as a 0/255 PNG."""
    save_mask(root / "gt_shifted" / shift_dir(d) / "lane_masks" / f"{t:03d}_{cam}.png", mask)


def write_observation_masks(root: Path, d: float, t: int, cam: int, unobserved: np.ndarray, disoccluded: np.ndarray) -> None:
    """The observation ground truth of one view: `unobserved` and `disoccluded` [H, W] bool as 0/255 PNGs."""
    base = root / "gt_shifted" / shift_dir(d)
    name = f"{t:03d}_{cam}"
    save_mask(base / "unobserved" / f"{name}.png", unobserved)
    save_mask(base / "disoccluded" / f"{name}.png", disoccluded)


# --- DriveStudio files (fallback writers, same format as faithfusion.data.drivestudio) -------------------


def _fallback_frame(root, t, ego_to_world, images, lidar, sky_masks=None, dynamic_masks=None) -> None:
    root = Path(root)
    for cam, image in images.items():
        atomic_write(root / "images" / f"{t:03d}_{int(cam)}.jpg",
                     save=lambda tmp, im=image: Image.fromarray(im).save(tmp, format="JPEG", quality=JPEG_QUALITY, subsampling=0))
    for cam, mask in (sky_masks or {}).items():
        save_mask(root / "sky_masks" / f"{t:03d}_{int(cam)}.png", mask)
    for cls, masks in (dynamic_masks or {}).items():
        for cam, mask in masks.items():
            save_mask(root / "dynamic_masks" / cls / f"{t:03d}_{int(cam)}.png", mask)
    atomic_write(root / "lidar" / f"{t:03d}.bin", np.ascontiguousarray(lidar, dtype=np.float32).tobytes())
    save_matrix(root / "ego_pose" / f"{t:03d}.txt", ego_to_world)


def _fallback_calib(root, intrinsics, extrinsics) -> None:
    root = Path(root)
    for cam, values in intrinsics.items():
        save_matrix(root / "intrinsics" / f"{int(cam)}.txt", np.asarray(values, dtype=np.float64).ravel())
    for cam, T in extrinsics.items():
        save_matrix(root / "extrinsics" / f"{int(cam)}.txt", T)


def _fallback_instances(root, instances_info, frame_instances) -> None:
    for name, payload in (("instances_info.json", instances_info), ("frame_instances.json", frame_instances)):
        save_json_atomic(Path(root) / "instances" / name, payload)


def drivestudio_writers():
    """(write_frame, write_calib, write_instances, source): the project's writers when available."""
    try:
        from faithfusion.data.drivestudio import write_drivestudio_calib, write_drivestudio_frame, write_drivestudio_instances

        return write_drivestudio_frame, write_drivestudio_calib, write_drivestudio_instances, "faithfusion.data.drivestudio"
    except ImportError:
        return _fallback_frame, _fallback_calib, _fallback_instances, "faithfusion.synth.writer"
