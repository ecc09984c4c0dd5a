"""Fisher / EIG on CUDA (`-m gpu`): the same torch code on the GPU against the CPU, and the composited
acquisition against gsplat's own rasterizer with `colors_override`."""

from __future__ import annotations

import pytest
import torch

from faithfusion.eig.fisher import PARAM_GROUPS, fisher_diagonal, prepare_view, view_fisher
from faithfusion.eig.maps import composite_scalar, eig_map
from faithfusion.eig.toy import toy_scene
from faithfusion.gaussians.model import GaussianModel
from faithfusion.render import render

pytestmark = pytest.mark.gpu

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).norm() / b.double().cpu().norm())


def on(model: GaussianModel, device: str) -> GaussianModel:
    return GaussianModel({k: v.detach().to(device) for k, v in model.params.items()}, model.sh_degree)


@needs_cuda
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_cuda_fisher_equals_cpu(dtype, tol):
    model, cams = toy_scene(dtype=dtype)
    cpu = fisher_diagonal(model, cams)
    gpu = fisher_diagonal(on(model, "cuda"), [c.to("cuda") for c in cams])
    for g in PARAM_GROUPS:
        assert gpu[g].is_cuda
        assert rel(gpu[g], cpu[g]) < tol, (g, rel(gpu[g], cpu[g]))


@needs_cuda
def test_cuda_eig_map_equals_cpu():
    model, cams = toy_scene(dtype=torch.float32)
    H = view_fisher(model, cams[0])
    a = eig_map(model, cams[1], H)
    b = eig_map(on(model, "cuda"), cams[1].to("cuda"), {k: v.cuda() for k, v in H.items()})
    assert rel(b.eig, a.eig) < 1e-4


@needs_cuda
def test_composited_acquisition_matches_gsplat_colors_override():
    pytest.importorskip("gsplat")
    from faithfusion.cameras import Camera

    model = on(GaussianModel.random(3000, extent=1.0, sh_degree=3, seed=0), "cuda")
    W, H = 200, 150
    K = torch.tensor([[0.8 * W, 0, W / 2], [0, 0.8 * W, H / 2], [0, 0, 1.0]], device="cuda")
    vm = torch.eye(4, device="cuda")
    vm[2, 3] = 2.5
    cam = Camera(K=K, viewmat=vm, width=W, height=H)
    values = torch.rand(len(model), device="cuda")
    sums = composite_scalar(prepare_view(model, cam), values)
    out = render(model, vm[None], K[None], W, H, backend="gsplat", colors_override=values[:, None])
    assert rel(sums.wI, out.rgb[0, ..., 0]) < 1e-3
    assert rel(sums.alpha, out.alpha[0, ..., 0]) < 1e-3


@needs_cuda
def test_cuda_compiled_pair_loop_equals_eager():
    model, cams = toy_scene(dtype=torch.float32)
    m, cam = on(model, "cuda"), cams[1].to("cuda")
    eager = view_fisher(m, cam)
    fused = view_fisher(m, cam, compiled=True)
    for g in PARAM_GROUPS:
        assert rel(fused[g], eager[g]) < 1e-4, g
