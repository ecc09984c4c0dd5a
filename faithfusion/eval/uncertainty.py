"""How well does a per-pixel uncertainty map rank where a render is wrong? Ranking measures over pixel samples.

All functions take flat arrays of one view's (or any set of) pixels; a higher uncertainty means "more likely
wrong". Ties are handled exactly, never by the order of the samples:

    auroc(u, label)            P(u_pos > u_neg) + 1/2 P(u_pos = u_neg) (Mann-Whitney U / (n_pos n_neg))
    average_precision(u, lab)  sum over distinct thresholds t (descending) of (R_t - R_prev) P_t, where
                               P_t, R_t are the precision and recall of "u >= t" (sklearn's definition)
    spearman(x, y)             Pearson correlation of the average ranks
    partial_spearman(x, y, z)  rank partial correlation of x and y controlling for z:
                               (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)), r = Spearman
    ause(u, err)               area under the sparsification error curve: remove the k most uncertain pixels
                               (k = 0 .. n-1), take the mean error of the rest; the same with the oracle
                               order (by the error itself); AUSE = mean over k of the difference, in the
                               error's units (0 = the oracle's order, larger = worse). Within a tie of u the
                               expected curve over random tie orders is used (the tie's errors averaged).
    retained_mse(u, se, fr)    mean squared error of the fraction `fr` of pixels with the lowest u (FaithFusion's
                               retained-pixel curve, per view; PSNR = -10 log10 of it)

Undefined cases (one class empty, a constant input) give NaN, which the aggregation skips.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata


def _flat(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def auroc(u, label) -> float:
    """Area under the ROC curve of `u` for the boolean `label` (NaN when a class is empty)."""
    u, y = _flat(u), np.asarray(label, bool).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(u)  # average ranks: ties count 1/2
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(u, label) -> float:
    """Average precision of `u` for the boolean `label` (NaN without positives)."""
    u, y = _flat(u), np.asarray(label, bool).reshape(-1)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-u, kind="stable")
    us, ys = u[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(us) != 0), us.size - 1]  # the last index of each distinct threshold
    tp = np.cumsum(ys)[last]
    precision = tp / (last + 1.0)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def spearman(x, y) -> float:
    """Spearman's rank correlation (NaN when either input is constant or has fewer than 3 values)."""
    x, y = _flat(x), _flat(y)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def partial_spearman(x, y, z) -> float:
    """Rank partial correlation of `x` and `y` with `z` held fixed (NaN when undefined, e.g. x = z)."""
    r_xy, r_xz, r_yz = spearman(x, y), spearman(x, z), spearman(y, z)
    den = (1.0 - r_xz * r_xz) * (1.0 - r_yz * r_yz)
    if not np.isfinite(den) or den <= 1e-12:
        return float("nan")
    return float((r_xy - r_xz * r_yz) / np.sqrt(den))


def _tie_means(key_sorted: np.ndarray, values_sorted: np.ndarray) -> np.ndarray:
    """Each value replaced by the mean over its run of equal keys (keys sorted)."""
    starts = np.r_[0, np.flatnonzero(np.diff(key_sorted) != 0) + 1]
    sums = np.add.reduceat(values_sorted, starts)
    counts = np.diff(np.r_[starts, key_sorted.size])
    return np.repeat(sums / counts, counts)


def sparsification_curve(u, err) -> np.ndarray:
    """Mean error of the pixels left after removing the k most uncertain ones, k = 0 .. n-1 `[n]`."""
    u, e = _flat(u), _flat(err)
    order = np.argsort(u, kind="stable")  # least uncertain first
    e_sorted = _tie_means(u[order], e[order])
    kept = np.arange(e.size, 0, -1)  # n, n-1, ..., 1 pixels kept
    return np.cumsum(e_sorted)[kept - 1] / kept


def ause(u, err) -> float:
    """Area under the sparsification error curve of `u` against the oracle order by `err` (NaN if empty)."""
    e = _flat(err)
    if e.size == 0:
        return float("nan")
    return float(np.mean(sparsification_curve(u, e) - sparsification_curve(e, e)))


def retained_mse(u, se, fractions: Sequence[float]) -> np.ndarray:
    """Mean of `se` over the fraction f of pixels with the lowest `u`, for each f `[len(fractions)]`
    (ties in u averaged as in `sparsification_curve`)."""
    u, s = _flat(u), _flat(se)
    order = np.argsort(u, kind="stable")
    cum = np.cumsum(_tie_means(u[order], s[order]))
    k = np.clip(np.round(np.asarray(fractions, np.float64) * s.size).astype(int), 1, s.size)
    return cum[k - 1] / k


def is_falling(values: Sequence[float], tol: float = 0.0) -> bool:
    """Does the sequence never rise by more than `tol` from one point to the next (NaNs skipped)?"""
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    return bool(np.all(np.diff(v) <= tol)) if v.size > 1 else True
