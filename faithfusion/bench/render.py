"""(b) What does the project's render cost beyond gsplat's own `rasterization`, on one view of the trained model?

Both are timed forward only (no autograd) and forward + backward (of the RGB's sum). gsplat is called with the
options the project's backend passes (packed=False, RGB+ED, full SH degree), so the difference is the wrapper
(tile lists, kept gradients, output split). Off CUDA only the project's render is timed, and the JSON says why.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from faithfusion.bench.info import gsplat_missing
from faithfusion.bench.timing import ratio, time_calls
from faithfusion.cameras import Camera
from faithfusion.gaussians.model import GaussianModel


def ours(model: GaussianModel, cam: Camera, backend: str) -> Tensor:
    from faithfusion.render import render

    return render(model, cam.viewmat[None], cam.K[None], cam.width, cam.height, backend=backend).rgb


def gsplat_direct(model: GaussianModel, cam: Camera) -> Tensor:
    from gsplat import rasterization

    p = model.params
    render, _, _ = rasterization(
        p["means"], p["quats"], torch.exp(p["scales"]), torch.sigmoid(p["opacities"]),
        torch.cat([p["sh0"], p["shN"]], 1), cam.viewmat[None], cam.K[None], cam.width, cam.height,
        sh_degree=model.sh_degree, packed=False, render_mode="RGB+ED",
    )
    return render[..., :3]


def forward_only(fn: Callable[[], Tensor]) -> Callable[[], Tensor]:
    def call() -> Tensor:
        with torch.no_grad():
            return fn()

    return call


def forward_backward(model: GaussianModel, fn: Callable[[], Tensor]) -> Callable[[], None]:
    def call() -> None:
        fn().sum().backward()
        model.zero_grad(set_to_none=True)

    return call


def bench_render(model: GaussianModel, cam: Camera, backend: str, device: torch.device, warmup: int,
                 repeats: int) -> dict:
    """Median seconds of the project's render and of gsplat's `rasterization` on `cam` (forward; forward + backward)."""
    out: dict = {"resolution": [cam.width, cam.height], "num_gaussians": len(model), "backend": backend}
    mine = lambda: ours(model, cam, backend)  # noqa: E731
    out["faithfusion_render"] = {
        "forward": time_calls(forward_only(mine), device, warmup=warmup, repeats=repeats).to_dict(),
        "forward_backward": time_calls(forward_backward(model, mine), device, warmup=warmup, repeats=repeats).to_dict(),
    }
    missing = gsplat_missing(device)
    if missing:
        out["note"] = f"gsplat not timed: {missing}"
        return out
    theirs = lambda: gsplat_direct(model, cam)  # noqa: E731
    out["gsplat_rasterization"] = {
        "forward": time_calls(forward_only(theirs), device, warmup=warmup, repeats=repeats).to_dict(),
        "forward_backward": time_calls(forward_backward(model, theirs), device, warmup=warmup, repeats=repeats).to_dict(),
    }
    for k in ("forward", "forward_backward"):
        out[f"{k}_ours_over_gsplat"] = ratio(out["faithfusion_render"][k]["median_s"], out["gsplat_rasterization"][k]["median_s"])
    return out
