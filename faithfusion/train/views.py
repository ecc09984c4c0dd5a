"""Pools of training views: the captured images, and pseudo-views added by the fusion loops.

A pool holds views (camera, target image, optional per-pixel weight, mask and depth) with a
sampling probability and a loss weight. Each step the trainer draws one of the captured views or of an
alternating pool (`paired=False`: the pool takes that share of the steps from the captured views, as
Difix3D's 0.7 real / 0.3 novel), and then, for every paired pool (`paired=True`), with the pool's
probability one of its views whose loss is added to the same step (a regulariser on top of the
reconstruction loss, as GenFusion's L_rec + lambda L_reg: the captured views keep every step). A paired pool
with `draws` K > 1 adds K of its views (K losses, each with the pool's loss weight) when it is drawn."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, TypeVar

import torch
from torch import Tensor

from faithfusion.cameras import Camera

T = TypeVar("T")

DATA_FIELDS = ("camera", "image", "weight", "mask", "depth", "sky_mask", "lidar")
"""The fields whose reassignment invalidates a view's derived tensors (`View.derived`)."""


@dataclass
class View:
    camera: Camera
    image: Tensor  # [H, W, 3] uint8 or float in [0, 1]
    weight: Tensor | None = None  # [H, W] per-pixel loss weight (EIG-derived), None = uniform
    mask: Tensor | None = None  # [H, W] bool: pixels that count
    depth: Tensor | None = None  # [H, W] target depth (RGB-D fixers), scene units
    sky_mask: Tensor | None = None  # [H, W] bool
    lidar: Tensor | None = None  # [M, 3] scene-coordinate lidar points
    index: int = -1  # frame index in the scene for real views
    _derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    """name -> (stamp of the data it was built from, value): the loss targets the trainer derives from this view."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in DATA_FIELDS and "_derived" in self.__dict__:
            self.__dict__["_derived"].clear()
        object.__setattr__(self, name, value)

    def _stamp(self) -> tuple:
        """Identity and in-place version of every data tensor: changes when one is replaced or edited in place."""
        tensors = (self.camera.K, self.camera.viewmat, self.image, self.weight, self.mask, self.depth, self.sky_mask,
                   self.lidar)
        return tuple((id(t), t._version) if t is not None else None for t in tensors) + (
            self.camera.width, self.camera.height)

    def derived(self, name: str, build: Callable[[], T]) -> T:
        """`build()` computed once and kept until the view's data change (a field reassigned or a tensor edited
        in place), so that the training step does not rebuild (or copy to the device) its targets every time."""
        stamp = self._stamp()
        hit = self._derived.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = build()
        self._derived[name] = (stamp, value)
        return value

    def image_float(self, device: torch.device) -> Tensor:  # [H, W, 3]
        img = self.image.to(device)
        return img.float() / 255.0 if img.dtype == torch.uint8 else img.float()


@dataclass
class ViewPool:
    name: str
    views: list[View]
    probability: float = 0.0  # chance that a step draws from this pool (real pool takes the rest)
    loss_weight: float = 1.0
    paired: bool = False  # True: drawn on top of the step's view (an added loss term), not instead of it
    draws: int = 1  # paired pools: views added to a step that draws this pool (each its own loss term)
    grad_guard: Callable[[object], ContextManager] | None = field(default=None, repr=False)
    """trainer -> a context around the backward pass of this pool's view loss, which may edit the gradients it
    adds (fusion/anti_drift.py: no position or rotation gradient from fused views); None = plain backward."""
    _order: list[int] = field(default_factory=list, repr=False)

    def guarded_backward(self, trainer) -> ContextManager:
        """The context in which the trainer back-propagates a loss of this pool's view."""
        return nullcontext() if self.grad_guard is None else self.grad_guard(trainer)

    def sample(self, generator: torch.Generator) -> View:
        """Shuffled pass over the views, reshuffled when exhausted."""
        if not self.views:
            raise ValueError(f"view pool {self.name!r} is empty")
        if not self._order:
            self._order = torch.randperm(len(self.views), generator=generator).tolist()
        return self.views[self._order.pop()]


def choose_pool(real: ViewPool, extra: list[ViewPool], generator: torch.Generator) -> ViewPool:
    """Draw the step's pool: each alternating extra pool with its probability, the real pool with what is left."""
    u = float(torch.rand((), generator=generator))
    acc = 0.0
    for pool in extra:
        if not pool.views or pool.paired:
            continue
        acc += pool.probability
        if u < acc:
            return pool
    return real


def choose_paired(extra: list[ViewPool], generator: torch.Generator) -> list[ViewPool]:
    """The paired pools that add a view to this step: each non-empty one with its own probability."""
    chosen = []
    for pool in extra:
        if pool.paired and pool.views and float(torch.rand((), generator=generator)) < pool.probability:
            chosen.append(pool)
    return chosen
