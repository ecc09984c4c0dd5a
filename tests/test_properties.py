"""Property-based tests (hypothesis) of the camera math and the readers' round trips."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from faithfusion.cameras import (
    Camera,
    PoseError,
    check_rigid,
    invert_rigid,
    lane_shift_camera,
    lane_shift_ego,
    quat_to_rotmat,
    rotmat_to_quat,
    slerp,
)
from faithfusion.data.colmap import is_points2d_line, read_colmap
from faithfusion.data.common import read_pose_txt
from faithfusion.data.nerfstudio import read_nerfstudio

try:
    from tests import scene_fixtures as fx
except ImportError:  # tests/ is not a package
    import scene_fixtures as fx

FAST = settings(max_examples=40, deadline=None)
SLOW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

coord = st.floats(-50.0, 50.0, allow_nan=False, allow_infinity=False)
metres = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)


@st.composite
def unit_quats(draw) -> torch.Tensor:  # [4] float64, w >= 0, away from the zero vector
    v = draw(st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4).filter(lambda v: sum(x * x for x in v) > 0.01))
    q = torch.tensor(v, dtype=torch.float64)
    q = q / q.norm()
    return -q if q[0] < 0 else q


@st.composite
def rigid_poses(draw) -> torch.Tensor:  # [4, 4] float64
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = quat_to_rotmat(draw(unit_quats()))
    T[:3, 3] = torch.tensor([draw(coord) for _ in range(3)], dtype=torch.float64)
    return T


def angle(q0: torch.Tensor, q1: torch.Tensor) -> float:
    """Rotation angle between unit quaternions (radians, in [0, pi])."""
    return 2.0 * math.acos(min(1.0, abs(float(torch.dot(q0, q1)))))


# --- rigid checks -------------------------------------------------------------------------------


@FAST
@given(rigid_poses())
def test_rigid_poses_are_accepted(T):
    assert torch.allclose(check_rigid(T, source="p").double(), T, atol=1e-4)
    assert torch.allclose(invert_rigid(T) @ T, torch.eye(4, dtype=T.dtype), atol=1e-9)


@FAST
@given(rigid_poses(), st.floats(0.01, 1.0), st.integers(0, 2), st.integers(0, 2))
def test_sheared_poses_are_refused(T, amount, i, j):
    S = torch.eye(4, dtype=T.dtype)
    S[i, (i + 1 + j % 2) % 3] = amount  # an off-diagonal shear
    with pytest.raises(PoseError, match="not rigid"):
        check_rigid(T @ S, source="p")


@FAST
@given(rigid_poses(), st.integers(0, 11), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_non_finite_poses_are_refused(T, k, value):
    T = T.clone()
    T[k // 4, k % 4] = value
    with pytest.raises(PoseError, match="NaN or infinite"):
        check_rigid(T, source="p")


@FAST
@given(rigid_poses())
def test_reflections_are_refused(T):
    with pytest.raises(PoseError, match="reflection"):
        check_rigid(T @ torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0], dtype=T.dtype)), source="p")


# --- quaternions and SLERP ----------------------------------------------------------------------


@FAST
@given(unit_quats())
def test_quaternion_round_trip(q):
    back = rotmat_to_quat(quat_to_rotmat(q))
    assert torch.allclose(back, q, atol=1e-7) or torch.allclose(back, -q, atol=1e-7)  # q and -q: one rotation


@FAST
@given(unit_quats(), unit_quats())
def test_slerp_endpoints_and_unit_norm(q0, q1):
    assert torch.allclose(slerp(q0, q1, 0.0), q0, atol=1e-6)
    end = slerp(q0, q1, 1.0)
    assert torch.allclose(end, q1, atol=1e-6) or torch.allclose(end, -q1, atol=1e-6)  # q and -q: one rotation
    for t in (0.1, 0.37, 0.5, 0.9):
        assert float(slerp(q0, q1, t).norm()) == pytest.approx(1.0, abs=1e-9)


@FAST
@given(unit_quats(), unit_quats())
def test_slerp_angle_grows_monotonically_and_evenly(q0, q1):
    total = angle(q0, q1)
    ts = [k / 8 for k in range(9)]
    angles = [angle(q0, slerp(q0, q1, t)) for t in ts]
    assert all(b >= a - 1e-6 for a, b in zip(angles, angles[1:]))
    for t, a in zip(ts, angles):
        assert a == pytest.approx(t * total, abs=1e-4)  # constant angular speed


# --- lane shift ---------------------------------------------------------------------------------


def camera_on(ego: torch.Tensor, cam_to_ego: torch.Tensor) -> Camera:
    K = torch.tensor([[50.0, 0.0, 32.0], [0.0, 50.0, 24.0], [0.0, 0.0, 1.0]])
    return Camera(K=K, viewmat=invert_rigid((ego @ cam_to_ego).float()), width=64, height=48)


@FAST
@given(rigid_poses(), metres, metres)
def test_lane_shift_composes(ego, a, b):
    twice = lane_shift_ego(lane_shift_ego(ego, a), b)
    assert torch.allclose(twice, lane_shift_ego(ego, a + b), atol=1e-9)


@FAST
@given(rigid_poses(), rigid_poses(), metres)
def test_lane_shift_keeps_orientation_and_moves_by_the_shift(ego, cam_to_ego, d):
    ego = ego.float()
    cam = camera_on(ego, cam_to_ego.float())
    shifted = lane_shift_camera(cam, ego, d)
    R0, R1 = cam.camtoworld[:3, :3], shifted.camtoworld[:3, :3]
    assert torch.allclose(R0, R1, atol=1e-5)
    move = shifted.center - cam.center  # [3]
    assert float(move.norm()) == pytest.approx(abs(d), abs=1e-3)
    assert torch.allclose(move, d * ego[:3, 1], atol=1e-3)  # along the ego's left axis


# --- readers ------------------------------------------------------------------------------------


@FAST
@given(rigid_poses())
def test_pose_text_round_trip(T):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "pose.txt"
        np.savetxt(path, T.numpy())
        np.testing.assert_allclose(read_pose_txt(path), T.numpy(), atol=1e-12)


@FAST
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=0, max_size=12).map(lambda v: v[: len(v) - len(v) % 3]))
def test_points2d_lines_are_recognised(values):
    assert is_points2d_line(" ".join(repr(v) for v in values))


@FAST
@given(st.integers(1, 10**6), unit_quats(), st.lists(coord, min_size=3, max_size=3), st.integers(1, 99),
       st.from_regex(r"[A-Za-z0-9_]{1,12}\.(png|jpg)", fullmatch=True))  # fmt: skip
def test_image_lines_are_not_points2d_lines(iid, q, t, cid, name):
    line = f"{iid} " + " ".join(repr(float(x)) for x in (*q.tolist(), *t)) + f" {cid} {name}"
    assert not is_points2d_line(line)


def distinct_centres(poses: list[torch.Tensor]) -> bool:
    c = torch.stack([T[:3, 3] for T in poses])
    return bool(torch.cdist(c, c).add(torch.eye(len(poses), dtype=c.dtype) * 1e9).min() > 0.1)


@SLOW
@given(st.lists(rigid_poses(), min_size=2, max_size=4).filter(distinct_centres), st.booleans(), st.booleans())
def test_colmap_round_trip(c2ws, binary, points2d):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        model = root / "sparse" / "0"
        model.mkdir(parents=True)
        (root / "images").mkdir()
        images = []
        for i, c2w in enumerate(c2ws):
            Image.new("RGB", (40, 30)).save(root / "images" / f"img_{i:02d}.png")
            w2c = invert_rigid(c2w).numpy()
            images.append((i + 1, fx.rotmat_to_qvec(w2c[:3, :3]), w2c[:3, 3], 1 + i % 5, f"img_{i:02d}.png"))
        xyz, rgb = np.zeros((3, 3)), np.full((3, 3), 128)
        (fx._write_colmap_bin if binary else fx._write_colmap_txt)(model, images, xyz, rgb, 40, 30)
        if not binary and not points2d:
            path = model / "images.txt"
            path.write_text("\n".join(ln for ln in path.read_text().splitlines() if ln.endswith(".png")) + "\n")
        scene = read_colmap(root, holdout_every=0)
        assert len(scene.frames) == len(c2ws)
        for frame, c2w in zip(scene.frames, c2ws):
            back = scene.transform.pose_to_world(frame.camera.camtoworld).double()  # float32 geometry
            assert torch.allclose(back[:3, :3], c2w[:3, :3], atol=1e-4)
            assert torch.allclose(back[:3, 3], c2w[:3, 3], atol=1e-3 * max(1.0, float(c2w[:3, 3].abs().max())))


@SLOW
@given(st.lists(rigid_poses(), min_size=2, max_size=4).filter(distinct_centres), st.floats(5.0, 500.0), st.floats(5.0, 500.0))
def test_nerfstudio_round_trip(c2ws, fl_x, fl_y):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "images").mkdir()
        frames = []
        for i, c2w in enumerate(c2ws):
            Image.new("RGB", (8, 6)).save(root / "images" / f"f{i}.png")
            gl = c2w.numpy() @ np.diag([1.0, -1.0, -1.0, 1.0])
            frames.append({"file_path": f"images/f{i}.png", "transform_matrix": gl.tolist()})
        (root / "transforms.json").write_text(json.dumps({"fl_x": fl_x, "fl_y": fl_y, "frames": frames}))
        scene = read_nerfstudio(root, holdout_every=0)
        for frame, c2w in zip(scene.frames, c2ws):
            assert frame.camera.K[0, 0].item() == pytest.approx(fl_x, rel=1e-6)
            assert frame.camera.K[1, 1].item() == pytest.approx(fl_y, rel=1e-6)
            assert (frame.camera.width, frame.camera.height) == (8, 6)
            back = scene.transform.pose_to_world(frame.camera.camtoworld).double()  # float32 geometry
            assert torch.allclose(back[:3, :3], c2w[:3, :3], atol=1e-4)
            assert torch.allclose(back[:3, 3], c2w[:3, 3], atol=1e-3 * max(1.0, float(c2w[:3, 3].abs().max())))


@SLOW
@given(st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_ply_round_trip(n, seed):
    from faithfusion.gaussians.model import GaussianModel
    from faithfusion.gaussians.ply import load_ply, save_ply

    g = torch.Generator().manual_seed(seed)
    model = GaussianModel.from_points(torch.randn(n, 3, generator=g) * 10, torch.rand(n, 3, generator=g), sh_degree=1)
    with tempfile.TemporaryDirectory() as d:
        back = load_ply(save_ply(model, Path(d) / "m.ply"))
    for key, value in model.params.items():
        assert torch.equal(back.params[key], value.detach())
