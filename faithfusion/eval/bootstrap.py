"""Confidence intervals over scenes and their views: the hierarchical (two-stage) bootstrap.

Views of one scene are not independent (same reconstruction, same street), so a per-view bootstrap
understates the spread. Each resample draws the scenes with replacement, then, inside every drawn scene,
its views with replacement; the statistic (default: the mean over the drawn scenes of each scene's mean
over its drawn views, NaNs skipped, so every scene weighs the same) is recomputed on the resample, and the
interval is the percentile interval of the resamples. A paired difference between two maps is the
bootstrap of the per-view differences (both maps measured on the same views).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

Statistic = Callable[[list[np.ndarray]], np.ndarray]
"""Resampled data (one array `[V', K]` per drawn scene) -> the statistic `[K]`."""


@dataclass
class Interval:
    """The statistic on the data and its percentile interval (floats, or arrays `[K]` for `[V, K]` input)."""

    mean: np.ndarray | float
    lo: np.ndarray | float
    hi: np.ndarray | float
    n_scenes: int
    n_views: int


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean over `axis` skipping NaNs (NaN where all are NaN, without a warning)."""
    ok = np.isfinite(x)
    n = ok.sum(axis)
    s = np.where(ok, x, 0.0).sum(axis)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def mean_of_scene_means(scenes: list[np.ndarray]) -> np.ndarray:
    """Mean over scenes of each scene's mean over its views (NaNs skipped at both levels) `[K]`."""
    return _nanmean(np.stack([_nanmean(v, 0) for v in scenes]), 0)


def hierarchical_bootstrap(
    values_by_scene_view: Sequence[Sequence[float] | np.ndarray],
    statistic: Statistic | None = None,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """`values_by_scene_view[s]` holds scene s's per-view values, `[V_s]` or `[V_s, K]` (K measures bootstrapped
    with the same draws). Returns the statistic on the data and the central `level` percentile interval over
    `n` resamples drawn from `np.random.default_rng(seed)`."""
    scenes = [np.asarray(v, np.float64) for v in values_by_scene_view]
    scalar = all(v.ndim == 1 for v in scenes)
    scenes = [v[:, None] if v.ndim == 1 else v for v in scenes]
    scenes = [v for v in scenes if v.shape[0] > 0]
    if not scenes:
        raise ValueError("hierarchical_bootstrap: no scene has a view")
    K = scenes[0].shape[1]
    if any(v.shape[1] != K for v in scenes):
        raise ValueError("hierarchical_bootstrap: every scene needs the same number of measures per view")
    stat = statistic or mean_of_scene_means
    rng = np.random.default_rng(seed)
    S = len(scenes)
    counts = np.array([v.shape[0] for v in scenes])
    point = np.asarray(stat(scenes), np.float64).reshape(K)
    draws = np.empty((n, K))
    if statistic is None:  # the default statistic, vectorised over a padded [S, V_max, K] array
        vmax = int(counts.max())
        padded = np.full((S, vmax, K), np.nan)
        for s, v in enumerate(scenes):
            padded[s, : v.shape[0]] = v
        for b in range(n):
            sidx = rng.integers(0, S, size=S)  # [S] drawn scenes
            vidx = (rng.random((S, vmax)) * counts[sidx, None]).astype(int)  # [S, V_max], < the scene's count
            live = np.arange(vmax)[None, :] < counts[sidx, None]  # the first V_s draws of each scene count
            x = np.where(live[..., None], padded[sidx[:, None], vidx], np.nan)  # [S, V_max, K]
            draws[b] = _nanmean(_nanmean(x, 1), 0)
    else:
        for b in range(n):
            sidx = rng.integers(0, S, size=S)
            draws[b] = np.asarray(stat([scenes[s][rng.integers(0, counts[s], size=counts[s])] for s in sidx]),
                                  np.float64).reshape(K)
    a = (1.0 - level) / 2.0
    with np.errstate(all="ignore"):
        ok = np.isfinite(draws).any(0)
        lo = np.full(K, np.nan)
        hi = np.full(K, np.nan)
        if ok.any():
            lo[ok], hi[ok] = np.nanquantile(draws[:, ok], [a, 1.0 - a], axis=0)
    if scalar:
        return Interval(float(point[0]), float(lo[0]), float(hi[0]), S, int(counts.sum()))
    return Interval(point, lo, hi, S, int(counts.sum()))
