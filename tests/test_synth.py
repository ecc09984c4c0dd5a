"""SynthStreet: determinism, DriveStudio conventions, exact geometry of lidar, boxes and lane shifts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faithfusion.synth import generate
from faithfusion.synth.rig import OPENCV_TO_WAYMO_CAM, RIG
from faithfusion.synth.writer import decode_depth

ARGS = dict(frames=6, cameras=("front", "front_left"), width=96, height=64, shifts=(2.0,), dynamic=True)
SEED = 3


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "a", SEED, **ARGS)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _txt(path: Path) -> np.ndarray:
    return np.loadtxt(path)


def _camera(root: Path, cam: int, ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(world-to-camera [4, 4] in OpenCV axes, (fx, fy, cx, cy)) read the way DriveStudio reads them."""
    K = _txt(root / "intrinsics" / f"{cam}.txt")[:4]
    cam_to_ego = _txt(root / "extrinsics" / f"{cam}.txt") @ OPENCV_TO_WAYMO_CAM  # DriveStudio's OPENCV2DATASET
    return np.linalg.inv(ego @ cam_to_ego), K


def test_same_seed_gives_identical_files(scene, tmp_path):
    again = generate(tmp_path / "b", SEED, **ARGS)
    a, b = _hashes(scene), _hashes(again)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_layout_and_conventions(scene):
    meta = json.loads((scene / "scene.json").read_text())
    assert meta["seed"] == SEED and meta["n_lanes"] >= 5 and meta["lane_width"] == 3.5
    assert meta["shift_dirs"] == ["gt_shifted/+0.0m", "gt_shifted/+2.0m", "gt_shifted/-2.0m"]
    lanes = json.loads((scene / "lanes.json").read_text())
    assert sum(l["is_ego_lane"] for l in lanes["lanes"]) == 1 and lanes["lanes"][meta["ego_lane"]]["is_ego_lane"]
    for t in range(ARGS["frames"]):
        for cam in (0, 1):
            for p in (f"images/{t:03d}_{cam}.jpg", f"sky_masks/{t:03d}_{cam}.png", f"dynamic_masks/all/{t:03d}_{cam}.png",
                      f"dynamic_masks/human/{t:03d}_{cam}.png", f"dynamic_masks/vehicle/{t:03d}_{cam}.png"):
                assert (scene / p).is_file(), p
        lidar = np.fromfile(scene / "lidar" / f"{t:03d}.bin", dtype=np.float32).reshape(-1, 14)
        assert len(lidar) > 1000
        assert np.allclose(lidar[:, 0:3], [1.4, 0.0, 2.0])  # origins: the top lidar in the vehicle frame
        rng = np.linalg.norm(lidar[:, 3:6] - lidar[:, 0:3], axis=1)
        assert rng.max() <= 75.0 + 1e-3 and set(np.unique(lidar[:, 13])) == {0.0}
        assert set(np.unique(lidar[:, 10])) <= {0.0, 1.0} and lidar[:, 10].mean() > 0.2  # plenty of ground returns
    assert _txt(scene / "intrinsics" / "0.txt").shape == (9,)
    # DriveStudio: extrinsic (Waymo camera axes) @ OPENCV2DATASET is the OpenCV camera-to-vehicle
    for cam, name in ((0, "front"), (1, "front_left")):
        ext = _txt(scene / "extrinsics" / f"{cam}.txt")
        assert np.allclose(ext @ OPENCV_TO_WAYMO_CAM, RIG[name].cam_to_ego())
        # in Waymo's camera axes the camera looks along its own +x
        yaw = np.radians(RIG[name].yaw)
        assert np.allclose(ext[:2, 0] / np.linalg.norm(ext[:2, 0]), [np.cos(yaw), np.sin(yaw)], atol=1e-9)
    info = json.loads((scene / "instances" / "instances_info.json").read_text())
    frames = json.loads((scene / "instances" / "frame_instances.json").read_text())
    assert list(info) == [str(i) for i in range(len(info))]  # DriveStudio indexes instances 0..N-1
    assert all(v["class_name"] == "Vehicle" for v in info.values())
    assert set(frames) == {str(t) for t in range(ARGS["frames"])}
    # a moving vehicle shows in the dynamic masks of some frame
    assert any(np.array(Image.open(p)).any() for p in (scene / "dynamic_masks" / "all").glob("*.png"))


def test_lidar_points_lie_on_the_rendered_surfaces(scene):
    """Project every lidar point into the cameras; where the pixels around it see one plane, the
    depth map (1/z interpolated bilinearly, exact on a plane) agrees within 1 %."""
    checked, good = 0, 0
    for t in range(ARGS["frames"]):
        ego = _txt(scene / "ego_pose" / f"{t:03d}.txt")
        lidar = np.fromfile(scene / "lidar" / f"{t:03d}.bin", dtype=np.float32).reshape(-1, 14).astype(np.float64)
        pts = lidar[:, 3:6] @ ego[:3, :3].T + ego[:3, 3]  # vehicle -> world
        for cam in (0, 1):
            w2c, (fx, fy, cx, cy) = _camera(scene, cam, ego)
            depth = decode_depth(np.array(Image.open(scene / "gt_shifted" / "+0.0m" / "depth" / f"{t:03d}_{cam}.png")))
            pc = pts @ w2c[:3, :3].T + w2c[:3, 3]
            z = pc[:, 2]
            front = z > 0.5
            u = fx * pc[front, 0] / z[front] + cx - 0.5  # in pixel-centre units
            v = fy * pc[front, 1] / z[front] + cy - 0.5
            z = z[front]
            H, W = depth.shape
            inside = (u >= 1) & (v >= 1) & (u < W - 2) & (v < H - 2)
            u, v, z = u[inside], v[inside], z[inside]
            i0, j0 = np.floor(u).astype(int), np.floor(v).astype(int)
            fu, fv = u - i0, v - j0
            # the 4 x 4 pixel centres around the point: one plane when 1/z is affine there, i.e. all
            # second differences vanish (up to the PNG's 1/256 m steps)
            blk = np.stack([depth[j0 + dj, i0 + di] for dj in (-1, 0, 1, 2) for di in (-1, 0, 1, 2)], 1).reshape(-1, 4, 4)
            qb = 1.0 / np.where(blk > 0, blk, 1e-9)
            tol = qb[:, 1:3, 1:3].mean((1, 2)) * (1e-3 + 3.0 / 256.0 * qb[:, 1:3, 1:3].mean((1, 2)))
            d2 = np.maximum(np.abs(qb[:, :, :-2] - 2 * qb[:, :, 1:-1] + qb[:, :, 2:]).max((1, 2)),
                            np.abs(qb[:, :-2, :] - 2 * qb[:, 1:-1, :] + qb[:, 2:, :]).max((1, 2)))
            smooth = (blk.min((1, 2)) > 0) & (d2 < tol)
            q = qb[:, 1:3, 1:3].reshape(-1, 4)
            qi = (q[:, 0] * (1 - fu) + q[:, 1] * fu) * (1 - fv) + (q[:, 2] * (1 - fu) + q[:, 3] * fu) * fv
            err = np.abs(1.0 / qi - z) / z
            checked += int(smooth.sum())
            good += int((err[smooth] < 0.01).sum())
    assert checked > 500
    assert good / checked > 0.99, (good, checked)


def _corners(o2w: np.ndarray, size) -> np.ndarray:  # [8, 3]
    c = np.array([[(i & 1) - 0.5, ((i >> 1) & 1) - 0.5, ((i >> 2) & 1) - 0.5] for i in range(8)]) * np.asarray(size)
    return c @ o2w[:3, :3].T + o2w[:3, 3]


def test_projected_box_corners_bound_the_instance_mask(scene):
    info = json.loads((scene / "instances" / "instances_info.json").read_text())
    tested = 0
    for shift in ("+0.0m", "+2.0m", "-2.0m"):
        base = scene / "gt_shifted" / shift
        boxes = json.loads((base / "boxes_2d.json").read_text())
        for t in range(ARGS["frames"]):
            ego = _txt(base / "ego_pose" / f"{t:03d}.txt")
            for cam in (0, 1):
                inst = np.array(Image.open(base / "instance_masks" / f"{t:03d}_{cam}.png"))
                w2c, (fx, fy, cx, cy) = _camera(scene, cam, ego)
                labels = {b["instance"]: b for b in boxes[f"{t:03d}_{cam}"]}
                for k in np.unique(inst[inst > 0]) - 1:
                    ys, xs = np.nonzero(inst == k + 1)
                    assert labels[k]["visible_pixels"] == len(xs)
                    ann = info[str(k)]["frame_annotations"]
                    if t not in ann["frame_idx"]:
                        continue
                    n = ann["frame_idx"].index(t)
                    c = _corners(np.asarray(ann["obj_to_world"][n]), ann["box_size"][n]) @ w2c[:3, :3].T + w2c[:3, 3]
                    if (c[:, 2] < 0.1).any():
                        continue
                    u, v = fx * c[:, 0] / c[:, 2] + cx, fy * c[:, 1] / c[:, 2] + cy
                    assert (xs + 0.5 >= u.min() - 1e-6).all() and (xs + 0.5 <= u.max() + 1e-6).all()
                    assert (ys + 0.5 >= v.min() - 1e-6).all() and (ys + 0.5 <= v.max() + 1e-6).all()
                    x0, y0, x1, y1 = labels[k]["box_projected"]
                    assert x0 <= xs.min() + 0.5 and xs.max() + 0.5 <= x1 and y0 <= ys.min() + 0.5 and ys.max() + 0.5 <= y1
                    tested += 1
    assert tested > 10


def test_shifted_ego_is_exactly_d_metres_to_the_left(scene):
    for shift, d in (("+2.0m", 2.0), ("-2.0m", -2.0), ("+0.0m", 0.0)):
        for t in range(ARGS["frames"]):
            ego = _txt(scene / "ego_pose" / f"{t:03d}.txt")
            moved = _txt(scene / "gt_shifted" / shift / "ego_pose" / f"{t:03d}.txt")
            assert np.allclose(moved[:3, :3], ego[:3, :3], atol=1e-12)
            assert np.allclose(moved[:3, 3] - ego[:3, 3], d * ego[:3, 1], atol=1e-9)
            for cam in (0, 1):  # the cameras move with it
                c0 = np.linalg.inv(_camera(scene, cam, ego)[0])[:3, 3]
                c1 = np.linalg.inv(_camera(scene, cam, moved)[0])[:3, 3]
                assert np.allclose(c1 - c0, d * ego[:3, 1], atol=1e-9)
                assert abs(np.linalg.norm(c1 - c0) - abs(d)) < 1e-9


def test_shifted_views_differ_and_keep_the_sky_at_infinity(scene):
    a = np.asarray(Image.open(scene / "gt_shifted" / "+2.0m" / "images" / "003_0.jpg"), np.float32)
    b = np.asarray(Image.open(scene / "gt_shifted" / "-2.0m" / "images" / "003_0.jpg"), np.float32)
    assert np.abs(a - b).mean() > 5.0
    sa = np.array(Image.open(scene / "gt_shifted" / "+2.0m" / "sky_masks" / "003_0.png")) > 0
    sb = np.array(Image.open(scene / "gt_shifted" / "-2.0m" / "sky_masks" / "003_0.png")) > 0
    both = sa & sb
    for _ in range(2):  # away from edges (anti-aliasing, JPEG blocks)
        both[1:-1, 1:-1] &= both[:-2, 1:-1] & both[2:, 1:-1] & both[1:-1, :-2] & both[1:-1, 2:]
        both[[0, -1], :] = False
        both[:, [0, -1]] = False
    if both.sum() > 20:  # a pure translation leaves the colour of the sky in each direction unchanged
        assert np.abs(a[both] - b[both]).mean() < 3.0


def test_the_drivestudio_reader_loads_the_scene(scene):
    ds = pytest.importorskip("faithfusion.data.drivestudio")
    data = ds.read_drivestudio(scene, cameras=(0, 1))
    assert len(data.frames) == ARGS["frames"] * len(ARGS["cameras"])
    assert len(data.points) > 1000
    cam = data.frames[0].camera
    assert (cam.width, cam.height) == (ARGS["width"], ARGS["height"])
    K = _txt(scene / "intrinsics" / f"{data.frames[0].cam_name}.txt")
    assert np.allclose(cam.K[0, 0].item(), K[0], rtol=1e-5)
    # scene coordinates are the first ego frame: the front camera sits where the rig puts it
    f0 = next(f for f in data.frames if f.timestep == 0 and str(f.cam_name) == "0")
    c2w = f0.camera.camtoworld.numpy()
    assert np.allclose(c2w[:3, 3], RIG["front"].position, atol=1e-4)
    assert np.allclose(c2w[:3, :3], RIG["front"].cam_to_ego()[:3, :3], atol=1e-5)


def test_depth_at_pixel_centres_matches_a_brute_force_ray_cast():
    """The fast path (supersampled raster, plane means, edge ray tests) against an oracle that
    intersects each pixel-centre ray with every triangle."""
    from faithfusion.synth.render import render
    from faithfusion.synth.scene import SynthScene
    from faithfusion.synth.world import make_world

    world = make_world(5, frames=2, dynamic=True)
    arrays = SynthScene(world, shadows=False).arrays_at(1)
    cam = RIG["front_left"]
    w2c = np.linalg.inv(world.ego_pose(1) @ cam.cam_to_ego())
    W, H = 96, 64
    K = cam.intrinsics(W, H)
    _, depth, inst = render(arrays, w2c[None], K[None], W, H, 2)
    depth, inst = depth[0], inst[0]
    rng = np.random.default_rng(0)
    ii, jj = rng.integers(0, W, 300), rng.integers(0, H, 300)
    R, C = w2c[:3, :3], -w2c[:3, :3].T @ w2c[:3, 3]
    v0 = arrays.tri_v[:, 0]
    e1, e2 = arrays.tri_v[:, 1] - v0, arrays.tri_v[:, 2] - v0
    agree = 0
    for i, j in zip(ii, jj):
        r = R.T @ np.array([(i + 0.5 - K[2]) / K[0], (j + 0.5 - K[3]) / K[1], 1.0])  # camera z = 1: t is the depth
        p = np.cross(r, e2)
        det = (e1 * p).sum(1)
        ok = np.abs(det) > 1e-14
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        s = C - v0
        b1 = (s * p).sum(1) * inv
        q = np.cross(s, e1)
        b2 = (q @ r) * inv
        t = (e2 * q).sum(1) * inv
        hit = ok & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1) & (t > 0.05)
        if not hit.any():
            agree += depth[j, i] == 0.0
            continue
        k = np.argmin(np.where(hit, t, np.inf))
        same_z = abs(depth[j, i] - t[k]) <= 1e-5 * t[k]
        same_inst = inst[j, i] == arrays.obj_inst[arrays.tri_obj[k]]
        agree += bool(same_z and same_inst)
    assert agree >= 0.99 * len(ii), agree


def test_existing_scene_is_not_written_over_without_overwrite(scene, tmp_path):
    import shutil

    from faithfusion.synth.generate import INCOMPLETE_MARKER, SceneFolderError

    copy = tmp_path / "copy"
    shutil.copytree(scene, copy)
    before = _hashes(copy)
    small = dict(frames=2, cameras=("front",), width=32, height=24, shifts=(1.0,))
    with pytest.raises(SceneFolderError, match="--overwrite"):
        generate(copy, SEED + 1, **small)
    assert _hashes(copy) == before
    generate(copy, SEED + 1, overwrite=True, **small)  # replaced as a whole: no timestep of the old scene left
    assert sorted(p.name for p in (copy / "images").iterdir()) == ["000_0.jpg", "001_0.jpg"]
    assert json.loads((copy / "scene.json").read_text())["seed"] == SEED + 1
    assert not (copy / INCOMPLETE_MARKER).exists()


def test_overwrite_never_replaces_a_folder_that_is_not_a_synth_scene(tmp_path):
    from faithfusion.synth.generate import SceneFolderError

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(SceneFolderError, match="not a SynthStreet scene"):
        generate(tmp_path / "mine", 0, frames=1, cameras=("front",), width=32, height=24, shifts=(1.0,), overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_kill_while_an_old_scene_is_removed_leaves_a_folder_that_can_be_replaced(scene, tmp_path, monkeypatch):
    """The old scene is renamed aside before it is removed: a kill during the removal (simulated here) leaves the
    new folder with its incomplete-marker, which the next run replaces, and the set-aside copy is cleaned up."""
    import importlib
    import shutil

    gen = importlib.import_module("faithfusion.synth.generate")  # the module (the package exports the function)
    copy = tmp_path / "copy"
    shutil.copytree(scene, copy)
    real_rmtree = shutil.rmtree

    def killed_midway(path, *a, **kw):  # removes scene.json first, then the process dies
        (Path(path) / "scene.json").unlink(missing_ok=True)
        raise KeyboardInterrupt("killed while removing the old scene")

    monkeypatch.setattr(gen.shutil, "rmtree", killed_midway)
    small = dict(frames=2, cameras=("front",), width=32, height=24, shifts=(1.0,))
    with pytest.raises(KeyboardInterrupt):
        generate(copy, SEED + 1, overwrite=True, **small)
    monkeypatch.setattr(gen.shutil, "rmtree", real_rmtree)
    assert gen.is_synth_scene_folder(copy) and len(gen.replaced_folders(copy)) == 1
    generate(copy, SEED + 1, overwrite=True, **small)
    assert json.loads((copy / "scene.json").read_text())["seed"] == SEED + 1
    assert gen.replaced_folders(copy) == []
