"""Scene readers: what is written comes back (cameras, poses, points), images load undistorted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from faithfusion.cameras import lane_shift_camera
from faithfusion.data import detect_format, load_scene
from faithfusion.data.colmap import read_colmap
from faithfusion.data.drivestudio import OPENCV_TO_WAYMO_CAM, read_drivestudio, waymo_extrinsic
from faithfusion.data.images import distort_normalized, load_frame_image
from faithfusion.data.llff import read_llff
from faithfusion.data.nerfstudio import read_nerfstudio
from faithfusion.data.scene import Frame
from faithfusion.data.common import make_camera

try:
    from tests import scene_fixtures as fx
except ImportError:  # tests/ is not a package
    import scene_fixtures as fx

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def project(cam, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # [N, 2] pixels, [N] depth
    X = pts @ cam.viewmat[:3, :3].T + cam.viewmat[:3, 3]
    uv = X @ cam.K.T
    return uv[:, :2] / uv[:, 2:], X[:, 2]


def assert_pose_close(c2w_scene: torch.Tensor, tf, c2w_world: np.ndarray, atol: float) -> None:
    back = tf.pose_to_world(c2w_scene).double().numpy()
    np.testing.assert_allclose(back[:3, :3], c2w_world[:3, :3], atol=1e-4)
    np.testing.assert_allclose(back[:3, 3], c2w_world[:3, 3], atol=atol)


# --- DriveStudio -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    truth = fx.write_drivestudio_scene(tmp_path_factory.mktemp("ds"))
    return truth, read_drivestudio(truth["root"], holdout_every=3, max_points=None)


def test_extrinsic_convention():
    # a Waymo front camera with identity extrinsic looks along the vehicle's +x
    c2e = np.eye(4) @ OPENCV_TO_WAYMO_CAM
    np.testing.assert_allclose(c2e[:3, 2], [1, 0, 0])  # OpenCV z (forward) = vehicle x
    np.testing.assert_allclose(c2e[:3, 0], [0, -1, 0])  # OpenCV x (right) = vehicle -y
    np.testing.assert_allclose(c2e[:3, 1], [0, 0, -1])  # OpenCV y (down) = vehicle -z
    np.testing.assert_allclose(waymo_extrinsic(c2e), np.eye(4), atol=1e-12)


def test_drivestudio_cameras_round_trip(ds):
    truth, scene = ds
    assert scene.kind == "driving" and len(scene.frames) == 6 * 3
    assert scene.transform.scale == 1.0
    ego0 = truth["ego"][0]
    for f in scene.frames:
        cam_id = int(f.cam_name)
        fx_, fy_, cx, cy = truth["intrinsics"][cam_id][:4]
        np.testing.assert_allclose(f.camera.K.numpy(), [[fx_, 0, cx], [0, fy_, cy], [0, 0, 1]], atol=1e-5)
        assert (f.camera.width, f.camera.height) == truth["size"]
        c2w_world = truth["ego"][f.timestep] @ truth["cam_to_ego"][cam_id]
        expected_scene = np.linalg.inv(ego0) @ c2w_world  # DriveStudio's frame: the first ego pose
        np.testing.assert_allclose(f.camera.camtoworld.numpy(), expected_scene, atol=1e-4)
        assert_pose_close(f.camera.camtoworld, scene.transform, c2w_world, atol=2e-3)
        np.testing.assert_allclose(f.ego_to_world.numpy(), np.linalg.inv(ego0) @ truth["ego"][f.timestep], atol=1e-4)
        assert (f.distortion is not None) == (cam_id == 2)
    np.testing.assert_allclose(scene.frames[0].ego_to_world.numpy(), np.eye(4), atol=1e-6)


def test_drivestudio_metric_lane_shift(ds):
    _, scene = ds
    a, b = scene.frames[0].ego_to_world, scene.frames[3].ego_to_world  # t=0 and t=1
    assert torch.linalg.norm(b[:3, 3] - a[:3, 3]).item() == pytest.approx(2.0, abs=1e-4)  # 2 m per step
    f = scene.frames[0]
    shifted = lane_shift_camera(f.camera, f.ego_to_world, 3.0)
    assert torch.linalg.norm(shifted.center - f.camera.center).item() == pytest.approx(3.0, abs=1e-4)


def test_drivestudio_holdout_by_timestep(ds):
    _, scene = ds
    assert scene.extra["test_timesteps"] == [0, 3]
    assert {scene.frames[i].timestep for i in scene.test_ids} == {0, 3}
    assert len(scene.test_ids) == 6 and len(scene.train_ids) == 12


def test_drivestudio_lidar_projects_to_its_pixels(ds):
    truth, scene = ds
    pix = truth["pixels"]
    for f in scene.frames:
        sel = pix[:, 0] == int(f.cam_name)
        uv, z = project(f.camera, f.lidar_points[torch.from_numpy(sel)])
        assert (z > 0).all()
        np.testing.assert_allclose(uv.numpy(), pix[sel, 1:], atol=2e-3)


def test_drivestudio_points_and_colors(ds):
    truth, scene = ds
    n = len(truth["lidar"])
    assert scene.points.shape == (n * 6, 3)  # the sweeps of all timesteps, in order
    pix = truth["pixels"]
    palette = np.array([(0.5, 0.5, 0.5)] + [np.array(c) / 255.0 for c in fx.CAM_COLORS.values()])
    for t in range(6):
        colors = scene.point_colors[t * n : (t + 1) * n]
        if t in (0, 3):  # held out: coloured from the nearest training timestep's images, never its own
            dist = np.abs(colors.numpy()[:, None] - palette[None]).max(-1).min(-1)
            assert (dist < 0.03).all()
            continue
        hidden = pix[:, 0] < 0
        np.testing.assert_allclose(colors[torch.from_numpy(hidden)].numpy(), 0.5)
        for cam, rgb in fx.CAM_COLORS.items():
            # cameras do not overlap (yaw 0, +-80 deg), so each point takes the colour of its camera
            got = colors[torch.from_numpy(pix[:, 0] == cam)].numpy()
            np.testing.assert_allclose(got, np.broadcast_to(np.array(rgb) / 255.0, got.shape), atol=0.03)


def test_drivestudio_masks_instances_and_images(ds):
    truth, scene = ds
    f0 = scene.frames[0]
    sky = scene.load_sky_mask(0)
    assert sky.shape == (48, 64) and sky.dtype == torch.bool
    assert sky[:10].all() and not sky[14:].any()
    assert scene.load_sky_mask(0, scale=0.5).shape == (24, 32)
    assert f0.dynamic_mask_path is not None and f0.dynamic_mask_path.is_file()
    img = scene.load_image(0)
    assert img.shape == (48, 64, 3)
    np.testing.assert_allclose(img.mean((0, 1)).numpy(), np.array(fx.CAM_COLORS[0]) / 255, atol=0.02)
    assert scene.load_image(0, scale=0.5).shape == (24, 32, 3)
    inst = scene.instances["instances_info"]["0"]
    o2s = np.asarray(inst["frame_annotations"]["obj_to_world"][2])
    np.testing.assert_allclose(o2s, np.linalg.inv(truth["ego"][0]) @ truth["obj_to_world"][2], atol=1e-4)
    assert scene.instances["frame_instances"]["2"] == [0]


def test_drivestudio_frame_range(ds):
    truth, _ = ds
    scene = read_drivestudio(truth["root"], start=1, end=4, cameras=(0,), holdout_every=0, color_points=False)
    assert [f.timestep for f in scene.frames] == [1, 2, 3] and scene.test_ids == []
    np.testing.assert_allclose(scene.frames[0].ego_to_world.numpy(), np.eye(4), atol=1e-5)
    assert scene.point_colors is None and scene.points.shape[0] == 3 * len(truth["lidar"])
    capped = read_drivestudio(truth["root"], max_points=100, color_points=False)
    assert capped.points.shape == (100, 3)
    train_only = read_drivestudio(truth["root"], holdout_every=3, points_from_test=False, color_points=False, max_points=None)
    assert train_only.points.shape[0] == 4 * len(truth["lidar"])


def test_writer_is_atomic_and_complete(ds):
    truth, _ = ds
    root = truth["root"]
    assert not list(root.rglob("*.tmp"))
    assert Image.open(root / "images" / "000_0.jpg").format == "JPEG"
    assert (root / "lidar" / "000.bin").stat().st_size == truth["lidar"].size * 4
    for cls in ("all",):
        assert (root / "dynamic_masks" / cls / "005_2.png").is_file()


# --- images: undistortion ----------------------------------------------------------------------


def _undistort_points(xd: np.ndarray, yd: np.ndarray, dist, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Invert the forward OpenCV model by fixed-point iteration (as cv2.undistortPoints)."""
    k1, k2, p1, p2, k3 = dist
    x, y = xd.copy(), yd.copy()
    for _ in range(iters):
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / radial, (yd - dy) / radial
    return x, y


def test_undistortion_recovers_the_pinhole_image(tmp_path):
    W, H, (fx_, fy_, cx, cy) = 120, 90, (80.0, 82.0, 61.0, 44.0)
    dist = (-0.25, 0.06, 0.002, -0.0015, 0.01)
    truth = lambda x, y: np.stack([0.5 + 0.4 * np.sin(5 * x) * np.cos(4 * y), 0.5 + 0.4 * np.cos(3 * x + 2 * y), 0.5 + 0.3 * x], -1)  # noqa: E731
    v, u = np.mgrid[0:H, 0:W] + 0.5
    xd, yd = (u - cx) / fx_, (v - cy) / fy_
    x, y = _undistort_points(xd, yd, dist)
    xr, yr = distort_normalized(torch.from_numpy(x), torch.from_numpy(y), dist)
    np.testing.assert_allclose(xr.numpy(), xd, atol=1e-9)  # the inversion converged
    raw = np.clip(truth(x, y) * 255 + 0.5, 0, 255).astype(np.uint8)  # what a distorting lens records
    Image.fromarray(raw).save(tmp_path / "raw.png")
    K = np.array([[fx_, 0, cx], [0, fy_, cy], [0, 0, 1.0]])
    cam = make_camera(K, np.eye(4), W, H, name="raw")
    frame = Frame(image_path=tmp_path / "raw.png", camera=cam, distortion=torch.tensor(dist))
    out = load_frame_image(frame).numpy()
    expected = truth((u - cx) / fx_, (v - cy) / fy_)
    inner = (slice(10, H - 10), slice(12, W - 12))
    err = np.abs(out[inner] - expected[inner]).mean()
    err_raw = np.abs(raw[inner] / 255.0 - expected[inner]).mean()
    assert err < 0.01 and err_raw > 5 * err, (err, err_raw)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # truncated files must fail to decode


def test_image_resize_is_area_average(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    img[::2, ::2] = 255  # one white pixel per 2x2 block
    Image.fromarray(img).save(tmp_path / "a.png")
    cam = make_camera(np.array([[8.0, 0, 4], [0, 8, 4], [0, 0, 1]]), np.eye(4), 8, 8, name="a")
    out = load_frame_image(Frame(image_path=tmp_path / "a.png", camera=cam), scale=0.5)
    assert out.shape == (4, 4, 3)
    np.testing.assert_allclose(out.numpy(), 0.25, atol=2 / 255)


# --- nerfstudio --------------------------------------------------------------------------------


def test_nerfstudio_round_trip(tmp_path):
    truth = fx.write_nerfstudio_scene(tmp_path)
    scene = read_nerfstudio(tmp_path, holdout_every=4)
    assert len(scene.frames) == 6 and scene.test_ids == [0, 4]
    assert [f.image_path.name for f in scene.frames] == [f"frame_{i:03d}.png" for i in range(6)]  # sorted
    radii = torch.stack([f.camera.center for f in scene.frames]).norm(dim=1)
    assert radii.max().item() == pytest.approx(1.0, abs=1e-5)
    m = truth["meta"]
    for i, f in enumerate(scene.frames):
        K = [[50.0, 0, 23.0], [0, 52.0, 17.5], [0, 0, 1]] if i == 2 else [[m["fl_x"], 0, m["cx"]], [0, m["fl_y"], m["cy"]], [0, 0, 1]]
        np.testing.assert_allclose(f.camera.K.numpy(), K, atol=1e-5)
        assert_pose_close(f.camera.camtoworld, scene.transform, truth["c2w"][i], atol=1e-5)
        if i == 2:
            assert f.distortion is None
        else:
            np.testing.assert_allclose(f.distortion.numpy(), [0.01, -0.002, 0.0005, -0.0003, 0.0], atol=1e-7)
    np.testing.assert_allclose(scene.transform.points_to_world(scene.points).numpy(), truth["points"], atol=1e-5)
    np.testing.assert_allclose(scene.point_colors.numpy(), truth["rgb"] / 255.0, atol=1e-6)
    assert load_scene(tmp_path).source == scene.source
    assert scene.load_image(1).shape == (36, 48, 3)


@pytest.mark.skipif(not (SHARED / "data" / "fox" / "transforms.json").is_file(), reason="shared fox scene absent")
def test_fox_scene():
    scene = load_scene(SHARED / "data" / "fox")
    assert len(scene.frames) == 67 and len(scene.test_ids) == 9
    cam = scene.frames[0].camera
    assert (cam.width, cam.height) == (540, 960)
    assert cam.K[0, 0].item() == pytest.approx(687.76, rel=1e-6)
    assert scene.frames[0].distortion is not None
    # every camera looks at the point nearest to all optical axes (it is in front of all of them)
    c2w = torch.stack([f.camera.camtoworld for f in scene.frames]).double()
    o, d = c2w[:, :3, 3], c2w[:, :3, 2]
    P = torch.eye(3, dtype=torch.float64) - d[:, :, None] * d[:, None, :]
    target = torch.linalg.solve(P.sum(0), (P @ o[:, :, None]).sum(0))[:, 0]
    assert (((target - o) * d).sum(1) > 0.5).all()
    assert o.norm(dim=1).max().item() == pytest.approx(1.0, abs=1e-5)
    img = scene.load_image(0, scale=0.5)
    assert img.shape == (480, 270, 3) and 0.1 < img.mean().item() < 0.9


# --- COLMAP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["bin", "txt"])
def test_colmap_round_trip(tmp_path, binary):
    truth = fx.write_colmap_scene(tmp_path, binary=binary)
    scene = load_scene(tmp_path)
    assert detect_format(tmp_path) == "colmap" and len(scene.frames) == 6
    expected = {
        1: ([35, 35, 20, 15], None), 2: ([36, 37, 19.5, 15.5], None),
        3: ([34, 34, 20, 15], [0.02, 0, 0, 0, 0]), 4: ([33, 33, 20, 15], [0.02, -0.01, 0, 0, 0]),
        5: ([35, 35.5, 20.5, 14.5], [0.03, -0.01, 0.001, -0.002, 0]),
    }  # fmt: skip
    for i, f in enumerate(scene.frames):
        (fx_, fy_, cx, cy), dist = expected[1 + i % 5]
        np.testing.assert_allclose(f.camera.K.numpy(), [[fx_, 0, cx], [0, fy_, cy], [0, 0, 1]], atol=1e-5)
        if dist is None:
            assert f.distortion is None
        else:
            np.testing.assert_allclose(f.distortion.numpy(), dist, atol=1e-7)
        assert_pose_close(f.camera.camtoworld, scene.transform, truth["c2w"][i], atol=1e-5)
    np.testing.assert_allclose(scene.transform.points_to_world(scene.points).numpy(), truth["points"], atol=1e-5)
    np.testing.assert_allclose(scene.point_colors.numpy(), truth["rgb"] / 255.0, atol=1e-6)
    # the model folder itself works too
    assert len(read_colmap(truth["model"]).frames) == 6


# --- LLFF --------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [None, 2])
def test_llff_round_trip(tmp_path, factor):
    truth = fx.write_llff_scene(tmp_path)
    scene = read_llff(tmp_path, factor=factor) if factor else load_scene(tmp_path)
    s = 1.0 / (factor or 1)
    W, H = truth["size"]
    for i, f in enumerate(scene.frames):
        K = [[truth["focal"] * s, 0, W * s / 2], [0, truth["focal"] * s, H * s / 2], [0, 0, 1]]
        np.testing.assert_allclose(f.camera.K.numpy(), K, atol=1e-5)
        assert (f.camera.width, f.camera.height) == (round(W * s), round(H * s))
        assert_pose_close(f.camera.camtoworld, scene.transform, truth["c2w"][i], atol=1e-5)
    np.testing.assert_allclose(scene.extra["bounds"].numpy(), truth["bounds"] * scene.transform.scale, rtol=1e-5)
    assert scene.points.shape == (0, 3)


def test_point_colors_never_from_held_out_images(tmp_path):
    truth = fx.write_drivestudio_scene(tmp_path, n_steps=4)
    for cam in truth["cams"]:  # held-out timestep 0 (holdout_every=2 -> 0, 2) painted white
        for t in (0, 2):
            Image.new("RGB", truth["size"], (255, 255, 255)).save(tmp_path / "images" / f"{t:03d}_{cam}.jpg", quality=95)
    scene = read_drivestudio(tmp_path, holdout_every=2, max_points=None)
    assert scene.points.shape[0] == 4 * len(truth["lidar"])
    assert (scene.point_colors.min(dim=1).values < 0.9).all()  # no white point
