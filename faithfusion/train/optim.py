"""Per-parameter Adam optimizers and the exponential learning-rate decay of the means."""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch

from faithfusion.gaussians.model import GaussianModel
from faithfusion.train.config import LearningRates


def adam(params: Iterable[Any], fused: bool | None = None, **kwargs: Any) -> torch.optim.Adam:
    """`torch.optim.Adam` over `params` (tensors or param-group dicts). fused=None: fused (one kernel for the group,
    little host work per step) when every parameter is on CUDA, the plain implementation otherwise (CPU keeps its
    exact updates); True or False: as asked."""
    groups = [dict(g, params=[g["params"]] if isinstance(g["params"], torch.Tensor) else list(g["params"]))
              if isinstance(g, dict) else g for g in params]
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    if fused is None:
        fused = bool(tensors) and all(p.is_cuda for p in tensors)
    return torch.optim.Adam(groups, fused=True, **kwargs) if fused else torch.optim.Adam(groups, **kwargs)


def build_optimizers(
    model: GaussianModel, lr: LearningRates, scene_scale: float, batch_size: int = 1, fused: bool | None = None
) -> dict[str, torch.optim.Adam]:
    """One Adam per parameter group, as gsplat's strategies expect (keyed by parameter name); `fused` as in `adam`.

    Learning rates scale with sqrt(batch size) and betas follow gsplat's batch rule."""
    rates = {
        "means": lr.means * scene_scale,
        "scales": lr.scales,
        "quats": lr.quats,
        "opacities": lr.opacities,
        "sh0": lr.sh0,
        "shN": lr.shN,
    }
    bs = max(batch_size, 1)
    betas = (1 - bs * (1 - 0.9), 1 - bs * (1 - 0.999))
    return {
        name: adam(
            [{"params": [model.params[name]], "lr": rate * math.sqrt(bs), "name": name}],
            fused=fused,
            eps=1e-15 / math.sqrt(bs),
            betas=betas,
        )
        for name, rate in rates.items()
    }


def means_lr_factor(step: int, total_steps: int, final_ratio: float) -> float:
    """Exponential decay from 1 at step 0 to `final_ratio` at `total_steps`."""
    t = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return final_ratio**t


def set_means_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor
