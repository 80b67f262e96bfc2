"""Speed of the batched ROE alignment (and focal/shift recovery) vs a per-item Python loop and vs naive search.
Prints one JSON line per case.

Data (seeded): ``--batch`` synthetic ``--size`` x ``--size`` point maps, GT points with z in [2, 6], the
prediction ``(gt - t) / s`` plus 2 % noise with 10 % gross outliers; weights ``1 / |P_gt|`` (depth cases use
the z channel and ``1 / z_gt``) -- the setting of MoGe's evaluation (64 x 64 subsample). Truncated cases use
``--tau`` (default 0.05 on the weighted residuals, small enough that the truncation binds on the outliers).

Cases (``n`` = samples per item):

* ``depth_scale`` / ``depth_scale_trunc``: the 1-D core (weighted median / truncated breakpoint search,
  O(n log n)); ``naive_s`` = evaluating the objective at every breakpoint, O(n^2), batched and chunked.
* ``points_scale_trunc``: the core over 3n coordinates; naive O((3n)^2).
* ``depth_affine``, ``points_scale_z_shift``, ``points_scale_xyz_shift``: untruncated, exact cutting-plane
  solver, O(K n log n); ``naive_s`` = MoGe's anchor enumeration (``method="anchor"``, O(n^2 log n)) timed
  on ``--anchor-items`` items and scaled to the batch (``naive_scaled``).
* ``depth_affine_trunc``, ``points_scale_z_shift_trunc``: truncated anchor enumeration, O(n^2 log n), on a
  ``--trunc-size`` x ``--trunc-size`` map; ``naive_s`` = exhaustive pair search O(n^3).
* ``focal_shift``: focal + shift recovery of full ``--size`` maps; ``naive_s`` = MoGe-style per-image
  ``scipy.optimize.least_squares`` (LM, x0 = 0, ftol 1e-3) on the CPU.

Timing: ``batched_s`` = best of ``--repeat`` runs of one batched call; ``loop_s`` = one pass calling the same
function item by item (batch 1); the naive search runs once. ``max_rel_diff`` compares the objectives of the
batched solution and the naive one (0 = same optimum; > 0 means the naive solution is worse). Timings on a
shared machine are noisy.

Usage: ``python benchmarks/perf/roe.py [--batch 32] [--size 64] [--threads 2] [--cases depth_scale,...]``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable, Optional

import numpy as np
import torch

from feat2gs.geometry import alignment as al
from feat2gs.geometry import focal as fs


def make_data(batch: int, size: int, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    n = size * size
    gt = torch.rand(batch, n, 3, generator=g, dtype=dtype) * torch.tensor([2.0, 2.0, 4.0], dtype=dtype)
    gt = gt + torch.tensor([-1.0, -1.0, 2.0], dtype=dtype)
    s = 0.5 + torch.rand(batch, 1, 1, generator=g, dtype=dtype)
    t = torch.randn(batch, 1, 3, generator=g, dtype=dtype) * 0.3
    pred = (gt - t) / s * (1 + 0.02 * torch.randn(batch, n, 3, generator=g, dtype=dtype))
    out = torch.rand(batch, n, generator=g) < 0.1
    pred[out] = pred[out] + torch.randn(int(out.sum()), 3, generator=g, dtype=dtype)
    w = 1 / gt.norm(dim=-1)
    return pred, gt, w


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def loop_time(fn: Callable[[slice], object], batch: int) -> float:
    t0 = time.perf_counter()
    for b in range(batch):
        fn(slice(b, b + 1))
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------------------
# naive references


def naive_core(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, tau: Optional[float],
               chunk: int = 1 << 24) -> torch.Tensor:
    """min over breakpoints a_j = y_j / x_j of sum_i rho(w_i |a_j x_i - y_i|): O(n^2) per item."""
    B, n = x.shape
    a = torch.where(x != 0, y / torch.where(x != 0, x, 1), float("nan"))
    best = torch.full((B,), float("inf"), dtype=x.dtype)
    step = max(1, chunk // (B * n))
    for j in range(0, n, step):
        r = w[:, None] * (a[:, j:j + step, None] * x[:, None] - y[:, None]).abs()
        if tau is not None:
            r = r.clamp_max(tau)
        v = r.sum(-1)
        best = torch.minimum(best, torch.where(torch.isnan(v), float("inf"), v).amin(-1))
    return best


def naive_pairs(P: torch.Tensor, G: torch.Tensor, w: torch.Tensor, tau: float, z_only: bool,
                chunk: int = 1 << 24) -> torch.Tensor:
    """Exhaustive truncated scale + shift search over all pairs (i, k) of shifted samples, O(n^3) per item.
    ``P, G`` (B, n, 3) with ``z_only``: s from z pairs (or x/y ratios), t_z from the pair; depth: C = 1."""
    B, n, C = P.shape
    i, k = torch.triu_indices(n, n, 1)
    c = 2 if z_only else 0
    best = torch.full((B,), float("inf"), dtype=P.dtype)
    step = max(1, chunk // (B * n * C))
    for q in range(0, i.numel(), step):
        ii, kk = i[q:q + step], k[q:q + step]
        s = (G[:, kk, c] - G[:, ii, c]) / (P[:, kk, c] - P[:, ii, c])  # (B, m)
        t = G[:, ii, c] - s * P[:, ii, c]
        res = s[..., None, None] * P[:, None] - G[:, None]  # (B, m, n, C)
        res[..., c] = res[..., c] + t[..., None]
        v = (w[:, None, :, None] * res.abs()).clamp_max(tau).sum((-1, -2))
        best = torch.minimum(best, torch.where(torch.isnan(v), float("inf"), v).amin(-1))
    if z_only:  # scale candidates from x/y ratios with the z shift at each anchor
        for cc in (0, 1):
            s_all = G[:, :, cc] / P[:, :, cc]
            for q in range(0, n, max(1, step // n)):
                s = s_all[:, q:q + max(1, step // n)]  # (B, m)
                r_xy = (w[:, None, :, None] * (s[..., None, None] * P[:, None, :, :2] - G[:, None, :, :2]).abs())
                u = G[:, None, :, 2] - s[..., None] * P[:, None, :, 2]  # (B, m, n)
                rz = (w[:, None, None, :] * (u[..., :, None] - u[..., None, :]).abs()).clamp_max(tau).sum(-1)
                v = r_xy.clamp_max(tau).sum((-1, -2)) + rz.amin(-1)
                best = torch.minimum(best, v.amin(-1))
    return best


def rel_diff(fast: torch.Tensor, naive: torch.Tensor) -> float:
    return float(((naive - fast) / fast.abs().clamp_min(1e-300)).abs().max())


# ----------------------------------------------------------------------------------------------------------


def emit(case: str, batch: int, n: int, batched_s: float, loop_s: float, naive_s: Optional[float], **extra):
    rec = {"case": case, "batch": batch, "n": n, "batched_s": round(batched_s, 5), "loop_s": round(loop_s, 5),
           "speedup_vs_loop": round(loop_s / batched_s, 2),
           "naive_s": None if naive_s is None else round(naive_s, 5),
           "speedup_vs_naive": None if naive_s is None else round(naive_s / batched_s, 2),
           "threads": torch.get_num_threads(), "device": "cpu"}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def run(args) -> None:
    B, size, tau = args.batch, args.size, args.tau
    P, G, W = make_data(B, size)
    Pd, Gd, Wd = P[..., 2], G[..., 2], 1 / G[..., 2]
    n = size * size
    cases = set(args.cases.split(",")) if args.cases else None

    def want(c: str) -> bool:
        return cases is None or c in cases

    for case, trunc in (("depth_scale", None), ("depth_scale_trunc", tau)):
        if not want(case):
            continue
        tb, res = best_of(lambda: al.align_depth_scale(Pd, Gd, Wd, trunc=trunc), args.repeat)
        tl = loop_time(lambda sl: al.align_depth_scale(Pd[sl], Gd[sl], Wd[sl], trunc=trunc), B)
        t0 = time.perf_counter()
        ref = naive_core(Pd, Gd, Wd, trunc)
        tn = time.perf_counter() - t0
        emit(case, B, n, tb, tl, tn, max_rel_diff=rel_diff(res.loss, ref))

    if want("points_scale_trunc"):
        tb, res = best_of(lambda: al.align_points_scale(P, G, W, trunc=tau), args.repeat)
        tl = loop_time(lambda sl: al.align_points_scale(P[sl], G[sl], W[sl], trunc=tau), B)
        x = P.transpose(1, 2).reshape(B, -1)
        y = G.transpose(1, 2).reshape(B, -1)
        t0 = time.perf_counter()
        ref = naive_core(x, y, W.repeat(1, 3), tau)
        tn = time.perf_counter() - t0
        emit("points_scale_trunc", B, 3 * n, tb, tl, tn, max_rel_diff=rel_diff(res.loss, ref))

    k = max(1, min(args.anchor_items, B))
    for case, fn, args_full in (
        ("depth_affine", al.align_depth_affine, (Pd, Gd, Wd)),
        ("points_scale_z_shift", al.align_points_scale_z_shift, (P, G, W)),
        ("points_scale_xyz_shift", al.align_points_scale_xyz_shift, (P, G, W)),
    ):
        if not want(case):
            continue
        tb, res = best_of(lambda: fn(*args_full), args.repeat)
        tl = loop_time(lambda sl: fn(*(a[sl] for a in args_full)), B)
        t0 = time.perf_counter()
        anc = fn(*(a[:k] for a in args_full), method="anchor")
        tn = (time.perf_counter() - t0) * B / k
        # anchor enumeration is exact for one shift group; for xyz it is an upper bound (diff >= 0)
        emit(case, B, n, tb, tl, tn, naive="moge_anchor_enumeration", naive_items=k, naive_scaled=k < B,
             max_rel_diff=rel_diff(res.loss[:k], anc.loss))

    ts = args.trunc_size
    Pt, Gt, Wt = make_data(B, ts, seed=1)
    nt = ts * ts
    for case, fn, z_only in (("depth_affine_trunc", al.align_depth_affine, False),
                             ("points_scale_z_shift_trunc", al.align_points_scale_z_shift, True)):
        if not want(case):
            continue
        if z_only:
            a_full = (Pt, Gt, Wt)
        else:
            a_full = (Pt[..., 2], Gt[..., 2], 1 / Gt[..., 2])
        tb, res = best_of(lambda: fn(*a_full, trunc=tau), args.repeat)
        tl = loop_time(lambda sl: fn(*(a[sl] for a in a_full), trunc=tau), B)
        t0 = time.perf_counter()
        if z_only:
            ref = naive_pairs(Pt, Gt, Wt, tau, z_only=True)
        else:
            ref = naive_pairs(a_full[0][..., None], a_full[1][..., None], a_full[2], tau, z_only=False)
        tn = time.perf_counter() - t0
        emit(case, B, nt, tb, tl, tn, naive="exhaustive_pairs", max_rel_diff=rel_diff(res.loss, ref))

    if want("focal_shift"):
        from scipy.optimize import least_squares

        rng = np.random.default_rng(0)
        H = Wd_ = size * 2
        uv = fs.normalized_view_plane_uv(Wd_, H, dtype=torch.float64)
        f = torch.tensor(rng.uniform(0.5, 2.0, B))
        depth = torch.tensor(rng.uniform(2, 5, (B, H, Wd_)))
        shift = torch.tensor(rng.uniform(-1, 1, B))
        pts = torch.cat([uv[None] * depth[..., None] / f[:, None, None, None],
                         (depth - shift[:, None, None])[..., None]], -1)
        pts = pts * (1 + 0.01 * torch.randn(pts.shape, generator=torch.Generator().manual_seed(0),
                                            dtype=torch.float64))
        tb, res = best_of(lambda: fs.recover_focal_shift(pts), args.repeat)
        tl = loop_time(lambda sl: fs.recover_focal_shift(pts[sl]), B)
        xyz = fs.nearest_subsample(pts, (64, 64)).reshape(B, -1, 3).numpy()
        uvl = fs.nearest_subsample(uv[None].expand(B, H, Wd_, 2), (64, 64)).reshape(B, -1, 2).numpy()
        t0 = time.perf_counter()
        shifts = []
        for b in range(B):
            xy, z, u = xyz[b, :, :2], xyz[b, :, 2], uvl[b]

            def fun(s):
                q = xy / (z + s[0])[:, None]
                return ((q * u).sum() / (q * q).sum() * q - u).ravel()

            shifts.append(least_squares(fun, x0=[0.0], method="lm", ftol=1e-3).x[0])
        tn = time.perf_counter() - t0
        emit("focal_shift", B, H * Wd_, tb, tl, tn, naive="scipy_lm_per_image",
             max_abs_shift_diff_vs_scipy=float(np.abs(np.array(shifts) - res.shift.numpy()).max()),
             max_abs_shift_err_vs_truth=float((res.shift - shift).abs().max()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=64, help="map side; n = size^2 samples per item")
    ap.add_argument("--trunc-size", type=int, default=16, help="map side of the O(n^2 log n) truncated cases")
    ap.add_argument("--anchor-items", type=int, default=1, help="items timed for MoGe's anchor enumeration")
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--cases", default="", help="comma-separated subset of cases")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
