"""The densification slot: the `DensifyStrategy` protocol and adapters over gsplat's strategies.

The adapters wrap gsplat's DefaultStrategy and MCMCStrategy so that their different call signatures
and running state look the same to the trainer; train/strategy.py chooses one by name.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from faithfusion.train.config import StrategyConfig

LINEAGE = "lineage"
"""Key of the lineage index in a strategy's running state (`mark_lineage`)."""


class DensifyStrategy(Protocol):
    """What the trainer calls around each backward pass."""

    def initialize(self, params: Any, optimizers: dict, scene_scale: float) -> None: ...

    def pre_backward(self, params: Any, optimizers: dict, step: int, info: dict) -> None: ...

    def post_backward(self, params: Any, optimizers: dict, step: int, info: dict, means_lr: float) -> None: ...

    def after_optimizer_step(self, params: Any, optimizers: dict, step: int, means_lr: float) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def mark_lineage(strategy: DensifyStrategy, n: int, device: torch.device | str) -> bool:
    """Start following where the `n` Gaussians of now go: Gaussian i is its own ancestor i. Returns False
    (nothing marked) for a strategy whose densification does not carry it (`carries_lineage`)."""
    if not getattr(strategy, "carries_lineage", False):
        return False
    strategy.state[LINEAGE] = torch.arange(n, device=device)
    return True


def lineage_since_mark(strategy: DensifyStrategy, n: int) -> Tensor | None:
    """`[n]` for each of today's `n` Gaussians, the index (at the last `mark_lineage`) of the Gaussian it
    descends from; None when unknown (never marked, or a strategy that does not carry it)."""
    if not getattr(strategy, "carries_lineage", False):
        return None
    idx = strategy.state.get(LINEAGE)
    return idx if isinstance(idx, Tensor) and idx.shape[0] == n else None


class GsplatDefault:
    """gsplat's DefaultStrategy (ADC: clone, split, prune), with its opacity reset applied.

    gsplat 1.5.3 writes the reset test as `step % reset_every == 0 & step > 0`, which Python reads
    as a chained comparison that is never true, so opacities are never reset there. This adapter
    performs the reset itself every `reset_every` steps while refinement is on.

    It carries the lineage (`mark_lineage`): gsplat's clone, split and prune ops (`gsplat.strategy.ops`
    duplicate, split, remove) apply to every per-Gaussian tensor of the running state what they apply to the
    parameters (a clone copies its parent's row, both halves of a split copy it, a prune drops it), so an
    index kept there names each Gaussian's ancestor."""

    carries_lineage = True

    def __init__(self, cfg: StrategyConfig) -> None:
        from faithfusion.train.densify_stats import masked_default_strategy_class

        self.cfg = cfg
        self.inner = masked_default_strategy_class()(
            prune_opa=cfg.prune_opa,
            grow_grad2d=cfg.grow_grad2d,
            refine_start_iter=cfg.refine_start,
            refine_stop_iter=cfg.refine_stop,
            refine_every=cfg.refine_every,
            reset_every=cfg.reset_every,
            absgrad=cfg.absgrad,
        )
        self.state: dict = {}

    def initialize(self, params: Any, optimizers: dict, scene_scale: float) -> None:
        self.inner.check_sanity(params, optimizers)
        self.state = self.inner.initialize_state(scene_scale=scene_scale)

    def pre_backward(self, params: Any, optimizers: dict, step: int, info: dict) -> None:
        self.inner.step_pre_backward(params, optimizers, self.state, step, info)

    def post_backward(self, params: Any, optimizers: dict, step: int, info: dict, means_lr: float) -> None:
        from gsplat.strategy.ops import reset_opa

        n_before = params["means"].shape[0]
        if n_before >= self.cfg.max_gaussians and step % self.inner.refine_every == 0:
            # at the cap: keep statistics but do not grow this round
            self.inner._update_state(params, self.state, info, packed=False)
            self.state["grad2d"].zero_()
            self.state["count"].zero_()
            return
        self.inner.step_post_backward(params, optimizers, self.state, step, info, packed=False)
        if 0 < step < self.cfg.refine_stop and self.cfg.reset_every > 0 and step % self.cfg.reset_every == 0:
            reset_opa(params=params, optimizers=optimizers, state=self.state, value=self.cfg.prune_opa * 2.0)

    def after_optimizer_step(self, params: Any, optimizers: dict, step: int, means_lr: float) -> None:
        return None

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = dict(state)


class GsplatMCMC:
    """gsplat's MCMCStrategy (relocation of dead Gaussians, growth to cap_max, position noise).

    Its relocation and noise use gsplat CUDA kernels, so it runs on the GPU only. It does not carry the
    lineage (relocation overwrites dead Gaussians in place)."""

    carries_lineage = False

    def __init__(self, cfg: StrategyConfig) -> None:
        from gsplat.strategy import MCMCStrategy

        self.cfg = cfg
        self.inner = MCMCStrategy(
            cap_max=cfg.cap_max,
            refine_start_iter=cfg.refine_start,
            refine_stop_iter=cfg.refine_stop,
            refine_every=cfg.refine_every,
            min_opacity=cfg.prune_opa,
        )
        self.state: dict = {}

    def initialize(self, params: Any, optimizers: dict, scene_scale: float) -> None:
        if params["means"].device.type != "cuda":
            raise RuntimeError("the mcmc strategy needs CUDA (gsplat's relocation kernel); use --strategy.name default on CPU")
        self.inner.check_sanity(params, optimizers)
        self.state = self.inner.initialize_state()

    def pre_backward(self, params: Any, optimizers: dict, step: int, info: dict) -> None:
        return None

    def post_backward(self, params: Any, optimizers: dict, step: int, info: dict, means_lr: float) -> None:
        self.inner.step_post_backward(params, optimizers, self.state, step, info, lr=means_lr)

    def after_optimizer_step(self, params: Any, optimizers: dict, step: int, means_lr: float) -> None:
        from gsplat.strategy.ops import inject_noise_to_position

        with torch.no_grad():
            inject_noise_to_position(params=params, optimizers=optimizers, state={}, scaler=means_lr * self.inner.noise_lr)

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = dict(state)
