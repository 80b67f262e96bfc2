"""Statistics of a leaderboard: hierarchical bootstrap over scenes and seeds within scenes.

Data of one metric and mode is a cube ``V[backbone, scene, seed]`` (NaN where a run is missing). The point
estimate of a backbone is the mean over its scenes of the mean over its seeds. One bootstrap replicate draws
the scenes with replacement and, inside each drawn scene, its seeds with replacement; the same draws are
used for every backbone (so replicate rankings are comparable and differences are paired). Confidence
intervals are the 2.5 / 97.5 % percentiles of the replicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


def point_estimate(v: np.ndarray) -> np.ndarray:
    """``v`` (..., scenes, seeds) with NaN for missing -> mean over scenes of the mean over seeds (NaN-aware)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.sum(~np.isnan(v), axis=-1)
        scene_mean = np.where(n > 0, np.nansum(v, axis=-1) / np.maximum(n, 1), np.nan)
        m = np.sum(~np.isnan(scene_mean), axis=-1)
        return np.where(m > 0, np.nansum(scene_mean, axis=-1) / np.maximum(m, 1), np.nan)


def bootstrap_draws(v: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Replicates of :func:`point_estimate` for ``v`` (B_items, scenes, seeds): returns (B_items, n_boot).

    Scenes are drawn with replacement; within each drawn scene its seed slots (those where any item has a
    value) are drawn with replacement, the same draws for every item."""
    n_items, n_s, n_k = v.shape
    present = ~np.all(np.isnan(v), axis=0)  # (scenes, seeds): slot used by any item
    k_s = present.sum(axis=1)  # seeds per scene
    keep = k_s > 0
    v, present, k_s = v[:, keep], present[keep], k_s[keep]
    n_s = v.shape[1]
    if n_s == 0:
        return np.full((n_items, n_boot), np.nan)
    # slot table: the seed slots of each scene, left-aligned
    slots = np.zeros((n_s, n_k), dtype=np.int64)
    for s in range(n_s):
        idx = np.flatnonzero(present[s])
        slots[s, : len(idx)] = idx
    scene_idx = rng.integers(0, n_s, size=(n_boot, n_s))  # (B, S)
    k_drawn = k_s[scene_idx]  # (B, S)
    u = rng.random(size=(n_boot, n_s, n_k))
    pos = np.floor(u * k_drawn[..., None]).astype(np.int64)  # (B, S, K) in [0, k_s)
    use = np.arange(n_k)[None, None, :] < k_drawn[..., None]  # only k_s draws per scene
    slot = slots[scene_idx[..., None], pos]  # (B, S, K)
    vals = v[:, scene_idx[..., None], slot]  # (items, B, S, K)
    vals = np.where(use[None], vals, np.nan)
    return point_estimate(vals)


def percentile_ci(draws: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - level) / 2 * 100
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanpercentile(draws, a, axis=-1), np.nanpercentile(draws, 100 - a, axis=-1)


@dataclass
class Comparison:
    a: str
    b: str
    diff: float  # mean of (a - b) over common scenes/seeds, in the metric's units
    lo: float
    hi: float
    p_better: float  # fraction of replicates where a is better than b
    verdict: str  # "better" | "worse" | "tie"
    n_scenes: int


def paired_comparison(va: np.ndarray, vb: np.ndarray, a: str, b: str, higher_better: bool, n_boot: int,
                      rng: np.random.Generator, level: float = 0.95) -> Optional[Comparison]:
    """Paired bootstrap of a - b over the (scene, seed) pairs both have. ``verdict``: "better"/"worse" when
    the CI of the difference excludes 0 (in the metric's direction), "tie" otherwise."""
    d = va - vb  # NaN where either is missing
    n_scenes = int(np.sum(~np.all(np.isnan(d), axis=-1)))
    if n_scenes == 0:
        return None
    est = float(point_estimate(d[None])[0])
    draws = bootstrap_draws(d[None], n_boot, rng)[0]
    lo, hi = (float(x[0]) for x in percentile_ci(draws[None], level))
    sign = 1.0 if higher_better else -1.0
    p_better = float(np.mean(sign * draws > 0))
    if sign * lo > 0 and sign * hi > 0:
        verdict = "better"
    elif sign * lo < 0 and sign * hi < 0:
        verdict = "worse"
    else:
        verdict = "tie"
    return Comparison(a, b, est, lo, hi, p_better, verdict, n_scenes)


def ranks(values: np.ndarray, higher_better: bool) -> np.ndarray:
    """Ranks (1 = best, ties averaged) of ``values`` along the first axis; NaN stays NaN."""
    from scipy.stats import rankdata

    x = -values if higher_better else values
    out = np.full(values.shape, np.nan)
    cols = values.reshape(values.shape[0], -1)
    xr = x.reshape(x.shape[0], -1)
    o = out.reshape(out.shape[0], -1)
    for j in range(cols.shape[1]):
        ok = ~np.isnan(xr[:, j])
        if ok.any():
            o[ok, j] = rankdata(xr[ok, j])
    return o.reshape(values.shape)


@dataclass
class RankStability:
    tau_mean: float
    tau_lo: float
    tau_hi: float
    rank_lo: np.ndarray  # per item: 2.5 % percentile of its bootstrap rank
    rank_hi: np.ndarray
    p_first: np.ndarray  # per item: fraction of replicates ranking it first


def rank_stability(point: np.ndarray, draws: np.ndarray, higher_better: bool) -> Optional[RankStability]:
    """Kendall tau between the point-estimate ranking and each replicate's ranking (items with finite point
    estimates), and per-item rank intervals."""
    from scipy.stats import kendalltau

    ok = np.isfinite(point)
    if ok.sum() < 2:
        return None
    p, d = point[ok], draws[ok]
    taus = []
    for j in range(d.shape[1]):
        col = d[:, j]
        m = np.isfinite(col)
        if m.sum() >= 2:
            t = kendalltau(p[m], col[m]).statistic
            taus.append(1.0 if np.isnan(t) else float(t))  # all-equal columns: nothing reordered
    r = ranks(d, higher_better)
    lo, hi = percentile_ci(r)
    rank_lo = np.full(point.shape, np.nan)
    rank_hi = np.full(point.shape, np.nan)
    p_first = np.full(point.shape, np.nan)
    rank_lo[ok], rank_hi[ok] = lo, hi
    p_first[ok] = np.nanmean(r == 1, axis=1)
    taus_a = np.asarray(taus) if taus else np.array([np.nan])
    return RankStability(float(np.mean(taus_a)), float(np.percentile(taus_a, 2.5)), float(np.percentile(taus_a, 97.5)),
                         rank_lo, rank_hi, p_first)


@dataclass
class Correlation:
    x: str
    y: str
    n: int
    pearson: float
    pearson_p: float
    spearman: float
    spearman_p: float


def correlation(x: Sequence[float], y: Sequence[float], xname: str, yname: str) -> Optional[Correlation]:
    from scipy.stats import pearsonr, spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    pr, sr = pearsonr(x, y), spearmanr(x, y)
    return Correlation(xname, yname, len(x), float(pr.statistic), float(pr.pvalue), float(sr.statistic),
                       float(sr.pvalue))
