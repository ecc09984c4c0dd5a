"""Video-fixer measures on analytic scenes: warp error, low-EIG change, depth abs rel."""

from __future__ import annotations

import math

import pytest
import torch

from faithfusion.eval.temporal import abs_rel, low_eig_change, warp_error

H, W, Z = 48, 64, 10.0


def plane_video(t: int = 4, step: float = 0.2, noise: float = 0.0) -> tuple[torch.Tensor, ...]:
    """A textured fronto-parallel plane at z = 10 m seen by a camera sliding along x by `step` m per frame."""
    K = torch.tensor([[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]], dtype=torch.float64)
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64) + 0.5, torch.arange(W, dtype=torch.float64) + 0.5, indexing="ij")
    frames, poses = [], []
    g = torch.Generator().manual_seed(0)
    for k in range(t):
        c2w = torch.eye(4, dtype=torch.float64)
        c2w[0, 3] = k * step
        x, y = (u - W / 2) / 50.0 * Z + k * step, (v - H / 2) / 50.0 * Z  # world point on the plane
        img = torch.stack([0.5 + 0.3 * torch.sin(0.9 * x), 0.5 + 0.3 * torch.cos(0.7 * y), 0.5 + 0.2 * torch.sin(0.5 * (x + y))], -1)
        if noise:
            img = img + noise * torch.randn(img.shape, generator=g, dtype=torch.float64)
        frames.append(img.float())
        poses.append(c2w)
    return torch.stack(frames), torch.full((t, H, W), Z), K.float().expand(t, 3, 3), torch.stack(poses).float()


def test_consistent_video_has_small_warp_error_and_noise_raises_it():
    frames, depth, K, c2w = plane_video()
    clean = warp_error(frames, depth, K, c2w)
    assert clean["warp_error"] < 5e-3 and 0.8 < clean["valid_fraction"] < 1.0  # the plane slides 1 px out per frame
    noisy = warp_error(plane_video(noise=0.05)[0], depth, K, c2w)
    assert noisy["warp_error"] > 10 * clean["warp_error"]
    wrong_pose = c2w.clone()
    wrong_pose[1:, 0, 3] += 0.3  # a 1.5 px error in where the frames were taken
    assert warp_error(frames, depth, K, wrong_pose)["warp_error"] > 5 * clean["warp_error"]


def test_occluded_and_skyless_pixels_do_not_count():
    frames, depth, K, c2w = plane_video(t=2)
    depth = depth.clone()
    depth[1, :, : W // 2] = 0.0  # no ground truth on the left half of the second frame
    half = warp_error(frames, depth, K, c2w)
    assert half["valid_fraction"] < 0.55
    depth[0] = 2.0  # the first frame sees something much nearer everywhere: all occluded
    assert warp_error(frames, depth, K, c2w)["valid_fraction"] == 0.0
    with pytest.raises(ValueError, match="shapes"):
        warp_error(frames, depth[:1], K, c2w)


def test_low_eig_change_and_abs_rel():
    render = torch.zeros(2, 4, 4, 3)
    eig = torch.arange(32, dtype=torch.float32).reshape(2, 4, 4)
    fixed = render.clone()
    fixed[eig > 15] = 1.0  # changes only the high-EIG half
    assert low_eig_change(fixed, render, eig) == 0.0
    fixed[eig <= 15] = 0.5
    assert math.isclose(low_eig_change(fixed, render, eig), 0.5, rel_tol=1e-6)
    gt = torch.tensor([[2.0, 4.0], [0.0, 1.0]])
    assert math.isclose(abs_rel(torch.tensor([[3.0, 4.0], [9.0, 1.5]]), gt), (0.5 + 0 + 0.5) / 3, rel_tol=1e-6)
    with pytest.raises(ValueError):
        abs_rel(gt, torch.zeros(2, 2))
