"""GenFusion's sparsity-aware densification (strategy "sparsity" in train/strategy.py).

gsplat's DefaultStrategy (ADC: clone small, split large Gaussians with a high mean screen-space
gradient; prune transparent ones) with two changes from GenFusion:

- no global opacity reset;
- a Gaussian may grow only once it has been seen (rendered with radius > 0: gsplat's `state["count"]`)
  at least min(cap, base + it // per) times since the last refinement, published min(100, 50 + it // 100),
  so that regions seen by one or two views are not densified on their noisy gradients.
"""

from __future__ import annotations

from typing import Any

import torch

from faithfusion.train.config import StrategyConfig
from faithfusion.train.densify import GsplatDefault


class SparsityStrategy(GsplatDefault):
    """DefaultStrategy growth masked by the visibility count; no opacity reset."""

    def __init__(self, cfg: StrategyConfig, seen_base: int = 50, seen_cap: int = 100, seen_per: int = 100) -> None:
        super().__init__(cfg)
        self.seen_base, self.seen_cap, self.seen_per = seen_base, seen_cap, seen_per
        self.last_refine: dict = {}

    def min_seen(self, step: int) -> int:
        return min(self.seen_cap, self.seen_base + step // max(self.seen_per, 1))

    def grow_candidates(self, params: Any, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Boolean masks `[N]` (duplicate, split) of DefaultStrategy's rule restricted to well-seen Gaussians."""
        inner, state = self.inner, self.state
        count = state["count"]
        grads = state["grad2d"] / count.clamp_min(1)
        seen = count >= self.min_seen(step)
        high = (grads > inner.grow_grad2d) & seen
        small = torch.exp(params["scales"]).max(dim=-1).values <= inner.grow_scale3d * state["scene_scale"]
        split = high & ~small
        if step < inner.refine_scale2d_stop_iter:
            split |= (state["radii"] > inner.grow_scale2d) & seen
        return high & small, split

    @torch.no_grad()
    def refine(self, params: Any, optimizers: dict, step: int) -> dict:
        """Grow (masked), prune, reset the running statistics; returns the counts."""
        from gsplat.strategy.ops import duplicate, split

        is_dupli, is_split = self.grow_candidates(params, step)
        n_dupli, n_split = int(is_dupli.sum()), int(is_split.sum())
        if n_dupli > 0:
            duplicate(params=params, optimizers=optimizers, state=self.state, mask=is_dupli)
        is_split = torch.cat([is_split, torch.zeros(n_dupli, dtype=torch.bool, device=is_split.device)])
        if n_split > 0:
            split(params=params, optimizers=optimizers, state=self.state, mask=is_split, revised_opacity=self.inner.revised_opacity)
        n_prune = self.inner._prune_gs(params, optimizers, self.state, step)
        self.state["grad2d"].zero_()
        self.state["count"].zero_()
        if self.inner.refine_scale2d_stop_iter > 0 and self.state.get("radii") is not None:
            self.state["radii"].zero_()
        self.last_refine = {"step": step, "duplicated": n_dupli, "split": n_split, "pruned": n_prune,
                            "min_seen": self.min_seen(step)}
        return self.last_refine

    def post_backward(self, params: Any, optimizers: dict, step: int, info: dict, means_lr: float) -> None:
        inner = self.inner
        if step >= inner.refine_stop_iter:
            return
        inner._update_state(params, self.state, info, packed=False)
        if step > inner.refine_start_iter and step % inner.refine_every == 0:
            if params["means"].shape[0] >= self.cfg.max_gaussians:
                self.state["grad2d"].zero_()
                self.state["count"].zero_()
                return
            self.refine(params, optimizers, step)
        # no opacity reset: GenFusion drops it

