"""Held-out fixer figures on a curated index: PSNR / LPIPS of degraded vs fixed vs target, with and
without the reference view (`faithfusion fixer evaluate --index I --model DIR`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from faithfusion.eval.metrics import psnr
from faithfusion.fixers.dataset import FixerDataset, require_map


def _lpips_net(weights: str | Path | None) -> Any:
    """The LPIPS network; missing weights are an error (LPIPSWeightsError), never a silently absent figure."""
    from faithfusion.eval.lpips import LPIPS

    return LPIPS(weights)


def _select(data: FixerDataset, kinds: tuple[str, ...] | None, shifts: tuple[float, ...] | None) -> list[int]:
    """Indices of samples of the given kinds whose |shift| is one of `shifts` (None: any)."""
    out = []
    for i, s in enumerate(data.samples):
        if kinds is not None and s.kind not in kinds:
            continue
        if shifts is not None and (s.shift is None or not any(abs(abs(s.shift) - d) < 1e-6 for d in shifts)):
            continue
        out.append(i)
    return out


@torch.no_grad()
def evaluate_fixer_on_index(fixer: Any, index: str | Path, split: str = "test", kinds: tuple[str, ...] | None = ("lane_shift",),
                            shifts: tuple[float, ...] | None = (3.0,), device: str | torch.device = "cpu",
                            lpips_weights: str | Path | None = None, max_samples: int = 0) -> dict[str, Any]:
    """Mean PSNR / LPIPS (vs target) of the degraded renders and of the fixer's output with and without
    the reference view, over the image samples of `split`, `kinds` and |shift| in `shifts`. A Difix conditioned on
    EIG gets each sample's calibrated EIG map (the index must carry them)."""
    data = FixerDataset(index, split, crop=None)
    conditioned = bool(getattr(fixer, "eig_conditioned", False))
    if conditioned:
        require_map(data, "eig", "a Difix conditioned on EIG")
    ids = _select(data, kinds, shifts)
    if max_samples > 0:
        ids = ids[:max_samples]
    net = _lpips_net(lpips_weights)
    if net is not None:
        net = net.to(device)
    fixer = fixer.to(device).eval()
    rec: dict[str, list[float]] = {}

    def add(name: str, x: torch.Tensor, tgt: torch.Tensor) -> None:  # x, tgt [1, H, W, 3]
        rec.setdefault(f"{name}_psnr", []).append(float(psnr(x.clamp(0, 1), tgt)))
        if net is not None:
            rec.setdefault(f"{name}_lpips", []).append(float(net(x.clamp(0, 1), tgt).mean()))

    for i in ids:
        item = data[i]
        deg, tgt = item["degraded"][None].to(device), item["target"][None].to(device)  # [1, H, W, 3]
        eig = {"eig": item["eig"][None].to(device)} if conditioned else {}  # [1, H, W]
        add("degraded", deg, tgt)
        add("fixed_noref", fixer(deg, None, **eig).float(), tgt)
        if item["has_ref"]:
            add("fixed_ref", fixer(deg, item["reference"][None].to(device), **eig).float(), tgt)
    out: dict[str, Any] = {"split": split, "kinds": list(kinds) if kinds else None,
                           "shifts": list(shifts) if shifts else None, "samples": len(ids), "lpips_net": net.name}
    out.update({k: float(np.mean(v)) for k, v in rec.items()})
    return out
