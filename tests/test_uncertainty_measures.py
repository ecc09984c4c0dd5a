"""The ranking measures of an uncertainty map (eval/uncertainty.py) and the hierarchical bootstrap (eval/bootstrap.py)
on small inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, spearmanr

from faithfusion.eval.bootstrap import hierarchical_bootstrap
from faithfusion.eval.uncertainty import (ause, auroc, average_precision, is_falling, partial_spearman, retained_mse,
                                          sparsification_curve, spearman)


def test_auroc_and_average_precision_of_hand_computed_cases():
    u, y = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    # pairs (pos, neg): (0.35 > 0.1), (0.35 < 0.4), (0.8 > 0.1), (0.8 > 0.4) -> 3/4
    assert auroc(u, y) == pytest.approx(0.75)
    # descending: 0.8 (pos: P 1, R 1/2), 0.4 (neg), 0.35 (pos: P 2/3, R 1) -> 1/2 * 1 + 1/2 * 2/3
    assert average_precision(u, y) == pytest.approx(0.5 + 1 / 3)
    # ties: a tied positive-negative pair counts 1/2; a tied threshold admits both at once
    assert auroc([1.0, 1.0], [1, 0]) == pytest.approx(0.5)
    assert average_precision([1.0, 1.0, 0.0], [1, 0, 0]) == pytest.approx(0.5)
    assert average_precision([3.0, 2.0, 1.0], [1, 1, 0]) == pytest.approx(1.0)
    assert np.isnan(auroc([1.0, 2.0], [1, 1])) and np.isnan(average_precision([1.0, 2.0], [0, 0]))


def test_auroc_is_mann_whitney_u_with_ties():
    rng = np.random.default_rng(0)
    u = rng.integers(0, 5, 300).astype(float)  # many ties
    y = rng.random(300) < 0.3 + 0.1 * u
    U = mannwhitneyu(u[y], u[~y]).statistic
    assert auroc(u, y) == pytest.approx(U / (y.sum() * (~y).sum()), abs=1e-12)
    assert auroc(-u, y) == pytest.approx(1.0 - auroc(u, y), abs=1e-12)


def test_spearman_and_partial_spearman():
    rng = np.random.default_rng(1)
    z = rng.normal(size=400)
    x = z + 0.5 * rng.normal(size=400)
    y = z + 0.5 * rng.normal(size=400)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y)[0], abs=1e-12)
    # the rank partial correlation is the correlation of the rank residuals after regressing on rank(z)
    from scipy.stats import rankdata

    rx, ry, rz = rankdata(x), rankdata(y), rankdata(z)
    A = np.c_[np.ones_like(rz), rz]
    res = [r - A @ np.linalg.lstsq(A, r, rcond=None)[0] for r in (rx, ry)]
    assert partial_spearman(x, y, z) == pytest.approx(np.corrcoef(*res)[0, 1], abs=1e-10)
    # x and y share only z: strongly correlated, but not once z is held fixed
    assert spearman(x, y) > 0.6 and abs(partial_spearman(x, y, z)) < 0.15
    assert np.isnan(partial_spearman(z, y, z)) and np.isnan(spearman(np.ones(5), y[:5]))


def test_ause_of_hand_computed_cases():
    err = [0.0, 1.0, 2.0]
    assert ause(err, err) == 0.0  # the oracle order
    # reverse order: remove err 0, then 1 -> curve 1, 1.5, 2 against the oracle's 1, 0.5, 0
    np.testing.assert_allclose(sparsification_curve([2.0, 1.0, 0.0], err), [1.0, 1.5, 2.0])
    assert ause([2.0, 1.0, 0.0], err) == pytest.approx(1.0)
    # a constant uncertainty: every removal order equally likely, the expected curve stays at the mean
    np.testing.assert_allclose(sparsification_curve([5.0, 5.0, 5.0], err), [1.0, 1.0, 1.0])
    assert ause([5.0, 5.0, 5.0], err) == pytest.approx(0.5)
    # the answer does not depend on the order of the samples
    perm = [2, 0, 1]
    assert ause(np.array([0.3, 0.3, 0.1])[perm], np.array(err)[perm]) == pytest.approx(ause([0.3, 0.3, 0.1], err))


def test_retained_mse_keeps_the_least_uncertain_pixels():
    se = np.array([4.0, 1.0, 9.0, 0.0])
    u = np.array([2.0, 1.0, 3.0, 0.0])
    np.testing.assert_allclose(retained_mse(u, se, (0.25, 0.5, 0.75, 1.0)), [0.0, 0.5, 5 / 3, 3.5])
    assert is_falling(-10 * np.log10(retained_mse(u, se + 1, (0.25, 0.5, 1.0))))
    assert not is_falling([1.0, 2.0]) and is_falling([2.0, 2.0 + 1e-9], tol=1e-6)


def test_bootstrap_of_constant_and_identical_paired_values_has_zero_width():
    c = hierarchical_bootstrap([[2.0, 2.0], [2.0, 2.0, 2.0]], n=200, seed=0)
    assert (c.mean, c.lo, c.hi, c.n_scenes, c.n_views) == (2.0, 2.0, 2.0, 2, 5)
    rng = np.random.default_rng(3)
    a = [rng.random(6) for _ in range(4)]  # two "maps" with identical per-view values
    diff = hierarchical_bootstrap([x - x for x in a], n=200, seed=0)
    assert diff.lo <= 0.0 <= diff.hi and diff.hi - diff.lo == 0.0
    spread = hierarchical_bootstrap(a, n=200, seed=0)
    assert spread.hi - spread.lo > 0.05


def test_bootstrap_is_deterministic_by_seed_and_vectorised_over_measures():
    rng = np.random.default_rng(4)
    data = [rng.normal(size=(int(rng.integers(3, 9)), 3)) for _ in range(5)]
    a, b, c = (hierarchical_bootstrap(data, n=300, seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.lo, b.lo)
    np.testing.assert_array_equal(a.hi, b.hi)
    assert not np.array_equal(a.lo, c.lo)
    # each column as its own scalar bootstrap (same draws): the same interval
    col = hierarchical_bootstrap([d[:, 1] for d in data], n=300, seed=7)
    assert (col.lo, col.hi) == pytest.approx((a.lo[1], a.hi[1]), abs=1e-12)
    # the point estimate is the mean of the scene means
    assert a.mean == pytest.approx(np.mean([d.mean(0) for d in data], 0))


def test_bootstrap_skips_nan_views_and_accepts_another_statistic():
    r = hierarchical_bootstrap([[1.0, np.nan], [3.0, 3.0]], n=100, seed=0)
    assert r.mean == pytest.approx(2.0) and 1.0 <= r.lo <= r.hi <= 3.0
    med = hierarchical_bootstrap([[1.0, 2.0, 30.0], [2.0, 2.0]], n=100, seed=0,
                                 statistic=lambda s: np.array([np.median(np.concatenate(s))]))
    assert med.mean == pytest.approx(2.0)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    """Scenes with their own offset (sd 1) and views around it (sd 1): the interval must reflect the scene
    spread. Over 120 synthetic data sets of 15 scenes x 6 views the 95 % interval holds the true mean 0 in
    roughly 95 % of them (the percentile bootstrap with 15 clusters is a little narrow: accept 85-99 %)."""
    rng = np.random.default_rng(5)
    hits, widths = 0, []
    for k in range(120):
        data = [rng.normal() + rng.normal(size=6) for _ in range(15)]
        r = hierarchical_bootstrap(data, n=200, seed=k)
        hits += r.lo <= 0.0 <= r.hi
        widths.append(r.hi - r.lo)
    assert 0.85 <= hits / 120 <= 0.99
    # the width follows the spread of scene means, sqrt(1 + 1/6) / sqrt(15), not of the 90 views, 1.08 / sqrt(90)
    assert np.mean(widths) == pytest.approx(2 * 1.96 * np.sqrt(1 + 1 / 6) / np.sqrt(15), rel=0.15)
