"""Pixel EIG (`eig/pixel.py`): against autograd per pixel, its sum against the trace bound, the map form
"pixel", and the Triton kernel (`eig/triton_pixel.py`) against the torch path (CPU interpreter; CUDA: `gpu`)."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from faithfusion.eig.fisher import PARAM_GROUPS, fisher_diagonal, view_fisher  # noqa: E402
from faithfusion.eig.maps import FORMS, eig_map  # noqa: E402
from faithfusion.eig.oracle import pixel_variance_oracle  # noqa: E402
from faithfusion.eig.pixel import PixelPrior, pixel_eig, pixel_variance  # noqa: E402
from faithfusion.eig.toy import toy_scene  # noqa: E402
from faithfusion.gaussians.model import GaussianModel  # noqa: E402

HAS_TRITON = importlib.util.find_spec("triton") is not None
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

pytestmark = pytest.mark.usefixtures("single_thread")

# a prior whose groups differ, so that a precision used for the wrong group shows
PRIOR = PixelPrior(means=2.0, scales=0.5, quats=3.0, opacities=0.7, colours=1.3, noise_var=0.01, empty_var=0.05)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).norm() / b.double().cpu().norm())


@pytest.fixture(scope="module")
def toy():
    """float64 toy scene, H_train from camera 0, camera 1 evaluated over a flat background."""
    model, cams = toy_scene(dtype=torch.float64)
    H_train = fisher_diagonal(model, cams[:1], backend="torch")
    bg = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    return model, cams, H_train, bg


def test_pixel_variance_equals_autograd(toy):
    model, cams, H_train, bg = toy
    var = pixel_variance(model, cams[1], H_train, PRIOR, background=bg, backend="torch")
    ref = pixel_variance_oracle(model, cams[1], H_train, {g: PRIOR.precision(g) for g in H_train},
                                PRIOR.noise_var, PRIOR.empty_var, background=bg)
    assert var.gaussians.shape == ref.shape == (cams[1].height, cams[1].width)
    assert (var.empty > 0).any() and (var.gaussians > 0).any()
    torch.testing.assert_close(var.total, ref, rtol=1e-4, atol=0.0)
    # the empty-space term is what the Gaussians leave: 3 T_final^2 sigma_empty^2
    torch.testing.assert_close(var.empty, 3 * PRIOR.empty_var * (1 - var.alpha) ** 2)


def test_pixel_variance_sums_to_the_trace_bound(toy):
    """sum_p (Var_p - empty_p) = tr(H_view (H_train / sigma^2 + Lambda)^-1) with H_view the view's own Fisher."""
    model, cams, H_train, bg = toy
    var = pixel_variance(model, cams[1], H_train, PRIOR, background=bg, backend="torch")
    H_view = view_fisher(model, cams[1], background=bg, backend="torch")
    trace = sum(float((H_view[g] / (H_train[g] / PRIOR.noise_var + PRIOR.precision(g))).sum()) for g in PARAM_GROUPS)
    assert float(var.gaussians.sum()) == pytest.approx(trace, rel=1e-8)


def test_pixel_form_of_eig_map(toy):
    """form="pixel": 1/2 log(1 + Var_p / sigma^2) over every pixel, no coverage rule; the paper's forms unchanged."""
    model, cams, H_train, bg = toy
    assert FORMS[:2] == ("fisherrf", "faithfusion") and "pixel" in FORMS
    m = eig_map(model, cams[1], H_train, form="pixel", prior=PRIOR, background=bg, backend="torch")
    var = pixel_variance(model, cams[1], H_train, PRIOR, background=bg, backend="torch")
    torch.testing.assert_close(m.eig, 0.5 * torch.log1p(var.total / PRIOR.noise_var))
    torch.testing.assert_close(m.eig, pixel_eig(var, PRIOR))
    assert m.form == "pixel" and torch.equal(m.covered, var.alpha >= 0.1)
    assert (~m.covered).any() and m.eig[~m.covered].max() < m.eig.max() + 1e-12  # uncovered keep their own value
    # a larger prior precision (less prior uncertainty) can only lower every pixel's variance
    tight = PixelPrior(means=20.0, scales=5.0, quats=30.0, opacities=7.0, colours=13.0, noise_var=0.01, empty_var=0.05)
    assert (pixel_variance(model, cams[1], H_train, tight, background=bg, backend="torch").gaussians
            <= var.gaussians + 1e-12).all()


def test_pixel_prior_defaults_and_errors():
    p = PixelPrior()
    q = PixelPrior.from_std()
    for f in ("means", "scales", "quats", "opacities", "colours", "noise_var", "empty_var"):
        assert getattr(p, f) == pytest.approx(getattr(q, f))
    assert p.precision("sh0") == p.precision("shN") == p.colours
    assert p.empty_var == pytest.approx(1 / 12) and p.noise_var == pytest.approx(0.0025)
    with pytest.raises(ValueError, match="must be > 0"):
        PixelPrior(means=0.0)


def _random_scene(n: int, width: int, height: int, seed: int, dtype):
    model = GaussianModel.random(n, extent=1.0, sh_degree=1, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        p = model.params
        p["scales"] += 0.5 * torch.randn(p["scales"].shape, generator=g) - 0.3
        p["opacities"].uniform_(-2.0, 6.0, generator=g)  # some clamped at 0.999
        p["shN"].normal_(0.0, 0.2, generator=g)
    model = GaussianModel({k: v.detach().to(dtype) for k, v in model.params.items()}, model.sh_degree)
    from faithfusion.cameras import Camera

    K = torch.tensor([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1.0]], dtype=dtype)
    vm = torch.eye(4, dtype=dtype)
    vm[:3, 3] = torch.tensor([0.1, -0.05, 2.5], dtype=dtype)
    cam = Camera(K=K, viewmat=vm, width=width, height=height, name="rand")
    bg = torch.rand(height, width, 3, generator=g, dtype=torch.float64).to(dtype)
    return model, cam, bg


def _check_triton(model, cam, bg, tol: float) -> tuple:
    H = fisher_diagonal(model, [cam], backgrounds=[bg], backend="torch")
    H = {k: h * 0.3 for k, h in H.items()}
    t = pixel_variance(model, cam, H, PRIOR, background=bg, backend="torch")
    x = pixel_variance(model, cam, H, PRIOR, background=bg, backend="triton")
    assert t.gaussians.norm() > 0
    assert rel(x.gaussians, t.gaussians) < tol, rel(x.gaussians, t.gaussians)
    assert rel(x.alpha, t.alpha) < tol and torch.equal(x.count, t.count)
    return t, x


@pytest.mark.skipif(not (INTERPRET and HAS_TRITON), reason="runs the kernel in Triton's interpreter (needs triton)")
def test_triton_pixel_variance_equals_torch_cpu():
    """The kernel in Triton's interpreter on 20x12 (partial tiles), float64."""
    cfg = os.environ.get("FAITHFUSION_EIG_TRITON")
    os.environ["FAITHFUSION_EIG_TRITON"] = "4,8,1,8"
    try:
        model, cam, bg = _random_scene(40, 20, 12, seed=6, dtype=torch.float64)
        t, _ = _check_triton(model, cam, bg, 1e-10)
        assert (t.alpha < 0.5).any() and (t.alpha > 0.999).any()  # partly covered pixels and the transmittance stop
    finally:
        if cfg is None:
            os.environ.pop("FAITHFUSION_EIG_TRITON", None)
        else:
            os.environ["FAITHFUSION_EIG_TRITON"] = cfg


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_pixel_variance_equals_torch_on_cuda():
    """3000 Gaussians at 160x120 on CUDA, float32 and float64: the kernel (the default there) against torch."""
    dev = torch.device("cuda")
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
        model, cam, bg = _random_scene(3000, 160, 120, seed=7, dtype=dtype)
        model = GaussianModel({k: v.to(dev) for k, v in model.params.items()}, model.sh_degree)
        _check_triton(model, cam.to(dev), bg.to(dev), tol)


def test_fusion_rounds_use_the_configured_eig_form():
    """--faithfusion.eig-form reaches the session that FaithFusion's rounds build; the default is the form-choice rule's `faithfusion`."""
    from types import SimpleNamespace

    from faithfusion.fusion.config import FaithFusionSchedule
    from faithfusion.fusion.faithfusion import FaithFusionMethod
    from faithfusion.utils.timing import NO_TIMER

    model, cams = toy_scene(n_cameras=3)
    views = [SimpleNamespace(camera=c, sky_mask=None, index=i) for i, c in enumerate(cams)]
    trainer = SimpleNamespace(model=model, device=model.device, sky=None, real=SimpleNamespace(views=views))
    assert FaithFusionSchedule().eig_form == "faithfusion"
    for form in ("fisherrf", "pixel"):
        method = SimpleNamespace(acc=None, timer=NO_TIMER, sched=FaithFusionSchedule(eig_form=form, calib_views=2))
        method.update_h_train = lambda tr, index=None, m=method: FaithFusionMethod.update_h_train(m, tr, index)
        session = FaithFusionMethod.eig_session(method, trainer)
        assert session.form == form and session.calibration.form == form
        m, g = session.eig(cams[1])
        assert m.form == form and torch.isfinite(g).all()
