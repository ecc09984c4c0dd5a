"""Fisher / EIG: the fast closed-form path against brute-force autograd, maps, calibration, accumulator. CPU."""

from __future__ import annotations

import pytest
import torch

from faithfusion.eig.accumulator import FisherAccumulator
from faithfusion.eig.calibrate import Calibration, fit_calibration, g_at_weight
from faithfusion.eig.fisher import PARAM_GROUPS, fisher_diagonal, prepare_view, view_fisher
from faithfusion.eig.maps import acquisition, composite_scalar, eig_map
from faithfusion.eig.oracle import fisher_oracle
from faithfusion.eig.toy import toy_scene
from faithfusion.render import render
from faithfusion.render.raster import MAX_ALPHA, T_STOP


pytestmark = pytest.mark.usefixtures("single_thread")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture(scope="module")
def oracle64():
    """The toy scene in float64 with a flat and a per-pixel background and per-pixel weights on one view."""
    torch.set_num_threads(1)
    model, cams = toy_scene(dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    bgs = [torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64), torch.rand(10, 12, 3, generator=g, dtype=torch.float64)]
    ws = [None, torch.rand(10, 12, generator=g, dtype=torch.float64)]
    H = fisher_oracle(model, cams, backgrounds=bgs, pixel_weights=ws)
    return model, cams, bgs, ws, H


def test_toy_scene_exercises_every_rule():
    model, cams = toy_scene(dtype=torch.float64)
    vp = prepare_view(model, cams[0])
    p = vp.vq.proj
    assert not p.visible[0, 0] and not p.visible[0, 1]  # behind, off-screen
    assert p.visible[0, 8] and p.means2d[0, 8, 0] > cams[0].width  # clamped tangent, centre off-screen
    assert p.means2d[0, 9].tolist() == pytest.approx([6.5, 5.5])
    assert not vp.vq.colour_live[10].all()  # SH colour clamped
    out = render(model, cams[0].viewmat[None], cams[0].K[None], 12, 10, backend="torch")
    assert out.alpha.max() > 1 - 1.5 * T_STOP  # the transmittance stop is reached
    assert float(vp.vq.opacities[9]) > MAX_ALPHA  # alpha clamped at its centre


@pytest.mark.parametrize("max_pairs", [64 * 3, 1 << 18])  # many one-block chunks / one chunk
def test_fast_fisher_equals_oracle_float64(oracle64, max_pairs):
    model, cams, bgs, ws, H_ref = oracle64
    H = fisher_diagonal(model, cams, backgrounds=bgs, pixel_weights=ws, max_pairs=max_pairs)
    for g in PARAM_GROUPS:
        assert H[g].shape == model.params[g].shape
        assert H_ref[g].norm() > 0, g
        assert rel(H[g], H_ref[g]) < 1e-10, (g, rel(H[g], H_ref[g]))


def test_fast_fisher_float32_within_1e4_of_float64(oracle64):
    """float32 loses ~1e-6 relative per group on this scene; 1e-4 (the brief's bound) leaves margin."""
    model, cams, bgs, ws, H_ref = oracle64
    m32, c32 = toy_scene(dtype=torch.float32)
    H = fisher_diagonal(m32, c32, backgrounds=[b.float() for b in bgs], pixel_weights=[None, ws[1].float()])
    for g in PARAM_GROUPS:
        assert rel(H[g], H_ref[g]) < 1e-4, (g, rel(H[g], H_ref[g]))


def test_group_selection_and_degree_zero():
    model, cams = toy_scene(dtype=torch.float64, sh_degree=0, n_cameras=1)
    H = view_fisher(model, cams[0], groups=("sh0", "opacities"))
    assert set(H) == {"sh0", "opacities"}
    ref = fisher_oracle(model, cams, groups=("sh0", "opacities"))
    for g in H:
        assert rel(H[g], ref[g]) < 1e-10


def test_composited_acquisition_matches_render_colors_override():
    model, cams = toy_scene(dtype=torch.float64)
    vp = prepare_view(model, cams[1])
    values = torch.rand(len(model), dtype=torch.float64)
    sums = composite_scalar(vp, values)
    out = render(model, cams[1].viewmat[None], cams[1].K[None], 12, 10, backend="torch", colors_override=values[:, None])
    assert torch.allclose(sums.wI, out.rgb[0, ..., 0], atol=1e-12)
    assert torch.allclose(sums.alpha, out.alpha[0, ..., 0], atol=1e-12)
    assert (sums.count >= (sums.alpha > 0)).all() and sums.count.max() >= 2


def test_eig_maps_forms_and_coverage():
    model, cams = toy_scene(dtype=torch.float32)
    H_train = fisher_diagonal(model, cams[:1])
    from faithfusion.eig.variants import variant_eig_map

    maps = {f: eig_map(model, cams[1], H_train, form=f, keep_acquisition=True) for f in ("fisherrf", "faithfusion")}
    maps["diag"] = variant_eig_map(model, cams[1], H_train, form="diag")  # research form: eig/variants.py
    with pytest.raises(ValueError, match="variants"):
        eig_map(model, cams[1], H_train, form="diag")
    m = maps["fisherrf"]
    assert m.eig.shape == (10, 12) and (m.eig >= 0).all()
    # faithfusion divides by the hit count, diag uses squared weights (<= weights)
    cov = m.covered
    assert torch.allclose(maps["faithfusion"].eig[cov], m.eig[cov] / m.count[cov].clamp_min(1))
    assert (maps["diag"].eig[cov] <= m.eig[cov] + 1e-6).all()
    # uncovered pixels count as maximal
    if (~cov).any():
        assert torch.all(m.eig[~cov] == m.eig[cov].max())
    # a training view is well explained by H_train: its own EIG is far below a novel view's
    own = eig_map(model, cams[0], H_train)
    assert own.eig[own.covered].mean() < m.eig[cov].mean()
    # acquisition of the training view is bounded by the number of scalars per Gaussian
    I_own = acquisition(view_fisher(model, cams[0]), H_train)
    assert I_own.max() <= 59 + 1e-3


def test_calibration_scale_weights_and_json(tmp_path):
    model, cams = toy_scene(dtype=torch.float32, n_cameras=3)
    H_train = fisher_diagonal(model, cams[:2])
    train_maps = [eig_map(model, c, H_train) for c in cams[:2]]
    cal = fit_calibration(train_maps, lam=1e-6)
    assert cal.ref > 0 and cal.n_pixels > 0 and len(cal.quantiles) == 101
    eig = torch.tensor([0.0, 0.5 * cal.ref, cal.ref, 10 * cal.ref, 1e6 * cal.ref])
    g = cal.calibrate(eig)
    assert g[2] == pytest.approx(1.0)  # the reference maps to 1
    assert torch.all(g[1:] > g[:-1])
    w = cal.weight(g)
    assert torch.all(w[1:] > w[:-1]) and w[0] == pytest.approx(cal.w_min) and w[-1] <= 1.0
    assert float(cal.cdf(eig[2:3])) == pytest.approx(cal.ref_quantile, abs=0.02)
    assert g_at_weight(cal, 0.55) == pytest.approx(1.0)
    covered = torch.tensor([True, True, True, True, False])
    assert cal.weight(g, covered)[-1] == 1.0 and bool(cal.mask(g, covered)[-1])
    cal.save(tmp_path / "cal.json")
    again = Calibration.load(tmp_path / "cal.json")
    assert again == cal
    # global scale invariance: multiplying every H by 7 leaves g unchanged up to lambda
    H7 = {k: 7 * v for k, v in H_train.items()}
    maps7 = [eig_map(model, c, H7, lam=7e-6) for c in cams[:2]]
    cal7 = fit_calibration(maps7)
    novel = eig_map(model, cams[2], H_train)
    novel7 = eig_map(model, cams[2], H7, lam=7e-6)
    assert torch.allclose(cal.calibrate(novel.eig), cal7.calibrate(novel7.eig), rtol=1e-4, atol=1e-5)


def test_accumulator_weighted_remap_recompute():
    model, cams = toy_scene(dtype=torch.float64)
    w = torch.rand(10, 12, dtype=torch.float64)
    acc = FisherAccumulator(model)
    acc.add_view(cams[0])
    acc.add_view(cams[1], pixel_weights=w)
    ref = fisher_diagonal(model, cams, pixel_weights=[None, w])
    for g in PARAM_GROUPS:
        assert rel(acc.H[g], ref[g]) < 1e-12
    # a weight of 2 everywhere doubles that view's contribution
    one = view_fisher(model, cams[0])
    two = view_fisher(model, cams[0], pixel_weights=torch.full((10, 12), 2.0, dtype=torch.float64))
    assert rel(two["means"], 2 * one["means"]) < 1e-12
    # densification: Gaussians 3 and 7 duplicated at the end, 0 pruned, one new one
    idx = torch.cat([torch.arange(1, 30), torch.tensor([3, 7, -1])])
    before = {g: h.clone() for g, h in acc.H.items()}
    acc.remap(idx)
    assert acc.H["scales"].shape == (32, 3)
    assert torch.equal(acc.H["scales"][-3], before["scales"][3]) and acc.H["scales"][-1].abs().sum() == 0
    # the model changes size: sync() recomputes over the remembered views
    params = {k: v.detach()[:20].clone() for k, v in model.params.items()}
    from faithfusion.gaussians.model import GaussianModel

    small = GaussianModel(params, model.sh_degree)
    assert acc.sync(small)
    ref_small = fisher_diagonal(small, cams, pixel_weights=[None, w])
    assert rel(acc.H["quats"], ref_small["quats"]) < 1e-12
    state = acc.state_dict()
    again = FisherAccumulator(small)
    again.load_state_dict(state)
    assert len(again.views) == 2 and torch.equal(again.H["means"], acc.H["means"])


def test_trimmed_lists_give_the_same_fisher_with_fewer_pairs():
    """Cutting each block's list after its last blended Gaussian is exact; on an opaque scene it removes pairs."""
    from faithfusion.cameras import Camera
    from faithfusion.eig.fisher import pair_sums
    from faithfusion.gaussians.model import GaussianModel

    model = GaussianModel.random(1000, extent=1.0, sh_degree=1, seed=2)
    with torch.no_grad():
        model.params["opacities"].fill_(3.0)  # ~0.95: pixels stop early
        model.params["scales"] += 0.5
    W, H = 32, 24
    K = torch.tensor([[0.8 * W, 0, W / 2], [0, 0.8 * W, H / 2], [0, 0, 1.0]])
    vm = torch.eye(4)
    vm[2, 3] = 2.5
    cam = Camera(K=K, viewmat=vm, width=W, height=H)
    full, cut = prepare_view(model, cam, trim=False), prepare_view(model, cam, trim=True)
    n_full = sum(c.n_pairs for c in full.chunks)
    n_cut = sum(c.n_pairs for c in cut.chunks)
    assert n_cut < 0.5 * n_full
    a, b = pair_sums(full), pair_sums(cut)
    for x, y in ((a.geo, b.geo), (a.cross, b.cross), (a.w2, b.w2)):
        assert rel(y, x) < 1e-5


def test_acquisition_variants_log_floor_group_norm_and_smoothing():
    from faithfusion.eig.variants import box_filter, floor_train, variant_acquisition, variant_eig_map

    model, cams = toy_scene(dtype=torch.float64)
    H_train = fisher_diagonal(model, cams[:1])
    H_view = view_fisher(model, cams[1])
    ratio = acquisition(H_view, H_train)
    assert torch.equal(variant_acquisition(H_view, H_train), ratio)  # options off: the production acquisition
    # log: the exact diagonal-Laplace EIG, sum log(1 + ratio) per scalar, never above the trace form
    log = variant_acquisition(H_view, H_train, acq="log")
    ref = sum(torch.log1p(H_view[g] / (H_train[g] + 1e-6)).reshape(len(model), -1).sum(-1) for g in H_view)
    assert torch.allclose(log, ref) and (log <= ratio + 1e-12).all()
    # floor: H_train no lower than the q-quantile of its positive entries -> acquisition can only fall
    Hf = floor_train(H_train, 0.5)
    for g in H_train:
        pos = H_train[g][H_train[g] > 0]
        assert float(Hf[g].min()) == pytest.approx(float(torch.quantile(pos.float(), 0.5)), rel=1e-5)
    assert (variant_acquisition(H_view, H_train, h_floor=0.5) <= ratio + 1e-9).all()
    assert floor_train(H_train, 0.0)["means"] is H_train["means"]
    # group_norm: "mean" divides each group's sum by its scalars per Gaussian; a mapping divides by its value
    mean = variant_acquisition(H_view, H_train, group_norm="mean")
    n = {g: model.params[g][0].numel() for g in H_view}
    per = {g: acquisition({g: H_view[g]}, H_train) for g in H_view}
    assert torch.allclose(mean, sum(per[g] / n[g] for g in per))
    assert torch.allclose(variant_acquisition(H_view, H_train, group_norm={g: 2.0 for g in H_view}), ratio / 2)
    with pytest.raises(ValueError):
        variant_acquisition(H_view, H_train, acq="nope")
    # several values composited at once == one at a time
    vp = prepare_view(model, cams[1])
    both = composite_scalar(vp, torch.stack([ratio, log], -1))
    assert torch.allclose(both.wI[..., 1], composite_scalar(vp, log).wI)
    assert torch.allclose(both.w2I[..., 0], composite_scalar(vp, ratio).w2I)
    # variant_eig_map passes the options through; smoothing is a box filter of the finished map
    m = variant_eig_map(model, cams[1], H_train, form="faithfusion", acq="log")
    ms = variant_eig_map(model, cams[1], H_train, form="faithfusion", acq="log", smooth=3)
    assert torch.allclose(ms.eig, box_filter(m.eig, 3)) and ms.eig.shape == m.eig.shape
    assert torch.allclose(box_filter(torch.ones(5, 4), 4), torch.ones(5, 4))


def test_pixel_variance_equals_autograd():
    """The research variant pvar: sum_k sum_theta (d c_pk / d theta)^2 / (H_train + lambda) per pixel, against
    autograd of the render."""
    from faithfusion.eig.variants import pvar_variance

    model, cams = toy_scene(dtype=torch.float64)
    H_train = fisher_diagonal(model, cams[:1])
    bg = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    lam = 1e-3
    var = pvar_variance(prepare_view(model, cams[1]), H_train, lam, bg)
    cam = cams[1]
    params = [model.params[g] for g in PARAM_GROUPS]
    out = render(model, cam.viewmat[None], cam.K[None], cam.width, cam.height, backend="torch")
    rgb = out.rgb[0] + (1.0 - out.alpha[0]) * bg
    ref = torch.zeros(cam.height, cam.width, dtype=torch.float64)
    for y in range(cam.height):
        for x in range(cam.width):
            for k in range(3):
                grads = torch.autograd.grad(rgb[y, x, k], params, retain_graph=True, allow_unused=True)
                for g, gr in zip(PARAM_GROUPS, grads):
                    if gr is not None:
                        ref[y, x] += float((gr.detach() ** 2 / (H_train[g] + lam)).sum())
    assert rel(var, ref) < 1e-8


def test_acquisition_ignores_rounding_negatives_of_the_fast_fisher():
    """The fast path can leave ~-1e-7 where H is 0; with H_train + lambda <= 0, log(1 + r) would be NaN."""
    model, cams = toy_scene(dtype=torch.float32)
    H_train = {g: h.clone() for g, h in fisher_diagonal(model, cams[:1]).items()}
    H_view = view_fisher(model, cams[1])
    H_train["scales"][0] = -2e-6
    H_view["scales"][1] = -1e-7
    from faithfusion.eig.variants import variant_acquisition

    for acq in ("ratio", "log"):
        I = variant_acquisition(H_view, H_train, acq=acq)
        assert torch.isfinite(I).all() and (I >= 0).all()


def _toy_trainer(n_views: int = 4):
    """The parts of a Trainer that the EIG session reads: model, device, captured views, no sky model."""
    from types import SimpleNamespace

    model, cams = toy_scene(n_cameras=n_views)
    sky = torch.zeros(cams[0].height, cams[0].width, dtype=torch.bool)
    sky[0] = True  # the top row is sky: weighted 0 in H_train
    views = [SimpleNamespace(camera=c, sky_mask=sky, index=i) for i, c in enumerate(cams)]
    return SimpleNamespace(model=model, device=model.device, sky=None, real=SimpleNamespace(views=views))


def test_one_session_builder_for_a_fresh_and_a_given_accumulator():
    """build_session accumulates the captured views (sky weighted 0) or takes the caller's accumulator as
    it is, and calibrates on `calib_views` of them either way."""
    from faithfusion.eig.session import build_session, train_accumulator

    trainer = _toy_trainer()
    fresh = build_session(trainer, calib_views=2, progress=False)
    assert fresh.acc.n_added == 4 and fresh.calibration.n_views == 2
    expected = sum(view_fisher(trainer.model, v.camera, pixel_weights=(~v.sky_mask).double())["means"]
                   for v in trainer.real.views)
    assert torch.allclose(fresh.acc.H["means"], expected)

    given = train_accumulator(trainer)
    given.add_view(trainer.real.views[0].camera, name="fused")  # a fused view on top of the captured ones
    session = build_session(trainer, acc=given, calib_views=3, progress=False)
    assert session.acc is given and given.n_added == 5
    assert session.calibration.n_views == 3
    assert session.calibration.ref != fresh.calibration.ref  # H_train includes the fused view


def test_a_prepared_view_serves_its_eig_map_and_its_fisher_unchanged(monkeypatch):
    """A fused view is projected and planned once (`session.prepare`) for its EIG map and its weighted Fisher:
    the same numbers as preparing it twice, and no second preparation."""
    import faithfusion.eig.fisher as fisher_module
    import faithfusion.eig.maps as maps_module
    from faithfusion.eig.session import build_session

    trainer = _toy_trainer()
    session = build_session(trainer, calib_views=2, progress=False)
    cam = trainer.real.views[1].camera
    w = torch.rand(10, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want_map, want_g = session.eig(cam)
    want_h = session.acc.view_fisher(cam, w)
    prepared = session.prepare(cam)

    def no_second_preparation(*args, **kwargs):
        raise AssertionError("prepared twice")

    monkeypatch.setattr(maps_module, "prepare_view", no_second_preparation)
    monkeypatch.setattr(fisher_module, "prepare_view", no_second_preparation)
    got_map, got_g = session.eig(cam, prepared)
    assert torch.equal(got_map.eig, want_map.eig) and torch.equal(got_g, want_g)
    got_h = session.acc.view_fisher(cam, w, prepared)
    assert all(torch.equal(got_h[g], want_h[g]) for g in PARAM_GROUPS)
    n = session.acc.n_added
    session.acc.add_view(cam, pixel_weights=w, prepared=prepared)
    assert session.acc.n_added == n + 1


def test_unconstrained_fraction_is_the_blend_weight_share_of_gaussians_training_never_saw():
    from faithfusion.eig.unconstrained import UnconstrainedGaussians, training_constraint

    model, cams = toy_scene(dtype=torch.float64)
    H = {g: torch.rand_like(model.params[g]) + 0.5 for g in ("means", "sh0")}
    H["means"][3:12] = 0.0  # never constrained: h = 0 in every group
    H["sh0"][3:12] = 0.0
    H["sh0"][12] = -1e-9  # a rounding negative counts as 0, not below it
    H["means"][12] = 0.0
    h = training_constraint(H)
    assert h[12] == 0.0 and (h[:3] > 0).all()
    unc = UnconstrainedGaussians.from_h_train(H, quantile=0.0)  # exactly the zeros
    assert unc.mask.tolist() == [3 <= i <= 12 for i in range(len(model))] and unc.zero == 10
    # the 1st percentile of the positive ones also takes the faintest constrained Gaussian
    q = UnconstrainedGaussians.from_h_train(H)
    assert int(q.mask.sum()) == 11 and bool(q.mask[int(torch.where(h > 0, h, torch.inf).argmin())])
    frac = unc.pixel_fraction(model, cams[1], backend="torch")
    vp = prepare_view(model, cams[1])
    sums = composite_scalar(vp, unc.mask.double())
    covered = sums.alpha >= 0.1
    assert torch.allclose(frac[covered], sums.wI[covered] / sums.alpha[covered], atol=1e-12)
    assert (frac[~covered] == 1.0).all() and frac.min() >= 0 and frac.max() <= 1
    assert 0.0 < float(frac[covered].mean()) < 1.0  # the toy view mixes both kinds
    assert unc.to_dict()["unconstrained"] == 10
