"""The pure-PyTorch rasterizer against a brute-force dense oracle, a closed form, gsplat's own torch
reference (projection, SH) and gsplat's DefaultStrategy. CPU only."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from faithfusion.gaussians.model import GaussianModel
from faithfusion.render import render
from faithfusion.render import torch_backend as tb
from faithfusion.render.sh import sh_colors, spherical_harmonics
from faithfusion.render.raster import ALPHA_THRESHOLD, MAX_ALPHA, T_STOP, project_gaussians
from faithfusion.render.torch_backend import rasterize

PARAMS = ("means", "quats", "scales", "opacities", "sh_coeffs")


# --- the oracle: every Gaussian against every pixel ----------------------------------------------


def dense_render(
    means, quats, scales, opacities, sh_coeffs, sh_degree, viewmats, Ks, width, height,
    backgrounds=None, near_plane=0.01, far_plane=1e10, eps2d=0.3, colors_override=None,
) -> tuple[Tensor, Tensor, Tensor]:
    """gsplat's per-pixel loop written out densely with autograd: no tiles, no chunks, no hand-written backward."""
    C, N = viewmats.shape[0], means.shape[0]
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, width, height, eps2d, near_plane, far_plane)
    if colors_override is None:
        colors = sh_colors(means, sh_coeffs, sh_degree, viewmats)
    else:
        colors = colors_override.expand(C, N, -1)
    feats = torch.cat([colors, proj.depths[..., None]], -1)  # [C, N, D + 1]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pix = torch.stack([xs, ys], -1).reshape(-1, 2).to(means.dtype) + 0.5  # [HW, 2] pixel centres
    accs, alphas = [], []
    for c in range(C):
        vis = proj.visible[c].nonzero().squeeze(-1)
        vis = vis[torch.sort(proj.depths[c, vis], stable=True).indices]  # front to back
        m, cn, o, f = proj.means2d[c, vis], proj.conics[c, vis], opacities[vis], feats[c, vis]
        d = pix[:, None, :] - m[None]  # [HW, V, 2]
        sigma = 0.5 * (cn[:, 0] * d[..., 0] ** 2 + cn[:, 2] * d[..., 1] ** 2) + cn[:, 1] * d[..., 0] * d[..., 1]
        a = torch.clamp(o * torch.exp(-sigma), max=MAX_ALPHA)
        a = torch.where((sigma >= 0) & (a >= ALPHA_THRESHOLD), a, torch.zeros_like(a))
        with torch.no_grad():  # stop before the Gaussian that brings T to <= 1e-4
            live = torch.cumprod(1 - a, -1) > T_STOP
        a = torch.where(live, a, torch.zeros_like(a))
        T = torch.cumprod(torch.cat([torch.ones_like(a[:, :1]), 1 - a[:, :-1]], -1), -1)  # in front of each
        w = a * T  # [HW, V]
        accs.append((w @ f).reshape(height, width, -1))
        alphas.append(w.sum(-1).reshape(height, width, 1))
    acc, alpha = torch.stack(accs), torch.stack(alphas)
    rgb = acc[..., :-1]
    if backgrounds is not None:
        rgb = rgb + (1 - alpha) * backgrounds[:, None, None, :]
    return rgb, acc[..., -1:] / alpha.clamp_min(1e-10), alpha


# --- scenes ------------------------------------------------------------------------------------------


def tiny_scene(dtype=torch.float64, N=50, C=2, W=24, H=18, deg=3, seed=0) -> tuple[dict, dict]:
    """50 Gaussians, 24x18, 2 cameras; some behind the camera, some off-screen, an opaque stack that
    drives the transmittance below 1e-4, and one with opacity above 0.999 (clamped)."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(N, 3, generator=g) * 2 - 1) * torch.tensor([1.6, 1.2, 1.5])
    means[:, 2] += 3.0
    means[:4, 2] = -1.0  # behind camera 0
    means[4:8, 0] = 30.0  # off-screen
    means[8:20] = torch.tensor([0.0, 0.0, 2.0]) + 0.05 * torch.randn(12, 3, generator=g)  # opaque stack
    quats = torch.randn(N, 4, generator=g)
    scales = torch.rand(N, 3, generator=g) * 0.3 + 0.03
    scales[8:20] = 0.5
    opac = torch.rand(N, generator=g) * 0.9 + 0.05
    opac[8:20] = 0.6
    opac[20] = 0.9999  # alpha clamped at 0.999 near its centre
    means[20] = torch.tensor([0.375, -3.5 / 18 * 1.5, 1.5])  # projects onto pixel centre (16.5, 5.5) of camera 0
    opac[21] = 0.002  # below 1/255: culled
    sh = torch.randn(N, (deg + 1) ** 2, 3, generator=g) * 0.4
    Ks = torch.tensor([[18.0, 0, W / 2], [0, 18.0, H / 2], [0, 0, 1]]).expand(C, 3, 3).clone()
    viewmats = torch.eye(4).expand(C, 4, 4).clone()
    for c in range(1, C):
        a = 0.25 * c
        viewmats[c, :3, :3] = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        viewmats[c, :3, 3] = torch.tensor([0.4, -0.1, 0.3])
    params = dict(means=means, quats=quats, scales=scales, opacities=opac, sh_coeffs=sh)
    params = {k: v.to(dtype).requires_grad_(True) for k, v in params.items()}
    cams = dict(sh_degree=deg, viewmats=viewmats.to(dtype), Ks=Ks.to(dtype), width=W, height=H,
                backgrounds=torch.rand(C, 3, generator=g).to(dtype))
    return params, cams


def forward_backward(fn, params: dict, seed: int = 1) -> tuple[tuple[Tensor, ...], dict]:
    """Outputs (rgb, depth, alpha) and the gradients of a random linear loss over all three."""
    rgb, depth, alpha = fn()
    g = torch.Generator().manual_seed(seed)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)).sum() for t in (rgb, depth, alpha))
    grads = torch.autograd.grad(loss, [params[k] for k in PARAMS], allow_unused=True)
    return (rgb.detach(), depth.detach(), alpha.detach()), dict(zip(PARAMS, grads))


def tiled(params, cams, **kw):
    def fn():
        out = rasterize(**params, **cams, **kw)
        return out.rgb, out.depth, out.alpha

    return fn


# --- (a) tiles and hand-written backward == dense autograd -------------------------------------------


@pytest.mark.parametrize(
    "block_size,max_pairs,backgrounds,override",
    [(8, 1 << 18, True, False), (16, 1 << 18, False, False), (8, 64 * 3, True, False), (16, 256, True, True)],
)
def test_tiled_equals_dense(monkeypatch, block_size, max_pairs, backgrounds, override):
    monkeypatch.setattr(tb, "BLOCK_SIZE", block_size)
    monkeypatch.setattr(tb, "CHUNK_PAIRS", max_pairs)  # tiny budgets: many chunks of one block each
    params, cams = tiny_scene()
    if not backgrounds:
        cams["backgrounds"] = None
    kw = {}
    if override:
        kw["colors_override"] = torch.rand(50, 5, dtype=torch.float64)
        cams["backgrounds"] = torch.rand(2, 5, dtype=torch.float64)
    (r1, d1, a1), g1 = forward_backward(tiled(params, cams, **kw), params)
    (r2, d2, a2), g2 = forward_backward(lambda: dense_render(**params, **cams, **kw), params)
    assert r1.shape == r2.shape == (2, 18, 24, 5 if override else 3)
    assert (r1 - r2).abs().max() < 1e-5
    assert (d1 - d2).abs().max() < 1e-5
    assert (a1 - a2).abs().max() < 1e-5
    for k in PARAMS:
        if override and k == "sh_coeffs":
            continue
        assert g2[k].abs().max() > 0, k
        assert (g1[k] - g2[k]).abs().max() < 1e-5 * max(1.0, g2[k].abs().max().item()), k


def test_tiny_scene_exercises_every_rule():
    """The scene above reaches the transmittance stop, the 0.999 clamp, and all three culls."""
    params, cams = tiny_scene()
    with torch.no_grad():
        p = project_gaussians(params["means"], params["quats"], params["scales"], params["opacities"],
                              cams["viewmats"], cams["Ks"], cams["width"], cams["height"])
        assert not p.visible[0, :4].any()  # behind
        assert not p.visible[:, 4:8].any()  # off-screen
        assert not p.visible[:, 21].any()  # opacity < 1/255
        assert p.visible.sum() > 40
        out = rasterize(**params, **cams)
    assert out.alpha.max() > 1 - T_STOP * 1.01  # some pixel ran into the stop (alpha = 1 - T >= 0.9999)
    assert (out.alpha < 0.5).any()
    # the clamped Gaussian sits on pixel centre (16.5, 5.5) in front of everything: alpha 0.999 there
    assert p.visible[0, 20] and p.depths[0, 20] == p.depths[0, p.visible[0]].min()
    assert p.means2d[0, 20].tolist() == pytest.approx([16.5, 5.5])
    assert out.alpha[0, 5, 16, 0] > MAX_ALPHA


def test_float32_close_to_float64():
    p64, cams64 = tiny_scene(torch.float64)
    p32, cams32 = tiny_scene(torch.float32)
    (r1, d1, a1), g1 = forward_backward(tiled(p32, cams32), p32)
    (r2, d2, a2), g2 = forward_backward(tiled(p64, cams64), p64)
    assert (r1 - r2).abs().max() < 1e-4 and (a1 - a2).abs().max() < 1e-4
    for k in PARAMS:
        assert ((g1[k].double() - g2[k]).norm() / g2[k].norm()) < 1e-3, k


# --- (b) closed form -----------------------------------------------------------------------------


def test_single_gaussian_closed_form():
    """An isotropic Gaussian on the optical axis, centred on a pixel centre: alpha = o there, and
    o exp(-0.5 / var) one pixel to the side, with var = (f s / z)^2 + eps2d."""
    f, z, s, o, W, H = 40.0, 4.0, 0.1, 0.7, 33, 25
    rgb = torch.tensor([0.2, 0.5, 0.9])
    bg = torch.tensor([[0.1, 0.3, 0.2]])
    sh0 = ((rgb - 0.5) / 0.28209479177387814)[None, None, :]  # [1, 1, 3]
    out = rasterize(
        means=torch.tensor([[0.0, 0.0, z]]), quats=torch.tensor([[1.0, 0, 0, 0]]), scales=torch.full((1, 3), s),
        opacities=torch.tensor([o]), sh_coeffs=sh0, sh_degree=0, viewmats=torch.eye(4)[None],
        Ks=torch.tensor([[[f, 0, 16.5], [0, f, 12.5], [0, 0, 1]]]), width=W, height=H, backgrounds=bg,
    )
    var = (f * s / z) ** 2 + 0.3
    side = o * math.exp(-0.5 / var)
    assert out.alpha[0, 12, 16, 0].item() == pytest.approx(o, abs=1e-6)
    assert out.alpha[0, 12, 17, 0].item() == pytest.approx(side, abs=1e-6)
    assert out.alpha[0, 13, 16, 0].item() == pytest.approx(side, abs=1e-6)
    torch.testing.assert_close(out.rgb[0, 12, 16], o * rgb + (1 - o) * bg[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(out.rgb[0, 12, 17], side * rgb + (1 - side) * bg[0], atol=1e-6, rtol=0)
    assert out.depth[0, 12, 16, 0].item() == pytest.approx(z, abs=1e-5)
    radius = math.ceil(math.sqrt(2 * math.log(o * 255)) * math.sqrt(var))
    assert out.info["radii"][0, 0].tolist() == [radius, radius]
    assert out.info["means2d"][0, 0].tolist() == pytest.approx([16.5, 12.5])
    assert out.info["conics"][0, 0].tolist() == pytest.approx([1 / var, 0.0, 1 / var], abs=1e-6)
    # far from the centre alpha < 1/255: exactly the background
    torch.testing.assert_close(out.rgb[0, 0, 0], bg[0])


# --- gsplat's own torch reference for the parts that have one -----------------------------------


def test_projection_matches_gsplat_reference():
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    params, cams = tiny_scene(torch.float32, N=200, seed=3)
    p = {k: v.detach() for k, v in params.items()}
    ours = project_gaussians(p["means"], p["quats"], p["scales"], None, cams["viewmats"], cams["Ks"], 24, 18)
    covars, _ = _quat_scale_to_covar_preci(p["quats"], p["scales"], compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(p["means"], covars, cams["viewmats"], cams["Ks"], 24, 18)
    assert torch.equal(ours.radii, radii)
    v = ours.visible
    assert v.sum() > 100
    torch.testing.assert_close(ours.means2d[v], means2d[v], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours.depths[v], depths[v])
    torch.testing.assert_close(ours.conics[v], conics[v], rtol=1e-4, atol=1e-6)


def test_sh_matches_gsplat_reference():
    from gsplat.cuda._torch_impl import _spherical_harmonics

    g = torch.Generator().manual_seed(0)
    dirs, coeffs = torch.randn(500, 3, generator=g), torch.randn(500, 16, 3, generator=g)
    for degree in range(4):
        torch.testing.assert_close(spherical_harmonics(degree, dirs, coeffs), _spherical_harmonics(degree, dirs, coeffs))


# --- info dict: means2d gradients, absgrad, tile lists ---------------------------------------------


def test_info_means2d_grad_absgrad_and_tile_lists():
    params, cams = tiny_scene(torch.float32)
    out = rasterize(**params, **cams, absgrad=True)
    info = out.info
    C, N = 2, 50
    assert info["radii"].shape == (C, N, 2) and info["radii"].dtype == torch.int32
    assert info["depths"].shape == (C, N) and info["opacities"].shape == (C, N) and info["conics"].shape == (C, N, 3)
    assert (info["width"], info["height"], info["n_cameras"]) == (24, 18, 2)
    (out.rgb.sum() + out.alpha.sum()).backward()
    grad, absgrad = info["means2d"].grad, info["means2d"].absgrad
    assert grad.shape == absgrad.shape == (C, N, 2)
    visible = (info["radii"] > 0).all(-1)
    assert grad[~visible].abs().max() == 0 and grad[visible].abs().max() > 0
    assert (absgrad >= grad.abs() - 1e-5).all()  # a sum of |per-pixel| >= |sum|
    assert (absgrad[visible].sum(-1) > grad[visible].abs().sum(-1) + 1e-6).any()
    # tile lists: every listed entry is a visible Gaussian of that camera, front to back
    tl = info["tile_lists"]
    assert tl.offsets[-1] == tl.flat_ids.numel() == info["flatten_ids"].numel()
    assert torch.equal(tl.counts.reshape(C, -1).sum(-1), info["tiles_per_gauss"].sum(-1).long())
    depths = info["depths"].reshape(-1)
    for i in range(tl.offsets.numel() - 1):
        ids = tl.flat_ids[tl.offsets[i] : tl.offsets[i + 1]]
        assert (ids // N == i // tl.n_tiles).all()
        assert visible.reshape(-1)[ids].all()
        assert (depths[ids].diff() >= 0).all()


def test_render_front_dispatches_to_torch():
    model = GaussianModel.random(100, sh_degree=1, seed=0)
    viewmats = torch.eye(4)[None]
    viewmats[0, 2, 3] = 3.0
    Ks = torch.tensor([[[30.0, 0, 16], [0, 30.0, 12], [0, 0, 1]]])
    out = render(model, viewmats, Ks, 32, 24)  # CPU: auto -> torch
    assert out.rgb.shape == (1, 24, 32, 3) and out.depth.shape == out.alpha.shape == (1, 24, 32, 1)
    out.rgb.mean().backward()
    assert all(p.grad is not None for p in model.params.values())


# --- (c) gsplat's DefaultStrategy on our info dict -------------------------------------------------


def test_default_strategy_runs_on_torch_info(capsys):
    from gsplat.strategy import DefaultStrategy

    g = torch.Generator().manual_seed(0)
    n = 300
    points = (torch.rand(n, 3, generator=g) * 2 - 1) * torch.tensor([1.0, 0.7, 0.5]) + torch.tensor([0.0, 0.0, 3.0])
    model = GaussianModel.from_points(points, sh_degree=1, init_opacity=0.5, generator=g)
    with torch.no_grad():
        model.params["scales"][: n // 2] = math.log(0.005)  # small: duplicated
        model.params["scales"][n // 2 :] = math.log(0.05)  # large: split
        model.params["opacities"][:20] = torch.logit(torch.tensor(0.003))  # pruned
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in model.params.items()}
    strategy = DefaultStrategy(refine_start_iter=1, refine_every=2, grow_grad2d=1e-9, grow_scale3d=0.01,
                               prune_opa=0.005, reset_every=1000, verbose=True)
    strategy.check_sanity(model.params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    viewmats = torch.eye(4)[None].repeat(2, 1, 1)
    viewmats[1, 0, 3] = 0.2
    Ks = torch.tensor([[40.0, 0, 24], [0, 40.0, 16], [0, 0, 1]]).expand(2, 3, 3)
    target = torch.rand(2, 32, 48, 3, generator=g)
    sizes = [len(model)]
    for step in range(5):
        out = render(model, viewmats, Ks, 48, 32, backend="torch")
        strategy.step_pre_backward(model.params, optimizers, state, step, out.info)
        (out.rgb - target).abs().mean().backward()
        strategy.step_post_backward(model.params, optimizers, state, step, out.info, packed=False)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad()
        sizes.append(len(model))
        n_state = state["grad2d"].shape[0]
        assert n_state == len(model) and state["count"].shape[0] == len(model)
        if step == 0:
            assert state["count"].max() == 2 and state["grad2d"].max() > 0  # 2 cameras see it
    log = capsys.readouterr().out
    dup = [int(s.split(" GSs duplicated")[0].split()[-1]) for s in log.splitlines() if "duplicated" in s]
    split = [int(s.split(" GSs split")[0].split()[-1]) for s in log.splitlines() if "split" in s]
    pruned = [int(s.split(" GSs pruned")[0].split()[-1]) for s in log.splitlines() if "pruned" in s]
    assert dup and dup[0] > 0 and split[0] > 0 and pruned[0] > 0, log
    assert sizes[-1] != sizes[0]
    for k, opt in optimizers.items():  # optimizer state follows the new parameter count
        assert opt.state[opt.param_groups[0]["params"][0]]["exp_avg"].shape == model.params[k].shape


def test_block_grid_round_trip_and_block_centres():
    """Images <-> block layout for several cameras (one camera also as [H, W, D]); block centres in pixels."""
    from faithfusion.render.raster import BlockGrid

    grid = BlockGrid(size=4, nx=3, ny=2, width=10, height=7, n_cameras=2)
    img = torch.randn(2, 7, 10, 3)
    blocks = grid.to_blocks(img)  # [2 * 6, 16, 3]
    assert blocks.shape == (12, 16, 3)
    assert torch.equal(grid.from_blocks(blocks), img)
    assert torch.equal(blocks[7, 0], img[1, 0, 4])  # camera 1, block (row 0, col 1): its first pixel is (x 4, y 0)
    one = BlockGrid(size=4, nx=3, ny=2, width=10, height=7)
    assert torch.equal(one.to_blocks(img[1]), blocks[6:])
    centres = grid.block_centres(torch.tensor([0, 4, 11]), torch.float32)
    assert centres.tolist() == [[2.0, 2.0], [6.0, 6.0], [10.0, 6.0]]


@pytest.mark.parametrize("keep", [0, 64 * 24 * 3, 1 << 24])  # recompute every chunk / the first chunks only / all
def test_forward_blends_kept_for_backward_give_the_same_gradients(monkeypatch, keep):
    """CPU training keeps the forward pass's chunk blends (up to KEEP_BLEND_PAIRS pair entries) for backward:
    the same gradients (absgrad included), bit for bit, as recomputing every blend; a second backward through
    the same graph (retain_graph) finds the kept blends unchanged."""
    monkeypatch.setattr(tb, "CHUNK_PAIRS", 64 * 4)  # many chunks
    params, cams = tiny_scene(torch.float32)

    def grads(budget: int):
        monkeypatch.setattr(tb, "KEEP_BLEND_PAIRS", budget)
        out = rasterize(**params, **cams, absgrad=True)
        loss = (out.rgb * out.rgb).sum() + out.depth.sum() + out.alpha.sum()
        g = torch.autograd.grad(loss, [params[k] for k in PARAMS], retain_graph=True)
        again = torch.autograd.grad(loss, [params[k] for k in PARAMS])
        return g, again, out.info["means2d"].absgrad

    want, _, want_abs = grads(0)
    got, again, got_abs = grads(keep)
    for k, a, b, c in zip(PARAMS, want, got, again):
        assert a.abs().max() > 0, k
        assert torch.equal(a, b) and torch.equal(a, c), k
    assert torch.equal(want_abs, got_abs)
