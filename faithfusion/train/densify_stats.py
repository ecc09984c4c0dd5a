"""Densification statistics without host synchronisations.

gsplat's DefaultStrategy adds each step's screen-space gradient norms and visibility counts with
`torch.where(sel)` and boolean indexing (`_update_state`): each a device-to-host synchronisation. Here the same
sums are taken with masked dense ops over all `[C, N]` entries, so the step stays asynchronous on the GPU.
`MaskedStatsDefaultStrategy` is DefaultStrategy with that update (the unpacked layout; packed falls back to gsplat's).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def accumulate_stats(strategy: Any, params: Any, state: dict, info: dict) -> None:
    """Add one render's statistics (unpacked layout: means2d grad `[C, N, 2]`, radii `[C, N, 2]` or `[C, N]`) to
    `state` as gsplat's `DefaultStrategy._update_state(packed=False)` does: grad2d += |grad| (normalised to
    [-1, 1] screen space) and count += 1 where the Gaussian is visible (radii > 0), radii = max(radii, r / max(W, H))
    when scale2d refinement is on."""
    key = strategy.key_for_gradient
    for name in ("width", "height", "n_cameras", "radii", key):
        if name not in info:
            raise KeyError(f"densification statistics: render info lacks {name!r}")
    src = info[key].absgrad if strategy.absgrad else info[key].grad
    grads = src.clone()  # [C, N, 2]
    grads[..., 0] *= info["width"] / 2.0 * info["n_cameras"]
    grads[..., 1] *= info["height"] / 2.0 * info["n_cameras"]
    n = len(list(params.values())[0])
    if state["grad2d"] is None:
        state["grad2d"] = torch.zeros(n, device=grads.device)
    if state["count"] is None:
        state["count"] = torch.zeros(n, device=grads.device)
    scale2d = strategy.refine_scale2d_stop_iter > 0
    if scale2d and state["radii"] is None:
        state["radii"] = torch.zeros(n, device=grads.device)
    radii: Tensor = info["radii"]
    sel = (radii > 0.0).all(dim=-1) if radii.dim() == 3 else radii > 0.0  # [C, N]
    norms = torch.where(sel, grads.norm(dim=-1), torch.zeros((), dtype=grads.dtype, device=grads.device))  # [C, N]
    state["grad2d"].add_(norms.sum(dim=0))
    state["count"].add_(sel.sum(dim=0).to(state["count"].dtype))
    if scale2d:
        r = radii.max(dim=-1).values if radii.dim() == 3 else radii  # [C, N]
        r = torch.where(sel, r / float(max(info["width"], info["height"])), torch.zeros((), device=r.device))
        torch.maximum(state["radii"], r.amax(dim=0).to(state["radii"].dtype), out=state["radii"])


_CLASS: type | None = None


def masked_default_strategy_class() -> type:
    """gsplat's DefaultStrategy with `accumulate_stats` as its statistics update (built on first use: gsplat is
    imported lazily)."""
    global _CLASS
    if _CLASS is None:
        from gsplat.strategy import DefaultStrategy

        class MaskedStatsDefaultStrategy(DefaultStrategy):
            """DefaultStrategy whose per-step statistics update needs no host synchronisation."""

            def _update_state(self, params, state, info, packed=False):  # noqa: D401 - gsplat's signature
                if packed:
                    return super()._update_state(params, state, info, packed=True)
                accumulate_stats(self, params, state, info)

        _CLASS = MaskedStatsDefaultStrategy
    return _CLASS
