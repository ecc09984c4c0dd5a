"""The Triton pair loop (`eig/triton_pairs.py`) against the torch path of fisher.py and the oracle, and
the analytic per-Gaussian Jacobian (`jacobian.analytic_jacobian`) against the autograd one.

On the CPU the kernel runs in Triton's interpreter (TRITON_INTERPRET=1, set here before triton is
imported); the `gpu` test compares both paths on CUDA. The kernel tests skip where triton is not
installed (the Jacobian tests need no triton).
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from faithfusion.cameras import Camera  # noqa: E402
from faithfusion.eig.fisher import PARAM_GROUPS, fisher_diagonal, pair_sums, prepare_view, resolve_backend  # noqa: E402
from faithfusion.eig.jacobian import view_quantities  # noqa: E402
from faithfusion.eig.maps import composite_scalar, eig_map  # noqa: E402
from faithfusion.eig.oracle import fisher_oracle  # noqa: E402
from faithfusion.eig.toy import toy_scene  # noqa: E402
from faithfusion.gaussians.model import GaussianModel  # noqa: E402

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
HAS_TRITON = importlib.util.find_spec("triton") is not None
cpu_kernel = pytest.mark.skipif(not (INTERPRET and HAS_TRITON), reason="runs the kernel in Triton's interpreter (needs triton)")


@pytest.fixture(autouse=True)
def _triton(request):
    """Kernel tests skip cleanly without triton."""
    if "jacobian" not in request.node.name:
        pytest.importorskip("triton")


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def config():
    """Set FAITHFUSION_EIG_TRITON (block, batch, warps[, tile]) for one test."""
    old = os.environ.get("FAITHFUSION_EIG_TRITON")

    def set_(cfg: str) -> None:
        os.environ["FAITHFUSION_EIG_TRITON"] = cfg

    yield set_
    if old is None:
        os.environ.pop("FAITHFUSION_EIG_TRITON", None)
    else:
        os.environ["FAITHFUSION_EIG_TRITON"] = old


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).norm() / b.double().cpu().norm())


def toy_inputs(dtype):
    model, cams = toy_scene(dtype=dtype)
    g = torch.Generator().manual_seed(3)
    bgs = [torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64), torch.rand(10, 12, 3, generator=g, dtype=torch.float64)]
    ws = [None, torch.rand(10, 12, generator=g, dtype=torch.float64)]
    return model, cams, [b.to(dtype) for b in bgs], [None, ws[1].to(dtype)]


@pytest.fixture(scope="module")
def toy_oracle():
    torch.set_num_threads(1)
    model, cams, bgs, ws = toy_inputs(torch.float64)
    return fisher_oracle(model, cams, backgrounds=bgs, pixel_weights=ws)


def random_scene(n: int, width: int, height: int, seed: int, opaque: bool = False, dtype=torch.float64):
    """Anisotropic random Gaussians in front of one camera (`opaque`: pixels reach the transmittance stop)."""
    model = GaussianModel.random(n, extent=1.0, sh_degree=1, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        p = model.params
        p["scales"] += 0.5 * torch.randn(p["scales"].shape, generator=g) + (0.3 if opaque else -0.5)
        if opaque:
            p["opacities"].uniform_(2.0, 8.0, generator=g)  # many clamped at 0.999
        else:
            p["opacities"].uniform_(-2.0, 3.0, generator=g)
        p["shN"].normal_(0.0, 0.2, generator=g)
    params = {k: v.detach().to(dtype) for k, v in model.params.items()}
    model = GaussianModel(params, model.sh_degree)
    K = torch.tensor([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1.0]], dtype=dtype)
    vm = torch.eye(4, dtype=dtype)
    vm[:3, 3] = torch.tensor([0.1, -0.05, 2.5], dtype=dtype)
    cam = Camera(K=K, viewmat=vm, width=width, height=height, name="rand")
    bg = torch.rand(height, width, 3, generator=g, dtype=torch.float64).to(dtype)
    w = torch.rand(height, width, generator=g, dtype=torch.float64).to(dtype)
    return model, cam, bg, w


def test_auto_backend_is_torch_on_cpu():
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    with pytest.raises(ValueError):
        resolve_backend("cuda", torch.device("cpu"))


@cpu_kernel
@pytest.mark.parametrize("cfg", ["16,16,8", "8,4,4", "8,4,4,16"])
def test_triton_equals_torch_and_oracle_float64(toy_oracle, config, cfg):
    config(cfg)
    model, cams, bgs, ws = toy_inputs(torch.float64)
    H_t = fisher_diagonal(model, cams, backgrounds=bgs, pixel_weights=ws, backend="torch")
    H_x = fisher_diagonal(model, cams, backgrounds=bgs, pixel_weights=ws, backend="triton")
    for g in PARAM_GROUPS:
        assert H_x[g].shape == model.params[g].shape
        assert rel(H_x[g], toy_oracle[g]) < 1e-10, (g, rel(H_x[g], toy_oracle[g]))
        assert rel(H_x[g], H_t[g]) < 1e-10, (g, rel(H_x[g], H_t[g]))


@cpu_kernel
def test_triton_float32_toy(toy_oracle):
    model, cams, bgs, ws = toy_inputs(torch.float32)
    H_t = fisher_diagonal(model, cams, backgrounds=bgs, pixel_weights=ws, backend="torch")
    H_x = fisher_diagonal(model, cams, backgrounds=bgs, pixel_weights=ws, backend="triton")
    for g in PARAM_GROUPS:
        assert rel(H_x[g], toy_oracle[g]) < 1e-5, (g, rel(H_x[g], toy_oracle[g]))
        assert rel(H_x[g], H_t[g]) < 1e-5, (g, rel(H_x[g], H_t[g]))


@cpu_kernel
@pytest.mark.parametrize("opaque", [False, True])
@pytest.mark.parametrize("cfg", ["16,8,4", "8,4,4", "4,8,1"])
def test_triton_random_scene_pair_sums(config, opaque, cfg):
    """30 (resp. 60 opaque) anisotropic Gaussians on 24x16 (a partial tile): M per Gaussian, float64 and float32."""
    config(cfg)
    n = 60 if opaque else 30
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        model, cam, bg, w = random_scene(n, 24, 16, seed=5, opaque=opaque, dtype=dtype)
        vp = prepare_view(model, cam)
        a = pair_sums(vp, w, bg, backend="torch")
        b = pair_sums(vp, w, bg, backend="triton")
        assert torch.equal(a.index, b.index)
        for x, y in ((a.geo, b.geo), (a.cross, b.cross), (a.w2, b.w2)):
            assert y.norm() > 0 and rel(y, x) < tol, (dtype, rel(y, x))
        H_t = fisher_diagonal(model, [cam], backgrounds=[bg], pixel_weights=[w], backend="torch")
        H_x = fisher_diagonal(model, [cam], backgrounds=[bg], pixel_weights=[w], backend="triton")
        for g in PARAM_GROUPS:
            assert H_t[g].norm() > 0, g
            assert rel(H_x[g], H_t[g]) < tol, (dtype, g, rel(H_x[g], H_t[g]))
        if opaque and dtype == torch.float64:  # the oracle on the opaque scene (the stop and the clamp)
            H_o = fisher_oracle(model, [cam], backgrounds=[bg], pixel_weights=[w])
            for g in PARAM_GROUPS:
                assert rel(H_x[g], H_o[g]) < 1e-10, (g, rel(H_x[g], H_o[g]))


def _check_composite(model, cam, bg, tol: float) -> None:
    """The Triton compositing against the torch chunks: one and two value columns, and a whole EIG map."""
    vp = prepare_view(model, cam)
    g = torch.Generator().manual_seed(1)
    vals = torch.rand(len(model), 2, generator=g, dtype=torch.float64).to(model.params["means"])
    for v in (vals[:, 0], vals):
        a = composite_scalar(vp, v, backend="torch")
        b = composite_scalar(vp, v, backend="triton")
        for x, y in ((a.wI, b.wI), (a.w2I, b.w2I), (a.alpha, b.alpha)):
            assert x.shape == y.shape and x.norm() > 0 and rel(y, x) < tol, rel(y, x)
        assert torch.equal(a.count, b.count)
    H = fisher_diagonal(model, [cam], backgrounds=[bg], backend="torch")
    H = {k: h * 0.5 + 1e-3 for k, h in H.items()}
    from faithfusion.eig.variants import variant_eig_map

    for form in ("fisherrf", "faithfusion", "diag"):
        fn = variant_eig_map if form == "diag" else eig_map
        m_t = fn(model, cam, H, form=form, background=bg, backend="torch")
        m_x = fn(model, cam, H, form=form, background=bg, backend="triton")
        assert torch.equal(m_t.covered, m_x.covered)
        assert rel(m_x.eig, m_t.eig) < tol, (form, rel(m_x.eig, m_t.eig))


@cpu_kernel
@pytest.mark.parametrize("opaque", [False, True])
def test_triton_composite_equals_torch(config, opaque):
    """The compositing kernel (EIG maps) on 24x16 with a partial tile, float64 and float32."""
    config("8,4,4")
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        model, cam, bg, _ = random_scene(60 if opaque else 30, 24, 16, seed=5, opaque=opaque, dtype=dtype)
        _check_composite(model, cam, bg, tol)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_equals_torch_on_cuda():
    """4000 anisotropic Gaussians at 160x120 (and an opaque 2000 at 200x136) on CUDA: the kernel against the torch path."""
    dev = torch.device("cuda")
    assert resolve_backend("auto", dev) == "triton"  # the default on CUDA: this test holds it to the torch path
    for n, W, H, opaque in ((4000, 160, 120, False), (2000, 200, 136, True)):
        for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
            model, cam, bg, w = random_scene(n, W, H, seed=7, opaque=opaque, dtype=dtype)
            model = GaussianModel({k: v.to(dev) for k, v in model.params.items()}, model.sh_degree)
            cam, bg, w = cam.to(dev), bg.to(dev), w.to(dev)
            H_t = fisher_diagonal(model, [cam], backgrounds=[bg], pixel_weights=[w], backend="torch")
            H_x = fisher_diagonal(model, [cam], backgrounds=[bg], pixel_weights=[w], backend="triton")
            for g in PARAM_GROUPS:
                assert H_t[g].norm() > 0, g
                assert rel(H_x[g], H_t[g]) < tol, (n, dtype, g, rel(H_x[g], H_t[g]))
            _check_jacobian(model, cam, 1e-12 if dtype == torch.float64 else 1e-5)
            _check_composite(model, cam, bg, tol)


def _check_jacobian(model, cam, tol: float) -> None:
    params = {k: v.detach() for k, v in model.params.items()}
    dt = params["means"].dtype
    args = (params, model.sh_degree, cam.viewmat.to(dt), cam.K.to(dt), cam.width, cam.height)
    a = view_quantities(*args, method="autograd").J
    b = view_quantities(*args, method="analytic").J
    assert a.abs().amax() > 0
    # per output column u, relative to that column's largest entry
    err = (a - b).abs().amax((0, 1)) / a.abs().amax((0, 1)).clamp_min(1e-300)
    assert float(err.max()) < tol, err.tolist()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_analytic_jacobian_equals_autograd(dtype, tol):
    """Toy scene (clamped tangent, SH clamp, off-centre and near Gaussians) and a random anisotropic one."""
    model, cams = toy_scene(dtype=dtype)
    for cam in cams:
        _check_jacobian(model, cam, tol)
    model, cam, _, _ = random_scene(300, 64, 48, seed=3, dtype=dtype)
    _check_jacobian(model, cam, tol)


def test_analytic_jacobian_fisher_equals_oracle(toy_oracle):
    """The whole Fisher with the analytic J (torch pair loop) against the brute-force oracle, float64."""
    model, cams, bgs, ws = toy_inputs(torch.float64)
    total = {}
    for cam, bg, w in zip(cams, bgs, ws):
        params = {k: v.detach() for k, v in model.params.items()}
        vp = prepare_view(model, cam)
        vq = view_quantities(params, model.sh_degree, cam.viewmat, cam.K, cam.width, cam.height, method="analytic")
        vp.vq.J = vq.J
        from faithfusion.eig.fisher import view_fisher

        for g, h in view_fisher(model, cam, background=bg, pixel_weights=w, vp=vp, backend="torch").items():
            total[g] = total[g] + h if g in total else h
    for g in PARAM_GROUPS:
        assert rel(total[g], toy_oracle[g]) < 1e-10, (g, rel(total[g], toy_oracle[g]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gsplat_tile_lists_equal_the_torch_ones():
    """gsplat's intersection (what the EIG kernels use on CUDA) gives the torch backend's tile lists."""
    pytest.importorskip("gsplat")
    from faithfusion.render.raster import build_tile_lists, isect_tile_lists

    dev = torch.device("cuda")
    model, cam, _, _ = random_scene(4000, 160, 120, seed=7)
    params = {k: v.to(dev) for k, v in model.params.items()}
    cam = cam.to(dev)
    vq = view_quantities(params, model.sh_degree, cam.viewmat, cam.K, cam.width, cam.height, jacobian=False)
    a = build_tile_lists(vq.proj, cam.width, cam.height)
    b = isect_tile_lists(vq.proj, cam.width, cam.height)
    assert a.flat_ids.numel() > 4000 and torch.equal(a.offsets, b.offsets)
    assert torch.equal(a.tiles_per_gauss.reshape(-1).int(), b.tiles_per_gauss.reshape(-1).int())
    same_order = torch.equal(a.flat_ids, b.flat_ids)
    if not same_order:  # only depth ties may be ordered differently: the sets per tile must agree
        for t in range(a.n_tiles):
            s, e = int(a.offsets[t]), int(a.offsets[t + 1])
            assert torch.equal(a.flat_ids[s:e].sort().values, b.flat_ids[s:e].sort().values), t


@cpu_kernel
def test_fisher_views_use_lists_at_the_kernel_tile(config):
    """A view prepared for the kernels carries lists over the configured tile, and the result does not depend on it."""
    model, cam, bg, w = random_scene(40, 24, 16, seed=9, dtype=torch.float64)
    out = {}
    for cfg, tile in (("8,4,4", 8), ("8,4,4,16", 16), ("4,8,1", 4)):
        config(cfg)
        assert prepare_view(model, cam, plan=False).tiles.tile_size == tile
        out[cfg] = fisher_diagonal(model, [cam], backgrounds=[bg], pixel_weights=[w], backend="triton")
    for g in PARAM_GROUPS:
        assert out["8,4,4"][g].norm() > 0
        for cfg in ("8,4,4,16", "4,8,1"):
            assert rel(out[cfg][g], out["8,4,4"][g]) < 1e-12, (cfg, g)
