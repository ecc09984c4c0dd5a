"""Held-out fixer figures on a curated index: PSNR / LPIPS of degraded vs fixed vs target, with and
without the reference view (`python -m faithfusion.fixers.evaluate --index I --model DIR`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from faithfusion.eval.metrics import psnr
from faithfusion.fixers.dataset import FixerDataset


def _lpips_net(weights: str | Path | None) -> Any:
    from faithfusion.eval.lpips import LPIPS, LPIPSWeightsError

    try:
        return LPIPS(weights)
    except LPIPSWeightsError:
        return None


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
    the reference view, over the image samples of `split`, `kinds` and |shift| in `shifts`."""
    data = FixerDataset(index, split, crop=None)
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
        add("degraded", deg, tgt)
        add("fixed_noref", fixer(deg, None).float(), tgt)
        if item["has_ref"]:
            add("fixed_ref", fixer(deg, item["reference"][None].to(device)).float(), tgt)
    out: dict[str, Any] = {"split": split, "kinds": list(kinds) if kinds else None,
                           "shifts": list(shifts) if shifts else None, "samples": len(ids)}
    out.update({k: float(np.mean(v)) for k, v in rec.items()})
    return out


def main(argv: list[str] | None = None) -> None:
    from faithfusion.fixers.load import load_fixer

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--index", required=True)
    p.add_argument("--model", required=True, help="a saved fixer folder (from_pretrained layout)")
    p.add_argument("--split", default="test")
    p.add_argument("--kinds", default="lane_shift", help="comma-separated; empty = all")
    p.add_argument("--shifts", default="3", help="comma-separated |shift| in metres; empty = all")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--lpips-weights", default=None, help="LPIPS weights file (default: the usual search)")
    p.add_argument("--max-samples", type=int, default=0, help="evaluate at most this many samples (0 = all)")
    p.add_argument("--out", default="", help="write the figures as JSON here")
    a = p.parse_args(argv)
    kinds = tuple(k for k in a.kinds.split(",") if k) or None
    shifts = tuple(float(s) for s in a.shifts.split(",") if s) or None
    res = evaluate_fixer_on_index(load_fixer(a.model), a.index, a.split, kinds, shifts, a.device,
                                  lpips_weights=a.lpips_weights, max_samples=a.max_samples)
    res.update(model=a.model, index=a.index)
    print(json.dumps(res, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
