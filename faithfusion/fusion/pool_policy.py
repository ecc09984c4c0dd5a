"""How a round's fused views enter the pool (`--faithfusion.pool`): grown, or replaced as published.

`grow` (the default): each round's views join those of earlier rounds, so the pool holds every shift so far.
`replace`: each round's views replace the pool, so the pool holds only the current shift (the published
recipe); the views it drops also leave H_train's list of views (FisherAccumulator.views), so the next
round's recompute of H_train covers the captured views and the views that are still trained on.
"""

from __future__ import annotations

from faithfusion.errors import UserError
from faithfusion.train.views import View, ViewPool

POOL_MODES = ("grow", "replace")
FUSED_PREFIX = "fused_"
"""The name prefix of fused views in H_train's list (FaithFusionMethod adds them as `fused_{shift}`)."""


class UnknownPoolModeError(UserError, ValueError):
    pass


def insert_round_views(pool: ViewPool, views: list[View], mode: str, acc=None) -> None:
    """Put a round's `views` into `pool` (the last len(views) entries of `acc.views` are theirs, when given)."""
    if mode not in POOL_MODES:
        raise UnknownPoolModeError(f"--faithfusion.pool {mode!r}: expected one of {', '.join(POOL_MODES)}")
    if mode == "grow":
        pool.views.extend(views)
    else:
        pool.views[:] = views
        if acc is not None:
            drop_earlier_fused(acc, len(views))
    pool._order = []


def drop_earlier_fused(acc, n_new: int) -> None:
    """Remove from H_train's views the fused views of earlier rounds (all but the `n_new` added last).

    The sum `acc.H` is left as it is: FaithFusion recomputes it over `acc.views` at the start of every round."""
    cut = len(acc.views) - n_new
    acc.views = [v for v in acc.views[:cut] if not v.name.startswith(FUSED_PREFIX)] + acc.views[cut:]
