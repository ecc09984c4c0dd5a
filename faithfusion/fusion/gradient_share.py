"""How much of a step's gradient the fused views carry (`--faithfusion.fused-share S`).

The photometric loss of a view is a weighted mean over its pixels (train/losses.py), so a view's loss mass is
its pool's loss weight lambda, whatever its per-pixel EIG weights. With fused views drawn with probability p:

    paired      (K fused views added on top of the captured one):  S = p K lambda / (1 + p K lambda)
    alternating (a fused view instead of the captured one):         S = p lambda / (p lambda + (1 - p))

K (`--faithfusion.share-views K`, paired pools only) is the number of fused views a step adds when it draws the
pool; K = 1 by default.

S is the fraction of the expected photometric loss mass of a step (after the first round) that comes from fused
views. FaithFusion's defaults (paired, p = 0.4, lambda = 0.1) give S = 0.038. `--faithfusion.fused-share S`
solves for lambda at the schedule's p and pairing; the lidar, sky and regularisation terms are not counted.
"""

from __future__ import annotations

import math

from faithfusion.errors import UserError


class FusedShareError(UserError, ValueError):
    pass


def check_share_views(views: int, paired: bool) -> int:
    """`--faithfusion.share-views K`: K >= 1, and K > 1 only for a paired pool (an alternating step has one view)."""
    if int(views) != views or views < 1:
        raise FusedShareError(f"--faithfusion.share-views must be an integer >= 1, got {views}")
    if views > 1 and not paired:
        raise FusedShareError(f"--faithfusion.share-views {views} needs a paired pool (--faithfusion.paired): an "
                              "alternating step trains on one view")
    return int(views)


def fused_share(probability: float, loss_weight: float, paired: bool, views: int = 1) -> float:
    """S: the fused views' fraction of a step's expected photometric loss mass (`views` K per paired draw)."""
    fused = probability * loss_weight * check_share_views(views, paired)
    captured = 1.0 if paired else 1.0 - probability
    return fused / (fused + captured) if fused + captured > 0 else 0.0


def loss_weight_for_share(share: float, probability: float, paired: bool, views: int = 1) -> float:
    """The pool loss weight lambda that gives fused share `share` at `probability`, pairing and `views` K."""
    if not (math.isfinite(share) and 0.0 <= share < 1.0):
        raise FusedShareError(f"--faithfusion.fused-share must be in [0, 1), got {share}")
    if not 0.0 < probability <= 1.0 or (not paired and probability >= 1.0):
        raise FusedShareError(f"--faithfusion.fused-share needs a probability in (0, 1) (paired: (0, 1]), got {probability}")
    captured = 1.0 if paired else 1.0 - probability
    return share * captured / ((1.0 - share) * probability * check_share_views(views, paired))


def pool_loss_weight(sched) -> float:
    """The fused pool's loss weight of a FaithFusionSchedule: from `fused_share` when given, else `loss_weight`."""
    views = check_share_views(sched.share_views, sched.paired)
    if sched.fused_share is None:
        return sched.loss_weight
    return loss_weight_for_share(sched.fused_share, sched.probability, sched.paired, views)
