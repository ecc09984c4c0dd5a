"""GenFusion's depth loss: the log-depth L1 of the depth `fix` returns, beside the old L1 on normalised disparity."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from faithfusion.eval.temporal import abs_rel
from faithfusion.fixers.genfusion import (
    GenFusion,
    GenFusionConfig,
    denormalise_disparity,
    disparity_range,
    log_depth_l1,
    normalise_disparity,
)
from faithfusion.fixers.train import disparity_l1
from tests.fixer_fixtures import TINY_GENFUSION, TINY_GENFUSION_FIELDS

STUB = SimpleNamespace(config=SimpleNamespace(min_range=1e-3))  # what train.disparity_l1 reads of the model


pytestmark = pytest.mark.usefixtures("single_thread")


def test_zero_when_the_prediction_is_the_target():
    g = torch.Generator().manual_seed(0)
    render = 2 + 60 * torch.rand(2, 3, 8, 8, generator=g)
    target = render * (1 + 0.2 * torch.rand(2, 3, 8, 8, generator=g))  # (some farther than the render's farthest)
    rng = disparity_range(render)
    target = torch.minimum(target, 1 / rng.lo.view(-1, 1, 1, 1))  # a depth `fix` can return
    d, _ = normalise_disparity(target, rng)
    assert float(log_depth_l1(d, rng, target)) == pytest.approx(0, abs=1e-5)
    assert float(log_depth_l1(d + 0.01, rng, target)) > 1e-3


def test_hand_computed_value_and_invalid_target_pixels():
    render = torch.tensor([1.0, 2.0, 4.0, 10.0, 3.0, 3.0, 3.0]).view(1, 1, 1, 7)  # disparity 1 .. 0.1
    rng = disparity_range(render)
    assert float(rng.lo) == pytest.approx(0.1) and float(rng.hi) == pytest.approx(1.0)  # span 0.9
    # predicted disparity lo + max(d, 0) * span: 1.0, 0.55, 0.1, 0.1 (d < 0 is clamped, as `fix` does)
    d = torch.tensor([1.0, 0.5, 0.0, -0.2, 0.3, 0.7, 0.9]).view(1, 1, 1, 7).requires_grad_()
    target = torch.tensor([2.0, 2.0, 5.0, 20.0, 0.0, float("inf"), float("nan")]).view(1, 1, 1, 7)
    # 20 m is beyond the farthest depth fix can return (1 / lo = 10 m): taken at 10 m, no error left
    hand = (math.log(2) + math.log(1.1) + math.log(2) + 0.0) / 4  # the last three targets are invalid
    loss = log_depth_l1(d, rng, target)
    assert float(loss.detach()) == pytest.approx(hand, rel=1e-5)
    # the same as |log(denormalise_disparity(d)) - log(target)| where the target is within reach
    ok = slice(0, 3)
    direct = (denormalise_disparity(d.detach(), rng)[..., ok].log() - target[..., ok].log()).abs().sum() / 4
    assert float(loss.detach()) == pytest.approx(float(direct), rel=1e-5)
    loss.backward()
    assert torch.isfinite(d.grad).all() and torch.all(d.grad[..., 4:] == 0)  # invalid targets: no gradient
    other = d.detach().clone()
    other[..., 4:] = torch.tensor([5.0, -3.0, 100.0])
    assert float(log_depth_l1(other, rng, target)) == pytest.approx(hand, rel=1e-5)  # whatever is predicted there


def test_gradient_weighs_far_pixels_more_than_the_disparity_l1():
    # a window from 2 m to 100 m (disparity lo 0.01, hi 0.5): the far pixel sits near d = 0, the near one near 1
    render = torch.tensor([2.0, 100.0]).view(1, 1, 1, 2)
    rng = disparity_range(render)
    target = torch.tensor([2.2, 100.0]).view(1, 1, 1, 2)
    d0, _ = normalise_disparity(render, rng)
    d0 = d0 + torch.tensor([0.0, 0.05]).view(1, 1, 1, 2)  # the brief's example: +0.05 turns 100 m into ~29 m
    assert float(denormalise_disparity(d0, rng)[0, 0, 0, 1]) == pytest.approx(28.99, abs=0.05)
    grads = {}
    for name, fn in (("log", lambda d: log_depth_l1(d, rng, target)), ("disp", lambda d: disparity_l1(STUB, d, rng, target))):
        d = d0.clone().requires_grad_()
        fn(d).backward()
        grads[name] = d.grad.abs().flatten()
    near, far = 0, 1
    assert grads["disp"][far] == pytest.approx(grads["disp"][near])  # the disparity L1 weighs every pixel alike
    assert grads["log"][far] > 10 * grads["disp"][far]  # span / disparity ~ 0.49 / 0.035 = 14 times more
    assert grads["log"][far] > 10 * grads["log"][near]
    # and its value says how far off the far pixel is: log(100 / 29) against the disparity L1's 0.05
    per_pixel = log_depth_l1(d0[..., 1:], rng, target[..., 1:])
    assert float(per_pixel) == pytest.approx(math.log(100 / 28.99), abs=2e-3)


def test_a_pixel_pushed_below_zero_can_come_back():
    render = torch.tensor([2.0, 100.0]).view(1, 1, 1, 2)
    rng = disparity_range(render)
    d = torch.tensor([1.0, -0.5]).view(1, 1, 1, 2).requires_grad_()  # the far pixel clamped to 100 m
    log_depth_l1(d, rng, torch.tensor([2.0, 50.0]).view(1, 1, 1, 2)).backward()
    assert d.grad[0, 0, 0, 1] < 0  # descent raises d towards the target's 50 m
    d.grad = None
    log_depth_l1(d, rng, torch.tensor([2.0, 300.0]).view(1, 1, 1, 2)).backward()  # out of reach: nothing to do
    assert d.grad[0, 0, 0, 1] == 0


def test_a_few_steps_on_the_log_depth_loss_lower_the_depth_abs_rel():
    """A tiny GenFusion fitted to one batch whose render depth is the target depth times per-pixel noise."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    b, t, h, w = 2, 4, 32, 32
    low = torch.rand(b * t, 1, 4, 4, generator=g)
    target = (3 + 40 * F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)).view(b, t, h, w)
    render = target * torch.exp(0.25 * torch.randn(b, t, h, w, generator=g))
    images = torch.rand(b, t, h, w, 3, generator=g)
    model = GenFusion(TINY_GENFUSION).train()
    disp, valid, _, _, rng = model.prepare_depth(render, None, images)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        _, d = model(images, disp, valid)
        loss = log_depth_l1(d, rng, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    before = abs_rel(render, target)
    after = abs_rel(model.fix(images, depth=render).depth, target)  # the depth fix returns, as evaluated
    assert before > 0.15 and after < 0.9 * before, (before, after)


def test_the_quantile_range_ignores_a_floater_that_sets_the_min_max_range():
    """Depths 5-50 m and one pixel at 0.5 m (a floater): min/max puts hi at 2, the 0.5% quantiles near 1 / 5."""
    depth = torch.linspace(5.0, 50.0, 4 * 30 * 40).view(1, 4, 30, 40)
    depth[0, 2, 10, 10] = 0.5
    depth[0, 1, 0, :5] = float("nan")  # invalid pixels play no part
    full = disparity_range(depth)
    robust = disparity_range(depth, 0.005)
    assert float(full.hi) == pytest.approx(2.0) and float(full.lo) == pytest.approx(1 / 50)
    assert 1 / 5.3 < float(robust.hi) < 1 / 5 and 1 / 50 < float(robust.lo) < 1 / 45
    surface = torch.isfinite(depth) & (depth > 0.5)
    d_robust = normalise_disparity(depth, robust)[0][surface]
    d_full = normalise_disparity(depth, full)[0][surface]
    assert float(d_robust.median()) > 0.08 and float(d_full.median()) < 0.01  # min/max squeezes them to the bottom
    with pytest.raises(ValueError, match="quantile"):
        disparity_range(depth, 0.5)


def test_the_quantile_range_is_per_window_and_subsamples_large_windows(monkeypatch):
    import faithfusion.fixers.genfusion as gf

    g = torch.Generator().manual_seed(0)
    depth = torch.stack([2 + 20 * torch.rand(2, 32, 32, generator=g), 10 + 90 * torch.rand(2, 32, 32, generator=g)])
    exact = disparity_range(depth, 0.1)
    for b in range(2):
        want = torch.quantile(1 / depth[b].flatten(), torch.tensor([0.1, 0.9]))
        assert torch.allclose(torch.stack([exact.lo[b], exact.hi[b]]), want, rtol=1e-5)
    assert torch.allclose(exact.floor, (1 / depth).flatten(1).amin(1))  # the farthest render, beyond lo
    monkeypatch.setattr(gf, "QUANTILE_SAMPLES", 500)  # 2048 pixels a window -> every 5th
    sub = gf.disparity_range(depth, 0.1)
    assert torch.allclose(sub.lo, exact.lo, rtol=0.2) and torch.allclose(sub.hi, exact.hi, rtol=0.2)
    empty = torch.zeros(1, 2, 4, 4)
    assert float(disparity_range(empty, 0.1).lo) == 1.0  # no valid pixel: the (1, 2) stand-in


def test_prepare_depth_uses_the_configured_range():
    depth = torch.linspace(5.0, 50.0, 2 * 16 * 16).view(1, 2, 16, 16)
    depth[0, 0, 0, 0] = 0.5
    images = torch.rand(1, 2, 16, 16, 3)
    *_, rng_minmax = GenFusion(GenFusionConfig(**TINY_GENFUSION_FIELDS, range_quantile=0.0)).prepare_depth(depth, None, images)
    *_, rng_default = GenFusion(TINY_GENFUSION).prepare_depth(depth, None, images)
    assert float(rng_minmax.hi) == pytest.approx(2.0)
    assert float(rng_default.hi) < 0.25


def test_evaluate_video_overrides_parse_json_and_name_bad_items():
    from faithfusion.fixers.evaluate_video import parse_overrides

    assert parse_overrides(["range_quantile=0", "chunk=2"]) == {"range_quantile": 0, "chunk": 2}
    with pytest.raises(SystemExit, match="KEY=JSON"):
        parse_overrides(["range_quantile"])
    with pytest.raises(SystemExit, match="not JSON"):
        parse_overrides(["range_quantile=zero"])
