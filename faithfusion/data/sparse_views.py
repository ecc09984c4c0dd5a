"""Which frames a sparse-view run trains on and which it is scored on (GenFusion's sparse-view protocol).

The evaluated frames are fixed first, so that every number of training views is scored on the same set:
`holdout` = every k-th frame (0, k, 2k, ...; GenFusion's code and ReconFusion's splits use k = 8), `rest` = every
frame not trained on. The N training frames are spread evenly over the frames left after the held-out ones
(index round(linspace(0, M - 1, N)) of those M frames, in capture order), so they span the whole capture.
docs/sparse_views.md gives the sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from faithfusion.errors import UserError

EvalViews = Literal["holdout", "rest"]


class SparseViewsError(UserError, ValueError):
    """A number of training views that the scene cannot give."""


@dataclass(frozen=True)
class SparseSplit:
    """Frame indices (into the scene's frames, capture order) of one sparse-view setting."""

    views: int
    train_ids: list[int]
    test_ids: list[int]

    def to_dict(self) -> dict:
        return {"views": self.views, "train_ids": list(self.train_ids), "test_ids": list(self.test_ids)}


def check_view_counts(views: tuple[int, ...] | list[int], source: str = "--views") -> list[int]:
    """The view counts, refused when empty, repeated or below 2 (the fixers' novel path joins neighbouring views)."""
    counts = [int(v) for v in views]
    if not counts:
        raise SparseViewsError(f"{source}: name at least one number of training views (e.g. --views 3 6 9)")
    if len(set(counts)) != len(counts):
        raise SparseViewsError(f"{source}: a number of views is repeated in {counts}")
    low = [v for v in counts if v < 2]
    if low:
        raise SparseViewsError(f"{source}: {low[0]} training views; the protocol needs at least 2 (the fixers' novel "
                               "views lie between neighbouring training views)")
    return counts


def sparse_split(n_frames: int, views: int, eval_views: EvalViews = "holdout", holdout_every: int = 8,
                 source: str = "scene") -> SparseSplit:
    """The training and evaluated frames of `views` training views out of `n_frames` (see the module doc)."""
    if views < 2:
        raise SparseViewsError(f"{source}: {views} training views; the protocol needs at least 2")
    if n_frames < views + 1:
        raise SparseViewsError(f"{source}: {n_frames} frames cannot give {views} training views and at least one "
                               f"evaluated view (needs {views + 1} frames or more)")
    if eval_views == "holdout":
        if holdout_every < 2:
            raise SparseViewsError(f"{source}: --holdout-every {holdout_every}: hold out every k-th frame with k >= 2, "
                                   "or evaluate on every other frame with --eval-views rest")
        test = list(range(0, n_frames, holdout_every))
        pool = [i for i in range(n_frames) if i % holdout_every]
    elif eval_views == "rest":
        test, pool = [], list(range(n_frames))
    else:
        raise SparseViewsError(f"{source}: --eval-views {eval_views!r}: expected holdout or rest")
    if len(pool) < views:
        raise SparseViewsError(f"{source}: {n_frames} frames leave {len(pool)} after holding out every {holdout_every}-th, "
                               f"fewer than {views} training views; lower --views or raise --holdout-every")
    picks = np.round(np.linspace(0, len(pool) - 1, views)).astype(int)
    train = [pool[k] for k in picks]
    if eval_views == "rest":
        chosen = set(train)
        test = [i for i in range(n_frames) if i not in chosen]
    return SparseSplit(views, train, test)
