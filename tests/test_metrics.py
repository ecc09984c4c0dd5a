"""PSNR, SSIM (against an independent scipy implementation) and LPIPS (against torchmetrics' documented example)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from faithfusion.eval import lpips as lpips_mod
from faithfusion.eval.lpips import LPIPS, LPIPSWeightsError, default_npz_path, load_lpips_state
from faithfusion.eval.metrics import Metrics, psnr, ssim, ssim_map

HAVE_WEIGHTS = default_npz_path().is_file()
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason=f"LPIPS weights not at {default_npz_path()}")


# --- PSNR -----------------------------------------------------------------------------------


def test_psnr_known_values() -> None:
    target = torch.zeros(2, 8, 8, 3)
    pred = torch.full((2, 8, 8, 3), 0.1)  # MSE 0.01 -> 20 dB
    pred[1] = 0.01  # MSE 1e-4 -> 40 dB
    assert torch.allclose(psnr(pred, target, reduction="none"), torch.tensor([20.0, 40.0]), atol=1e-4)
    assert psnr(pred, target).item() == pytest.approx(30.0, abs=1e-4)
    assert psnr(target, target).item() == pytest.approx(100.0)  # floored, finite


def test_psnr_mask() -> None:
    target = torch.zeros(6, 6, 3)
    pred = torch.zeros(6, 6, 3)
    pred[:3] = 0.1  # error only in the top half
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[:3] = True
    assert psnr(pred, target, mask).item() == pytest.approx(20.0, abs=1e-4)
    assert psnr(pred, target, ~mask).item() == pytest.approx(100.0)
    assert psnr(pred, target, mask[..., None]).item() == pytest.approx(20.0, abs=1e-4)
    with pytest.raises(ValueError, match="no pixel"):
        psnr(pred, target, torch.zeros(6, 6, dtype=torch.bool))


# --- SSIM -----------------------------------------------------------------------------------


def ssim_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. with scipy's Gaussian filter (sigma 1.5, radius 5), valid region, channel mean (skimage's recipe)."""
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for ch in range(a.shape[-1]):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        f = lambda im: gaussian_filter(im, sigma=1.5, truncate=3.5, mode="reflect")  # noqa: E731
        mx, my = f(x), f(y)
        vx, vy, cxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        vals.append(s[5:-5, 5:-5].mean())
    return float(np.mean(vals))


def test_ssim_identical_is_one() -> None:
    img = torch.rand(2, 24, 30, 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(img, img, reduction="none"), torch.ones(2), atol=1e-6)
    assert torch.allclose(ssim_map(img, img), torch.ones(2, 24, 30, 3), atol=1e-5)  # also with zero padding


def test_ssim_matches_scipy_reference() -> None:
    g = torch.Generator().manual_seed(1)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 33), torch.linspace(0, 1, 41), indexing="ij")
    clean = torch.stack([ys, xs, (ys * xs).sqrt()], dim=-1).double()  # [33, 41, 3] smooth image
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    got = ssim(noisy, clean).item()
    ref = ssim_scipy(noisy.numpy(), clean.numpy())
    assert 0.2 < ref < 0.95
    assert got == pytest.approx(ref, abs=1e-10)
    # float32 and a batch dimension
    batch = torch.stack([noisy, clean]).float()
    assert torch.allclose(ssim(batch, torch.stack([clean, clean]).float(), reduction="none"), torch.tensor([ref, 1.0]).float(), atol=1e-5)


def test_ssim_map_same_agrees_with_valid_inside_and_has_gradients() -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.rand(20, 22, 3, generator=g, requires_grad=True)
    b = torch.rand(20, 22, 3, generator=g)
    same = ssim_map(a, b)  # [20, 22, 3]
    valid = ssim_map(a, b, padding="valid")  # [10, 12, 3]
    assert same.shape == (20, 22, 3) and valid.shape == (10, 12, 3)
    assert torch.allclose(same[5:-5, 5:-5], valid, atol=1e-6)
    (1 - same).mean().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="smaller"):
        ssim(torch.rand(8, 8, 3), torch.rand(8, 8, 3))


# --- LPIPS ----------------------------------------------------------------------------------


@needs_weights
def test_lpips_torchmetrics_example() -> None:
    net = LPIPS()
    torch.manual_seed(42)
    img1 = torch.rand(2, 3, 100, 100) * 2 - 1
    img2 = torch.rand(2, 3, 100, 100) * 2 - 1
    d = net.forward_nchw(img1, img2)  # normalize=False: inputs in [-1, 1]
    assert torch.allclose(d, torch.tensor([0.1024, 0.0938]), atol=1e-4)
    assert d.mean().item() == pytest.approx(0.0981, abs=1e-4)
    # our convention: [B, H, W, 3] in [0, 1]; and torchmetrics' normalize=True
    hwc1, hwc2 = img1.permute(0, 2, 3, 1) * 0.5 + 0.5, img2.permute(0, 2, 3, 1) * 0.5 + 0.5
    assert torch.allclose(net(hwc1, hwc2), d, atol=1e-6)
    assert torch.allclose(net.forward_nchw(img1 * 0.5 + 0.5, img2 * 0.5 + 0.5, normalize=True), d, atol=1e-6)
    assert net(hwc1, hwc1).abs().max() < 1e-6


@needs_weights
def test_lpips_is_differentiable_in_its_inputs() -> None:
    net = LPIPS()
    a = torch.rand(1, 40, 40, 3, requires_grad=True)
    net(a, torch.rand(1, 40, 40, 3)).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in net.parameters())


@pytest.fixture
def no_default_weights(monkeypatch, tmp_path):
    """Hide every default location: no npz, an empty torch hub, no lpips/torchmetrics packages."""
    monkeypatch.delenv(lpips_mod.ENV_VAR, raising=False)
    monkeypatch.setattr(lpips_mod, "default_npz_path", lambda: tmp_path / "none.npz")
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setattr(lpips_mod, "_package_file", lambda package, *rel: None)
    return hub / "checkpoints"


def test_lpips_missing_weights_errors(no_default_weights, tmp_path, monkeypatch) -> None:
    with pytest.raises(LPIPSWeightsError, match="backbone and the LPIPS v0.1 linear heads") as e:
        load_lpips_state()
    assert "squeezenet1_1-*.pth" in str(e.value) and "none.npz" in str(e.value)
    with pytest.raises(LPIPSWeightsError, match="does not exist"):
        load_lpips_state(tmp_path / "nowhere.npz")
    monkeypatch.setenv(lpips_mod.ENV_VAR, str(tmp_path / "env.npz"))
    with pytest.raises(LPIPSWeightsError, match="FAITHFUSION_LPIPS_WEIGHTS"):
        load_lpips_state()


@needs_weights
def test_lpips_torchvision_backbone_plus_lpips_heads(no_default_weights, tmp_path, monkeypatch) -> None:
    """The fallback: backbone from torchvision's cache, heads from the lpips package's squeeze.pth."""
    full = dict(np.load(default_npz_path()))
    backbone = {
        "features." + ".".join(k.split(".")[2:]): torch.from_numpy(v) for k, v in full.items() if k.startswith("net.")
    }
    backbone["classifier.1.weight"] = torch.zeros(1000, 512, 1, 1)  # torchvision files have a classifier too
    torch.save(backbone, no_default_weights / "squeezenet1_1-b8a52dc0.pth")
    with pytest.raises(LPIPSWeightsError, match="missing the LPIPS v0.1 linear heads") as e:
        load_lpips_state()
    assert "backbone" not in str(e.value).split("Looked")[0]

    heads = {f"lin{i}.model.1.weight": torch.from_numpy(full[k]) for i, k in enumerate(sorted(k for k in full if ".model.1." in k))}
    torch.save(heads, tmp_path / "squeeze.pth")
    monkeypatch.setattr(lpips_mod, "_package_file", lambda package, *rel: tmp_path / "squeeze.pth" if package == "lpips" else None)
    net = LPIPS()
    torch.manual_seed(42)
    img1 = torch.rand(2, 3, 100, 100) * 2 - 1
    img2 = torch.rand(2, 3, 100, 100) * 2 - 1
    assert torch.allclose(net.forward_nchw(img1, img2), torch.tensor([0.1024, 0.0938]), atol=1e-4)


# --- Metrics helper -------------------------------------------------------------------------


def test_metrics_helper_without_lpips_weights_is_an_error_not_a_silent_none(tmp_path) -> None:
    with pytest.raises(LPIPSWeightsError, match="missing.npz"):
        Metrics(lpips_weights=tmp_path / "missing.npz")
    m = Metrics(use_lpips=False)  # turned off on purpose: the results say so
    img = torch.rand(2, 16, 16, 3, generator=torch.Generator().manual_seed(3))
    out = m(img, img)
    assert out["lpips"] is None and m.lpips_net.startswith("unavailable")
    assert out["psnr"] == pytest.approx(100.0) and out["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert isinstance(out["psnr"], float) and isinstance(out["ssim"], float)


@needs_weights
def test_metrics_helper_with_lpips() -> None:
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(2, 32, 32, 3, generator=g), torch.rand(2, 32, 32, 3, generator=g)
    out = Metrics()(a, b)
    assert set(out) == {"psnr", "ssim", "lpips"}
    assert all(isinstance(v, float) for v in out.values())
    assert out["lpips"] == pytest.approx(LPIPS()(a, b).mean().item(), abs=1e-6)
    assert out["psnr"] == pytest.approx(psnr(a, b).item()) and out["ssim"] == pytest.approx(ssim(a, b).item())
    single = Metrics()(a[0], b[0])  # a single [H, W, 3] image
    assert single["psnr"] == pytest.approx(psnr(a[0], b[0]).item())


def test_small_images_leave_lpips_out_instead_of_crashing():
    import os

    from faithfusion.eval.metrics import LPIPS_MIN_SIDE

    weights = default_npz_path() if HAVE_WEIGHTS else os.environ.get(lpips_mod.ENV_VAR)
    if not weights:
        pytest.skip("LPIPS weights not found")
    m = Metrics(weights)
    assert m.lpips_net == "LPIPS (SqueezeNet-1.1, v0.1)"
    small = m(torch.rand(16, 24, 3), torch.rand(16, 24, 3))  # 24x16: too small for SqueezeNet
    assert small["lpips"] is None and small["ssim"] is not None
    assert "unavailable for images under 17 px" in m.lpips_net  # said in the results, not only in a log
    big = m(torch.rand(LPIPS_MIN_SIDE, 24, 3), torch.rand(LPIPS_MIN_SIDE, 24, 3))
    assert big["lpips"] is not None
