import math

import pytest
import torch

from faithfusion.cameras import (
    Camera,
    PoseError,
    check_rigid,
    interpolate_pose,
    invert_rigid,
    lane_shift_camera,
    lane_shift_ego,
    look_at,
    quat_to_rotmat,
    rotmat_to_quat,
    slerp,
)


def random_rotation(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(4, generator=g), dim=0)
    return quat_to_rotmat(q)


def test_quat_roundtrip_many():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(500, 4, generator=g), dim=-1)
    q = torch.where(q[:, :1] < 0, -q, q)
    back = rotmat_to_quat(quat_to_rotmat(q))
    assert torch.allclose(back, q, atol=1e-5)


def test_invert_rigid():
    T = torch.eye(4)
    T[:3, :3] = random_rotation(1)
    T[:3, 3] = torch.tensor([1.0, -2.0, 3.0])
    assert torch.allclose(invert_rigid(T) @ T, torch.eye(4), atol=1e-6)


def test_lane_shift_moves_exactly_along_left_axis():
    ego = torch.eye(4)
    ego[:3, :3] = quat_to_rotmat(torch.tensor([math.cos(0.3), 0.0, 0.0, math.sin(0.3)]))  # yaw
    ego[:3, 3] = torch.tensor([10.0, 5.0, 0.0])
    shifted = lane_shift_ego(ego, 3.0)
    offset = shifted[:3, 3] - ego[:3, 3]
    assert torch.allclose(offset.norm(), torch.tensor(3.0), atol=1e-6)
    assert torch.allclose(offset / 3.0, ego[:3, 1], atol=1e-6)  # +y = left in the vehicle frame
    # a camera rigidly attached moves by the same vector and keeps its orientation
    cam_to_ego = torch.eye(4)
    cam_to_ego[:3, 3] = torch.tensor([1.5, 0.0, 1.6])
    c2w = ego @ cam_to_ego
    cam = Camera(K=torch.eye(3), viewmat=invert_rigid(c2w), width=4, height=3)
    moved = lane_shift_camera(cam, ego, -2.0)
    assert torch.allclose(moved.center - cam.center, -2.0 * ego[:3, 1], atol=1e-5)
    assert torch.allclose(moved.camtoworld[:3, :3], c2w[:3, :3], atol=1e-6)


def test_slerp_midpoint_and_ends():
    q0 = torch.tensor([1.0, 0.0, 0.0, 0.0])
    q1 = torch.tensor([math.cos(0.5), 0.0, 0.0, math.sin(0.5)])  # 1 rad about z
    assert torch.allclose(slerp(q0, q1, 0.0), q0, atol=1e-6)
    assert torch.allclose(slerp(q0, q1, 1.0), q1, atol=1e-6)
    mid = slerp(q0, q1, 0.5)
    assert torch.allclose(mid, torch.tensor([math.cos(0.25), 0.0, 0.0, math.sin(0.25)]), atol=1e-6)


def test_interpolate_pose_is_rigid_and_between():
    T0 = torch.eye(4)
    T1 = torch.eye(4)
    T1[:3, :3] = random_rotation(3)
    T1[:3, 3] = torch.tensor([2.0, 0.0, 0.0])
    mid = interpolate_pose(T0, T1, 0.5)
    check_rigid(mid, "mid")
    assert torch.allclose(mid[:3, 3], torch.tensor([1.0, 0.0, 0.0]))


@pytest.mark.parametrize(
    "bad, words",
    [
        (torch.full((4, 4), float("nan")), "NaN"),
        (torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])), "not rigid"),
        (torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0])), "reflection"),
        (torch.eye(3), "4x4"),
    ],
)
def test_check_rigid_rejects(bad, words):
    with pytest.raises(PoseError, match=words) as err:
        check_rigid(bad, "poses/007.txt")
    assert "poses/007.txt" in str(err.value)


def test_look_at_points_camera_at_target():
    c2w = look_at(torch.tensor([0.0, -5.0, 1.0]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    check_rigid(c2w, "look_at")
    forward = c2w[:3, 2]
    assert torch.allclose(forward, torch.nn.functional.normalize(torch.tensor([0.0, 5.0, -1.0]), dim=0), atol=1e-6)
