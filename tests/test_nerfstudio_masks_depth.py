"""nerfstudio transforms.json: mask_path (masked loss), depth_file_path (depth loss), applied_transform, fisheye."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faithfusion.data.frame import SceneError
from faithfusion.data.nerfstudio import read_nerfstudio
from faithfusion.train.config import InitConfig, ReconConfig, StrategyConfig
from faithfusion.train.trainer import Trainer
from tests.scene_fixtures import write_ply, write_nerfstudio_scene

W, H = 48, 36
DEPTH_MM = 2500  # 2.5 world units at nerfstudio's default depth_unit_scale_factor 1e-3


def scene_with_masks_and_depth(root: Path, n: int = 4, **meta_extra) -> dict:
    """The fixture scene without distortion, every frame with a mask (left 24 columns 0) and a depth file."""
    info = write_nerfstudio_scene(root, n=n, size=(W, H))
    meta = json.loads((root / "transforms.json").read_text())
    for key in ("k1", "k2", "p1", "p2"):
        meta.pop(key)
    (root / "masks").mkdir()
    (root / "depths").mkdir()
    mask = np.full((H, W), 255, np.uint8)
    mask[:, :24] = 0
    for k, fr in enumerate(meta["frames"]):
        stem = Path(fr["file_path"]).stem
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
        fr["mask_path"] = f"masks/{stem}.png"
        if k % 2:  # 16-bit PNG in millimetres
            Image.fromarray(np.full((H, W), DEPTH_MM, np.uint16)).save(root / "depths" / f"{stem}.png")
            fr["depth_file_path"] = f"depths/{stem}.png"
        else:  # .npy, same units, with a hole (0 = no depth)
            d = np.full((H, W), float(DEPTH_MM))
            d[0, 0] = 0
            np.save(root / "depths" / f"{stem}.npy", d)
            fr["depth_file_path"] = f"depths/{stem}.npy"
    meta.update(meta_extra)
    (root / "transforms.json").write_text(json.dumps(meta))
    return info | {"meta": meta}


def test_masks_and_depth_are_read_in_scene_units(tmp_path) -> None:
    scene_with_masks_and_depth(tmp_path)
    scene = read_nerfstudio(tmp_path, holdout_every=0)
    s = float(scene.transform.scale)
    for i in range(len(scene.frames)):
        mask = scene.load_loss_mask(i)
        assert mask.shape == (H, W) and not mask[:, :24].any() and mask[:, 24:].all()
        depth = scene.load_depth(i)
        valid = depth > 0
        assert torch.allclose(depth[valid], torch.tensor(2.5 * s)) and valid.sum() >= H * W - 1
    half = scene.load_depth(0, 0.5)
    assert half.shape == (H // 2, W // 2)
    scene_with_masks_and_depth(tmp_path / "cm", depth_unit_scale_factor=1e-4)  # tenths of a millimetre
    other = read_nerfstudio(tmp_path / "cm", holdout_every=0)
    assert torch.allclose(other.load_depth(1).max(), torch.tensor(0.25 * float(other.transform.scale)))


def test_mask_zero_pixels_get_no_loss_and_depth_adds_a_term(tmp_path) -> None:
    scene_with_masks_and_depth(tmp_path, n=3)
    scene = read_nerfstudio(tmp_path, holdout_every=0)
    cfg = ReconConfig(data=tmp_path, out=tmp_path / "run", device="cpu", progress=False, depth_lambda=1.0, sky_lambda=0.0,
                      init=InitConfig(random_points=200), strategy=StrategyConfig(refine_start=1000))
    trainer = Trainer(scene, cfg, torch.device("cpu"))
    view = trainer.real.views[0]
    assert view.mask is not None and view.depth is not None

    def loss() -> float:
        with torch.no_grad():
            return float(trainer.view_loss(view, trainer.real)[0])

    base = loss()
    view.image[:, :18] = 255 - view.image[:, :18]  # deep inside the mask's 0 region (the SSIM window is 11 px wide)
    assert loss() == base
    view.image[:, 30:] = 255 - view.image[:, 30:]  # where the mask is 1
    changed = loss()
    assert changed != base
    depth, view.depth = view.depth, None
    assert loss() < changed  # the dense depth term was part of the loss
    view.depth = depth


def test_applied_transform_and_scale_move_the_ply_into_the_poses_frame(tmp_path) -> None:
    info = write_nerfstudio_scene(tmp_path / "plain", n=4, size=(W, H))
    plain = read_nerfstudio(tmp_path / "plain", holdout_every=0)
    write_nerfstudio_scene(tmp_path / "moved", n=4, size=(W, H))
    a = np.radians(30.0)
    A = np.array([[np.cos(a), -np.sin(a), 0, 1.5], [np.sin(a), np.cos(a), 0, -0.5], [0, 0, 1, 2.0]])  # 3x4, ns-process-data's
    scale = 2.0
    colmap = (info["points"] / scale - A[:, 3]) @ A[:, :3]  # the points as COLMAP had them: x = A^-1 (x_poses / scale)
    write_ply(tmp_path / "moved" / "points.ply", colmap, info["rgb"])
    meta = json.loads((tmp_path / "moved" / "transforms.json").read_text())
    meta.update(applied_transform=A.tolist(), applied_scale=scale)
    (tmp_path / "moved" / "transforms.json").write_text(json.dumps(meta))
    moved = read_nerfstudio(tmp_path / "moved", holdout_every=0)
    assert torch.allclose(moved.points, plain.points, atol=1e-4)
    meta["applied_transform"] = [[1, 0, 0], [0, 1, 0]]
    (tmp_path / "moved" / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(SceneError, match="applied_transform must be a finite 3x4 or 4x4"):
        read_nerfstudio(tmp_path / "moved")


def test_fisheye_partial_masks_and_missing_files_are_refused_with_the_reason(tmp_path) -> None:
    info = scene_with_masks_and_depth(tmp_path)
    meta = info["meta"]
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps(meta | {"camera_model": "OPENCV_FISHEYE"}))
    with pytest.raises(SceneError, match="OPENCV_FISHEYE is not supported: the rasteriser projects Gaussians with a pinhole"):
        read_nerfstudio(tmp_path)
    frames = [dict(f) for f in meta["frames"]]
    frames[1].pop("mask_path")
    path.write_text(json.dumps(meta | {"frames": frames}))
    with pytest.raises(SceneError, match="mask_path is given for 3 of 4 frames"):
        read_nerfstudio(tmp_path)
    path.write_text(json.dumps(meta | {"depth_unit_scale_factor": -1}))
    with pytest.raises(SceneError, match="depth_unit_scale_factor must be a positive number"):
        read_nerfstudio(tmp_path)
    (tmp_path / meta["frames"][0]["depth_file_path"]).unlink()
    path.write_text(json.dumps(meta))
    with pytest.raises(SceneError, match="depth_file_path file is missing"):
        read_nerfstudio(tmp_path)
