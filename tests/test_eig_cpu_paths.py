"""The CPU-only shortcuts of the Fisher/EIG pair loops against the paths they replace: equal values. CPU."""

from __future__ import annotations

import pytest
import torch

from faithfusion.eig.blend import blend_pairs, blended_pairs
from faithfusion.eig.fisher import PARAM_GROUPS, centre_moments
from faithfusion.render.raster import T_STOP, pixel_quadratics

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B,K", [(1, 1), (3, 7), (40, 90), (9, 440)])
def test_batch_last_centre_moments_equal_the_small_batched_matmuls(dtype, B, K):
    """`shifted_moments` (the CPU path) sums the products in the order of torch's small bmm: equal values."""
    g = torch.Generator().manual_seed(B * 1000 + K)
    m = (torch.rand(B, K, 2, generator=g, dtype=dtype) - 0.5) * 16  # block-centred means, pixels
    mu1 = torch.randn(B, K, 25, generator=g, dtype=dtype) * 10
    mu2 = torch.randn(B, 3, K, 9, generator=g, dtype=dtype)
    mu1[0, 0] = 0.0  # a dead slot: its moments stay 0
    want = centre_moments(mu1, mu2, m, batch_last=False)
    got = centre_moments(mu1, mu2, m, batch_last=True)
    assert got.shape == want.shape == (B, K, 52)
    assert torch.equal(got, want)
    assert float(want.abs().max()) > 0


@pytest.mark.parametrize("stop", [False, True])
def test_blended_pairs_is_the_blend_alpha_above_zero(stop):
    """live_counts' lean pass marks exactly the pairs the full blend gives alpha > 0 (transmittance stop
    reached in some pixels, or nowhere)."""
    g = torch.Generator().manual_seed(int(stop))
    B, K = 6, 40
    quad = pixel_quadratics(8, torch.float32, torch.device("cpu"))
    m = (torch.rand(B, K, 2, generator=g) - 0.5) * 12
    conic = torch.stack([torch.rand(B, K, generator=g) * 0.3 + 0.02, torch.zeros(B, K),
                         torch.rand(B, K, generator=g) * 0.3 + 0.02], -1)
    o = torch.rand(B, K, generator=g) * (0.99 if stop else 0.05)
    o[:, -3:] = 0.0  # padding
    bl = blend_pairs(quad, m, conic, o)
    assert bool((bl.T_final <= 2 * T_STOP).any()) == stop  # the case is the one named
    used = blended_pairs(quad, m, conic, o)
    assert torch.equal(used, bl.alpha > 0)
    assert used.any() and not used.all()


def test_calibration_reuses_the_captured_views_preparation_only_while_the_parameters_stay(monkeypatch):
    """Views named in `keep_prepared` are prepared once for their Fisher pass and their calibration map, with
    the same H_train and calibration as preparing them twice; a kept preparation goes stale when the
    parameters move (in place) or the accumulator recomputes."""
    import faithfusion.eig.accumulator as acc_module
    from faithfusion.eig.session import build_session, calibration_names, train_accumulator
    from tests.test_eig import _toy_trainer

    trainer = _toy_trainer()
    plain = build_session(trainer, calib_views=2, progress=False)
    keep = calibration_names(trainer, 2)
    assert keep == {"train_0", "train_2"}
    calls = []
    real_prepare = acc_module.prepare_view
    monkeypatch.setattr(acc_module, "prepare_view", lambda *a, **k: calls.append(1) or real_prepare(*a, **k))
    acc = train_accumulator(trainer, keep_prepared=keep)
    assert len(calls) == 2 and set(acc._prepared) == keep
    import faithfusion.eig.maps as maps_module

    def no_preparation(*args, **kwargs):
        raise AssertionError("a calibration view prepared again")

    monkeypatch.setattr(maps_module, "prepare_view", no_preparation)
    shared = build_session(trainer, acc=acc, calib_views=2, progress=False)
    monkeypatch.setattr(maps_module, "prepare_view", real_prepare)
    assert all(torch.equal(shared.acc.H[g], plain.acc.H[g]) for g in PARAM_GROUPS)
    assert shared.calibration.to_dict() == plain.calibration.to_dict()
    assert acc._prepared == {}  # taken once

    acc.add_view(trainer.real.views[0].camera, name="train_0")  # kept again
    with torch.no_grad():
        trainer.model.params["means"].add_(0.01)  # an optimiser step moves the parameters in place
    assert acc.take_prepared("train_0") is None
    acc.add_view(trainer.real.views[0].camera, name="train_0")
    acc.recompute()
    assert "train_0" in acc._prepared  # recompute prepared it afresh, at the current parameters
    assert acc.take_prepared("train_0") is not None


def test_composite_over_the_fisher_pass_blends_equals_blending_again():
    """An EIG map composites over the blends its own Fisher pass kept: the same sums as blending each chunk
    again, and the Fisher itself unchanged by keeping them."""
    from faithfusion.eig.fisher import pair_sums, prepare_view, view_fisher
    from faithfusion.eig.maps import composite_scalar
    from faithfusion.eig.toy import toy_scene

    model, cams = toy_scene(dtype=torch.float32)
    vp = prepare_view(model, cams[0], max_pairs=64 * 3)  # several chunks
    assert len(vp.chunks) > 1
    blends = []
    kept = pair_sums(vp, backend="torch", keep_blends=blends)
    plain = pair_sums(vp, backend="torch")
    assert len(blends) == len(vp.chunks)
    assert torch.equal(kept.geo, plain.geo) and torch.equal(kept.cross, plain.cross) and torch.equal(kept.w2, plain.w2)
    values = torch.rand(len(model), 2, generator=torch.Generator().manual_seed(0))
    want = composite_scalar(vp, values, "torch")
    got = composite_scalar(vp, values, "torch", blends)
    for field in ("wI", "w2I", "count", "alpha"):
        assert torch.equal(getattr(got, field), getattr(want, field)), field
    assert float(want.count.max()) > 1
    with pytest.raises(ValueError, match="kept blends"):
        composite_scalar(vp, values, "torch", blends[:-1])
    h = view_fisher(model, cams[0], vp=vp, backend="torch", keep_blends=[])
    assert all(torch.equal(h[g], v) for g, v in view_fisher(model, cams[0], vp=vp, backend="torch").items())
