"""Bootstrap statistics of the leaderboard against brute-force loops and analytic cases."""

import numpy as np
import pytest

from benchmarks.report.stats import (bootstrap_draws, correlation, paired_comparison, percentile_ci, point_estimate,
                                     rank_stability, ranks)


def test_point_estimate_matches_loops_with_missing_runs():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(3, 5, 4))
    v[0, 1, 2:] = np.nan  # scene with fewer seeds
    v[1, 3] = np.nan  # a missing scene
    v[2, :, 0] = np.nan
    for i in range(3):
        scene_means = [np.mean([x for x in v[i, s] if np.isfinite(x)]) for s in range(5)
                       if np.isfinite(v[i, s]).any()]
        assert point_estimate(v)[i] == pytest.approx(np.mean(scene_means), abs=1e-12)


def test_bootstrap_sd_of_a_mean_over_scenes_is_analytic():
    """One seed per scene: the bootstrap SD of the mean is sigma_pop / sqrt(n)."""
    x = np.random.default_rng(1).normal(size=12)
    draws = bootstrap_draws(x[None, :, None], 20000, np.random.default_rng(2))[0]
    assert draws.mean() == pytest.approx(x.mean(), abs=0.02)
    assert draws.std() == pytest.approx(x.std() / np.sqrt(len(x)), rel=0.04)


def test_bootstrap_resamples_seeds_within_a_scene():
    """One scene, k seeds: the scene is always drawn, the seeds are resampled: SD = sigma_pop / sqrt(k)."""
    x = np.random.default_rng(3).normal(size=6)
    draws = bootstrap_draws(x[None, None, :], 20000, np.random.default_rng(4))[0]
    assert draws.std() == pytest.approx(x.std() / np.sqrt(6), rel=0.04)


def test_hierarchical_bootstrap_matches_a_brute_force_loop():
    rng = np.random.default_rng(5)
    v = rng.normal(size=(1, 7, 3)) + rng.normal(size=(1, 7, 1)) * 2  # scene effects + seed noise
    v[0, 2, 2] = np.nan  # one scene with two seeds
    fast = bootstrap_draws(v, 8000, np.random.default_rng(6))[0]
    loop_rng = np.random.default_rng(7)
    slow = []
    for _ in range(8000):
        means = []
        for s in loop_rng.integers(0, 7, size=7):
            seeds = v[0, s][np.isfinite(v[0, s])]
            means.append(loop_rng.choice(seeds, size=len(seeds), replace=True).mean())
        slow.append(np.mean(means))
    slow = np.asarray(slow)
    assert fast.mean() == pytest.approx(slow.mean(), abs=0.03)
    assert fast.std() == pytest.approx(slow.std(), rel=0.06)


def test_paired_comparison_constant_shift_tie_and_direction():
    rng = np.random.default_rng(8)
    a = rng.normal(size=(6, 2)) * 3
    c = paired_comparison(a + 0.5, a, "x", "y", higher_better=True, n_boot=500, rng=rng)
    # a constant paired shift: the difference is exactly 0.5 in every replicate, despite large scene variance
    assert (c.diff, c.lo, c.hi, c.p_better, c.verdict) == (pytest.approx(0.5), pytest.approx(0.5),
                                                            pytest.approx(0.5), 1.0, "better")
    assert paired_comparison(a, a + 0.5, "y", "x", True, 500, rng).verdict == "worse"
    assert paired_comparison(a + 0.5, a, "x", "y", False, 500, rng).verdict == "worse"  # lower is better
    same = paired_comparison(a, a.copy(), "x", "y", True, 500, rng)
    assert same.verdict == "tie" and same.diff == 0
    noisy = paired_comparison(a + rng.normal(size=a.shape), a, "x", "y", True, 2000, rng)
    assert noisy.lo < noisy.diff < noisy.hi


def test_paired_comparison_uses_only_shared_runs():
    a = np.array([[1.0, 2.0], [5.0, np.nan], [np.nan, np.nan]])
    b = np.array([[0.0, 1.0], [np.nan, 3.0], [9.0, 9.0]])
    c = paired_comparison(a, b, "a", "b", True, 200, np.random.default_rng(0))
    assert c.n_scenes == 1 and c.diff == pytest.approx(1.0)


def test_ranks_and_rank_stability():
    assert list(ranks(np.array([3.0, 1.0, 2.0, 2.0]), True)) == [1.0, 4.0, 2.5, 2.5]
    assert list(ranks(np.array([3.0, 1.0, 2.0]), False)) == [3.0, 1.0, 2.0]
    rng = np.random.default_rng(9)
    sep = np.stack([np.full((8, 2), 10.0 * i) + rng.normal(size=(8, 2)) * 0.1 for i in range(4)])
    draws = bootstrap_draws(sep, 300, rng)
    st = rank_stability(point_estimate(sep), draws, higher_better=True)
    assert st.tau_mean == 1.0 and list(st.p_first) == [0, 0, 0, 1]
    assert list(st.rank_lo) == [4, 3, 2, 1] and list(st.rank_hi) == [4, 3, 2, 1]
    same = rng.normal(size=(4, 8, 2))  # no real differences: orders change a lot
    d = bootstrap_draws(same, 300, rng)
    assert rank_stability(point_estimate(same), d, True).tau_mean < 0.7


def test_percentile_ci_and_correlations():
    lo, hi = percentile_ci(np.arange(1001, dtype=float)[None])
    assert lo[0] == pytest.approx(25) and hi[0] == pytest.approx(975)
    x = np.arange(10.0)
    c = correlation(x, x ** 3, "a", "b")
    assert c.spearman == pytest.approx(1.0) and 0.9 < c.pearson < 1.0 and c.n == 10
    assert correlation([1, 2], [1, 2], "a", "b") is None  # too few points
