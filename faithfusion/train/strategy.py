"""Densification strategies by name: gsplat's default and MCMC, GenFusion's sparsity-aware one, or your own.

The trainer asks `make_strategy(cfg)` for a `DensifyStrategy` (train/densify.py); `register_strategy`
makes a custom one available as `--strategy.name NAME`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from faithfusion.train.config import StrategyConfig
from faithfusion.train.densify import DensifyStrategy, GsplatDefault, GsplatMCMC
from faithfusion.train.sparsity import SparsityStrategy

__all__ = ["DensifyStrategy", "GsplatDefault", "GsplatMCMC", "SparsityStrategy", "make_strategy", "register_strategy",
           "strategy_state_to"]


_REGISTRY: dict[str, Callable[[StrategyConfig], DensifyStrategy]] = {
    "default": GsplatDefault,
    "mcmc": GsplatMCMC,
    "sparsity": SparsityStrategy,
}


def register_strategy(name: str, factory: Callable[[StrategyConfig], DensifyStrategy]) -> None:
    """Make a custom densification strategy available as `--strategy.name NAME`."""
    _REGISTRY[name] = factory


def make_strategy(cfg: StrategyConfig) -> DensifyStrategy:
    if cfg.name not in _REGISTRY:
        raise ValueError(f"unknown densification strategy {cfg.name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[cfg.name](cfg)


def strategy_state_to(state: dict, device: torch.device) -> dict:
    return {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in state.items()}
