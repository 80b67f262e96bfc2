"""Robust, optimal, efficient (ROE) weighted-L1 alignment of predictions to targets (after MoGe).

Every solver here fits ``scale * pred + shift ~= gt`` by minimising a weighted L1 objective, optionally
truncated at ``tau`` (robust to outliers):

    untruncated:  sum_e  w_e |s x_e + t_{g(e)} - y_e|
    truncated:    sum_e  min(tau_e, w_e |s x_e + t_{g(e)} - y_e|)

where ``x`` is the prediction, ``y`` the target, and each entry ``e`` either has no shift ("fixed" entries:
x/y coordinates when only z is shifted, everything for scale-only models) or belongs to a shift group ``g``
(one group for depth affine / z-shift, three for an xyz shift). Weights are per sample (``1/z`` etc.);
entries with weight 0 or a non-finite value are ignored (that is how masks are passed).

Algorithms (all batched over a leading batch dimension in torch, CPU or GPU; the search runs in float64
without grad; no Python loop over batch items -- the loops below run over iterations or over chunks of
anchors/candidates of the whole flattened batch):

* ``align`` -- the 1-D core ``min_a sum_i rho(w_i |a x_i - y_i|)``. The objective is piecewise linear with
  convex kinks at ``A_i = y_i / x_i``, so the optimum is at one of them.
  - untruncated: the weighted median of ``A_i`` with weights ``w_i |x_i|``: one sort + prefix sum.
    O(n log n).
  - truncated: besides ``A_i`` each term has two concave kinks ``B_i, C_i = A_i -/+ tau_i/(w_i|x_i|)`` where
    it saturates. With ``Q_X(a) = sum_{X_i < a} w_i|x_i|`` the slope is ``2 Q_A - Q_B - Q_C``; sorting
    A, B, C once and taking prefix sums gives the left/right derivatives at every ``A_j`` (binary search
    into the sorted B and C, run boundaries in the sorted A), hence the local minima (left <= 0 <= right).
    The truncated objective at every candidate is also read from prefix sums, using
    ``sum_i min(tau, w x |a - A_i|) = sum tau - sum_X c_X P_X(a)`` with ``P_X(a) = sum_{X_i < a} w_i x_i
    (a - X_i)`` (``c_A = -2``, ``c_B = c_C = 1``: each term is tau minus a tent of three ramps), instead of
    the reference's O(n * #minima) direct evaluation. O(n log n) in all cases.
* Scale + shift models (depth affine, points scale + z-shift, points scale + xyz-shift):
  - ``method="exact"`` and untruncated: the objective with the shifts minimised out, ``F(s)``, is convex
    and piecewise linear in ``s`` (partial minimisation of a jointly convex function). It is evaluated
    exactly at any ``s`` with one weighted median per shift group, together with a subgradient; a
    1-D cutting-plane (Kelley) search on a bracket ``g(lo) < 0 < g(hi)`` terminates when the value at
    the intersection of the two cuts equals the cut model (a certificate of global optimality). A last
    anchored step (shift anchors = the weighted medians, one exact 1-D solve over all entries) lands on
    the optimal vertex, so ``scale`` and ``shift`` are re-expressed from samples. O(K n log n), K the
    number of objective evaluations (bracketing + cutting planes; 15-20 on 64x64 maps).
  - truncated with at most one shift group (depth affine, z-shift): anchor enumeration as in MoGe: at the
    optimum some shifted entry ``j`` has zero residual; for every such anchor, ``t = y_j - s x_j`` and the
    1-D truncated core solves ``s`` over the anchored entries; the best anchor wins. Exact.
    O(n * N log N) time (n anchors, N entries), memory bounded by chunking over anchors.
  - truncated with three shift groups (xyz shift), ``method="exact"``: at the optimum two entries of one
    group have zero residual, so ``s`` is one of the pairwise slopes ``(y_k - y_i)/(x_k - x_i)`` within a
    group; every candidate is scored with an exact truncated 1-D location solve per group. Exact but
    O(n^2 * n log n) -- for small problems (local patches; refused beyond ``MAX_PAIR_CANDIDATES``); use
    ``method="anchor"`` for large ones.
  - ``method="anchor"``: MoGe's solver -- enumerate anchor *points* ``j`` whose full residual (all shifted
    coordinates) is zero, then the 1-D core. Exact for one shift group; for the xyz shift it is an upper
    bound on the optimum (the optimal xyz shift need not zero all coordinates of one point), kept for parity
    with MoGe's numbers. O(n * N log N).
* Shift-only models (z-shift, xyz-shift with scale 1): one weighted median (1-D core with x = 1) per group.

Gradients: the search is done without grad on detached float64 copies; the returned scale and shift are
re-expressed from the selected samples in the input dtype (``s = (y_k - y_j)/(x_k - x_j)``,
``t = y_j - s x_j``), so gradients reach the prediction (and the target) through those entries only,
as in MoGe.

Simple alternatives for ablations: ``align_affine_lstsq`` (weighted least squares) and
``align_median_scale`` (ratio of medians).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch
from torch import Tensor

from ..errors import InputError

Method = Literal["exact", "anchor"]
Trunc = Union[None, float, Tensor]

#: default bound on the number of float64 elements processed per chunk by the enumeration solvers
#: (about 30 temporaries of that size are alive at once: 2**20 elements ~ 250 MB peak).
DEFAULT_CHUNK_ELEMENTS = 1 << 20
#: cap on cutting-plane iterations of the exact convex solver (it certifies optimality well before).
MAX_CUTTING_PLANE_ITERS = 100
#: refuse the O(n^3 log n) exact truncated xyz-shift search beyond this many candidate scales per call.
MAX_PAIR_CANDIDATES = 20_000_000


@dataclass
class Align1D:
    """Result of the 1-D core ``align``: ``value`` (*batch) minimiser (differentiable, ``y[index]/x[index]``),
    ``loss`` (*batch) objective at ``value`` and ``index`` (*batch, long; -1 when no sample qualifies)."""

    value: Tensor
    loss: Tensor
    index: Tensor


@dataclass
class Alignment:
    """An alignment ``gt ~= scale * pred + shift``.

    ``scale`` and ``loss`` have the batch shape; ``shift`` has the batch shape for depth alignments and
    (*batch, 3) for point alignments (a z-shift is ``(0, 0, t)``). ``valid`` (*batch, bool) is False where
    the problem was degenerate (too few valid samples to determine the parameters). ``loss`` is the
    (truncated) weighted L1 objective at the solution (least squares for ``align_affine_lstsq``).
    """

    scale: Tensor
    shift: Tensor
    loss: Tensor
    valid: Tensor

    def apply(self, pred: Tensor) -> Tensor:
        """Apply to a prediction with the batch shape followed by samples: depth (*batch, ...) when ``shift``
        has the batch shape, points (*batch, ..., 3) otherwise."""
        nb = self.scale.ndim
        if self.shift.shape == self.scale.shape:  # depth-like
            extra = pred.ndim - nb
            s = self.scale.reshape(*self.scale.shape, *([1] * extra))
            t = self.shift.reshape(*self.shift.shape, *([1] * extra))
            return s * pred + t
        extra = pred.ndim - nb - 1
        s = self.scale.reshape(*self.scale.shape, *([1] * (extra + 1)))
        t = self.shift.reshape(*self.scale.shape, *([1] * extra), 3)
        return s * pred + t


# ----------------------------------------------------------------------------------------------------------
# 1-D core


def _objective(a: Tensor, x: Tensor, y: Tensor, w: Tensor, tau: Optional[Tensor]) -> Tensor:
    """sum_i rho(w_i |a x_i - y_i|) for a (R,), x/y/w/tau (R, n); invalid entries carry w = 0."""
    r = w * (a.unsqueeze(-1) * x - y).abs()
    if tau is not None:
        r = torch.minimum(r, tau)
    return r.sum(-1)


def _pad0(c: Tensor) -> Tensor:
    return torch.cat([torch.zeros_like(c[..., :1]), c], dim=-1)


def _run_bounds(sorted_vals: Tensor, order: Tensor) -> tuple[Tensor, Tensor]:
    """For rows sorted as ``sorted_vals = vals.gather(-1, order)``: per original element, the number of
    values strictly below it and the number of values <= it (searchsorted left/right of the values into
    themselves, without the binary searches)."""
    R, n = sorted_vals.shape
    pos = torch.arange(n, device=sorted_vals.device).expand(R, n)
    new_run = torch.ones_like(sorted_vals, dtype=torch.bool)
    new_run[:, 1:] = sorted_vals[:, 1:] != sorted_vals[:, :-1]
    start = torch.where(new_run, pos, torch.zeros_like(pos)).cummax(-1).values
    last = torch.ones_like(new_run)
    last[:, :-1] = new_run[:, 1:]
    end = torch.where(last, pos + 1, torch.full_like(pos, n)).flip(-1).cummin(-1).values.flip(-1)
    kl = torch.empty_like(start).scatter_(-1, order, start)
    kr = torch.empty_like(end).scatter_(-1, order, end)
    return kl, kr


def _search_1d(x: Tensor, y: Tensor, w: Tensor, tau: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """The ROE search on sanitised float64 rows (R, n) (w = 0 and finite x, y on invalid entries).

    Returns (a, loss, index), each (R,); index -1 (and a = 0) where no entry has w|x| > 0.
    """
    R, n = x.shape
    neg = x < 0
    x = torch.where(neg, -x, x)
    y = torch.where(neg, -y, y)
    wx = w * x
    cand = wx > 0
    A = y / torch.where(cand, x, torch.ones_like(x))
    cand = cand & torch.isfinite(A)
    inf = torch.tensor(float("inf"), dtype=x.dtype, device=x.device)
    A = torch.where(cand, A, inf)
    wxc = torch.where(cand, wx, torch.zeros_like(wx))
    has = cand.any(-1)
    if tau is None:
        As, order = A.sort(dim=-1)
        c = wxc.gather(-1, order).cumsum(-1)
        deriv = 2.0 * c - c[:, -1:]  # right derivative just after the k-th sorted ratio
        pos = torch.searchsorted(deriv, torch.zeros_like(deriv[:, :1]), side="left").clamp_max(n - 1)
        index = order.gather(-1, pos).squeeze(-1)
        a = As.gather(-1, pos).squeeze(-1)
    else:
        tau_c = torch.where(cand, tau, torch.zeros_like(tau))
        wy = torch.where(cand, w * y, torch.zeros_like(y))
        safe_wx = torch.where(cand, wx, torch.ones_like(wx))
        Bk = torch.where(cand, (wy - tau_c) / safe_wx, inf)
        Ck = torch.where(cand, (wy + tau_c) / safe_wx, inf)
        a_c = torch.where(cand, A, torch.zeros_like(A))  # candidate minimisers (masked later)
        left = torch.zeros_like(A)
        right = torch.zeros_like(A)
        # objective at the candidates: sum_cand tau - (P_B - 2 P_A + P_C) + constant of non-candidates
        f = tau_c.sum(-1, keepdim=True).expand(R, n).clone()
        # coefficients of 2 Q_A - Q_B - Q_C (slope) and of 2 P_A - P_B - P_C (objective) coincide
        for key, first_moment, coef in ((A, wy, 2.0), (Bk, wy - tau_c, -1.0), (Ck, wy + tau_c, -1.0)):
            ks, order = key.sort(dim=-1)
            S0 = _pad0(wxc.gather(-1, order).cumsum(-1))
            S1 = _pad0(first_moment.gather(-1, order).cumsum(-1))
            if key is A:  # the candidates are A itself: counts below / up to a value are its run bounds
                kl, kr = _run_bounds(ks, order)
            else:
                kl = torch.searchsorted(ks, a_c, side="left")
                kr = torch.searchsorted(ks, a_c, side="right")
            s0l = S0.gather(-1, kl)
            left += coef * s0l
            right += coef * S0.gather(-1, kr)
            f += coef * (a_c * s0l - S1.gather(-1, kl))
        const = torch.where(~cand & (w > 0), torch.minimum(w * y.abs(), tau), torch.zeros_like(y)).sum(-1)
        f = f + const.unsqueeze(-1)
        tol = 1e-9 * wxc.sum(-1, keepdim=True)
        is_min = cand & (left <= tol) & (right >= -tol)
        is_min = torch.where(is_min.any(-1, keepdim=True), is_min, cand)
        best = torch.where(is_min, f, inf).argmin(-1)
        index = best
        a = A.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    a = torch.where(has, a, torch.zeros_like(a))
    index = torch.where(has, index, torch.full_like(index, -1))
    return a, _objective(a, x, y, w, tau), index


def _search_1d_chunked(x: Tensor, y: Tensor, w: Tensor, tau: Optional[Tensor],
                       chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> tuple[Tensor, Tensor, Tensor]:
    rows = max(1, chunk_elements // max(1, x.shape[-1]))
    if x.shape[0] <= rows:
        return _search_1d(x, y, w, tau)
    outs = [_search_1d(x[i:i + rows], y[i:i + rows], w[i:i + rows], None if tau is None else tau[i:i + rows])
            for i in range(0, x.shape[0], rows)]
    return tuple(torch.cat(parts) for parts in zip(*outs))  # type: ignore[return-value]


def _as_trunc(trunc: Trunc, like: Tensor, where: str) -> Optional[Tensor]:
    if trunc is None:
        return None
    t = torch.as_tensor(trunc, dtype=like.dtype, device=like.device)
    if not torch.isfinite(t).all() or (t < 0).any():
        raise InputError(where, "truncation must be finite and non-negative")
    return t


def _sanitise(x: Tensor, y: Tensor, w: Tensor, tau: Optional[Tensor]):
    """Detached float64 search copies with w = 0 (and x = y = 0) on invalid entries."""
    xd, yd, wd = x.detach().double(), y.detach().double(), w.detach().double()
    valid = torch.isfinite(xd) & torch.isfinite(yd) & torch.isfinite(wd) & (wd > 0)
    zero = torch.zeros_like(xd)
    xs = torch.where(valid, xd, zero)
    ys = torch.where(valid, yd, zero)
    ws = torch.where(valid, wd, zero)
    taus = None if tau is None else tau.detach().double().expand_as(xd).contiguous()
    return valid, xs, ys, ws, taus


def _check_weight(w: Tensor, where: str) -> None:
    if (w < 0).any():
        raise InputError(where, "weights must be non-negative (use 0 to mask a sample)")


def align(x: Tensor, y: Tensor, w: Optional[Tensor] = None, trunc: Trunc = None) -> Align1D:
    """ROE 1-D core: ``argmin_a sum_i w_i |a x_i - y_i|`` or ``sum_i min(trunc, w_i |a x_i - y_i|)``.

    ``x, y, w`` broadcast to (*batch, n); ``trunc`` is None, a float or a tensor broadcastable to
    (*batch, n). Entries with ``w == 0`` or a non-finite value are ignored. Exact (a global minimiser);
    O(n log n) per problem. ``value`` is re-expressed as ``y[index] / x[index]`` so it is differentiable.
    """
    if w is None:
        w = torch.ones_like(x)
    x, y, w = torch.broadcast_tensors(x, y, w)
    _check_weight(w, "align.w")
    batch, n = x.shape[:-1], x.shape[-1]
    B = math.prod(batch)
    tau = _as_trunc(trunc, x, "align.trunc")
    xf, yf, wf = x.reshape(B, n), y.reshape(B, n), w.reshape(B, n)
    tauf = None if tau is None else tau.expand(*batch, n).reshape(B, n)
    valid, xs, ys, ws, taus = _sanitise(xf, yf, wf, tauf)
    with torch.no_grad():
        _, _, index = _search_1d_chunked(xs, ys, ws, taus)
    ok = index >= 0
    idx = index.clamp_min(0).unsqueeze(-1)
    xk, yk = xf.gather(-1, idx).squeeze(-1), yf.gather(-1, idx).squeeze(-1)
    value = torch.where(ok, yk / torch.where(ok, xk, torch.ones_like(xk)), torch.zeros_like(yk))
    loss = _objective(value, torch.where(valid, xf, 0), torch.where(valid, yf, 0),
                      torch.where(valid, wf, 0), tauf)
    return Align1D(value.reshape(batch), loss.reshape(batch), index.reshape(batch))


# ----------------------------------------------------------------------------------------------------------
# scale + grouped-shift problems


@dataclass
class _Problem:
    """Flattened problem: entries [0, m) have no shift; entry m + g*n + i is sample i of shift group g."""

    x: Tensor  # (B, E) prediction, input dtype (may carry grad)
    y: Tensor  # (B, E) target
    w: Tensor  # (B, E) weights, detached, 0 on invalid entries
    tau: Optional[Tensor]  # (B, E) or None
    m: int
    G: int
    n: int
    valid: Tensor  # (B, E)
    xs: Tensor  # float64 search copies
    ys: Tensor
    ws: Tensor
    taus: Optional[Tensor]

    @property
    def B(self) -> int:
        return self.x.shape[0]

    @property
    def E(self) -> int:
        return self.x.shape[1]

    def groups(self, t: Tensor) -> Tensor:
        """(R, E) -> (R, G, n) view of the shifted entries."""
        return t[:, self.m:].reshape(t.shape[0], self.G, self.n)


def _make_problem(x: Tensor, y: Tensor, w: Tensor, tau: Optional[Tensor], m: int, G: int, n: int) -> _Problem:
    valid, xs, ys, ws, taus = _sanitise(x, y, w, tau)
    wz = torch.where(valid, w.detach(), torch.zeros_like(w))
    return _Problem(x=x, y=y, w=wz, tau=None if tau is None else tau.expand_as(x), m=m, G=G, n=n,
                    valid=valid, xs=xs, ys=ys, ws=ws, taus=taus)


@dataclass
class _Solution:
    """Selected samples: scale from entry k (minus entry a when a >= 0), shift of group g from anchors[:, g]."""

    k: Tensor  # (B,) long, -1: no scale candidate
    a: Tensor  # (B,) long, -1: none
    anchors: Tensor  # (B, G) long, -1: group without valid entries


def _location(u: Tensor, w: Tensor, tau: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """Weighted (truncated) L1 location per row: argmin_t sum rho(w |t - u|); rows (R, n) -> (t, index)."""
    t, _, idx = _search_1d_chunked(torch.ones_like(u), u, w, tau)
    return t, idx


def _group_of(p: _Problem, e: Tensor) -> Tensor:
    return torch.where(e >= p.m, (e - p.m).div(p.n, rounding_mode="floor"), torch.full_like(e, -1))


def _scale_pair_from_k(p: _Problem, k: Tensor, anchors: Tensor) -> Tensor:
    """Partner entry of k: the anchor of k's group (-1 for unshifted entries or k = -1)."""
    g = _group_of(p, k)
    if p.G == 0:
        return torch.full_like(k, -1)
    partner = anchors.gather(1, g.clamp_min(0).unsqueeze(1)).squeeze(1)
    return torch.where((g >= 0) & (k >= 0), partner, torch.full_like(k, -1))


def _solve_scale_only(p: _Problem) -> _Solution:
    _, _, k = _search_1d_chunked(p.xs, p.ys, p.ws, p.taus)
    empty = torch.empty(p.B, 0, dtype=torch.long, device=k.device)
    return _Solution(k=k, a=torch.full_like(k, -1), anchors=empty)


def _solve_shift_only(p: _Problem) -> _Solution:
    """Scale fixed to 1: one (truncated) weighted median of y - x per group."""
    u = p.groups(p.ys - p.xs).reshape(p.B * p.G, p.n)
    wg = p.groups(p.ws).reshape(p.B * p.G, p.n)
    tg = None if p.taus is None else p.groups(p.taus).reshape(p.B * p.G, p.n)
    _, idx = _location(u, wg, tg)
    idx = idx.reshape(p.B, p.G)
    base = p.m + torch.arange(p.G, device=idx.device) * p.n
    anchors = torch.where(idx >= 0, idx + base, torch.full_like(idx, -1))
    none = torch.full((p.B,), -1, dtype=torch.long, device=idx.device)
    return _Solution(k=none, a=none, anchors=anchors)


def _anchored_rows(p: _Problem, rows: Tensor, anchor_entries: Tensor) -> tuple[Tensor, Tensor]:
    """x, y of problem rows ``rows`` (C,) with each group's anchor entry (C, G) subtracted from its group."""
    X, Y = p.xs[rows].clone(), p.ys[rows].clone()
    Xg, Yg = p.groups(X), p.groups(Y)  # views into X, Y
    Xg -= X.gather(1, anchor_entries).unsqueeze(-1)
    Yg -= Y.gather(1, anchor_entries).unsqueeze(-1)
    return X, Y


def _segment_argmin(values: Tensor, seg: Tensor, B: int) -> tuple[Tensor, Tensor]:
    """Per segment (0..B-1) minimum of ``values`` and the first position attaining it (-1 if empty)."""
    inf = torch.full((B,), float("inf"), dtype=values.dtype, device=values.device)
    mins = inf.scatter_reduce(0, seg, values, reduce="amin", include_self=True)
    K = values.shape[0]
    pos = torch.arange(K, device=values.device)
    at_min = values <= mins[seg]
    first = torch.full((B,), K, dtype=torch.long, device=values.device)
    first = first.scatter_reduce(0, seg, torch.where(at_min, pos, torch.full_like(pos, K)), reduce="amin")
    return mins, torch.where(first < K, first, torch.full_like(first, -1))


def _solve_anchor_enumeration(p: _Problem, chunk_elements: int) -> _Solution:
    """Anchor points i (valid in every group): zero residual on entries m + g n + i for all g, then the
    1-D core over all anchored entries. Exact for G = 1 (untruncated and truncated)."""
    dev = p.xs.device
    point_ok = p.groups(p.ws > 0).all(dim=1)  # (B, n)
    b_idx, i_idx = point_ok.nonzero(as_tuple=True)
    base = p.m + torch.arange(p.G, device=dev) * p.n
    rows = max(1, chunk_elements // max(1, p.E))
    losses, ks = [], []
    for c in range(0, b_idx.shape[0], rows):
        b, i = b_idx[c:c + rows], i_idx[c:c + rows]
        X, Y = _anchored_rows(p, b, i.unsqueeze(1) + base)
        _, loss, k = _search_1d(X, Y, p.ws[b], None if p.taus is None else p.taus[b])
        losses.append(loss)
        ks.append(k)
    none = torch.full((p.B,), -1, dtype=torch.long, device=dev)
    if not losses:
        return _Solution(k=none, a=none, anchors=none.unsqueeze(1).expand(p.B, p.G).clone())
    loss_all, k_all = torch.cat(losses), torch.cat(ks)
    _, best = _segment_argmin(loss_all, b_idx, p.B)
    ok = best >= 0
    bc = best.clamp_min(0)
    i_best = torch.where(ok, i_idx[bc], none)
    k = torch.where(ok, k_all[bc], none)
    anchors = torch.where(ok.unsqueeze(1), i_best.unsqueeze(1) + base, torch.full((p.B, p.G), -1, device=dev))
    return _Solution(k=k, a=_scale_pair_from_k(p, k, anchors), anchors=anchors)


def _solve_pair_enumeration(p: _Problem, chunk_elements: int) -> _Solution:
    """Exact truncated solver for any number of shift groups: s ranges over all pairwise slopes within a
    group and all ratios of unshifted entries; each candidate is scored with exact per-group truncated
    location solves. O(G n^2 * (G n log n + m))."""
    dev = p.xs.device
    B, G, n, m = p.B, p.G, p.n, p.m
    pairs = B * G * n * (n - 1) // 2
    if pairs > MAX_PAIR_CANDIDATES:
        raise InputError("method", f"the exact truncated solver with {G} shift groups enumerates every pair of "
                         f"samples (O(n^3 log n)); {pairs} candidate scales for n = {n} exceed "
                         f"{MAX_PAIR_CANDIDATES}. Subsample the problem or use method='anchor' (MoGe's solver).")
    ii, kk = torch.triu_indices(n, n, offset=1, device=dev)
    Xg, Wg = p.groups(p.xs), p.groups(p.ws)
    ok = (Wg[:, :, ii] > 0) & (Wg[:, :, kk] > 0) & (Xg[:, :, ii] != Xg[:, :, kk])  # (B, G, P)
    cb, cg, cp = ok.nonzero(as_tuple=True)
    cand_b = [cb]
    cand_k = [m + cg * n + kk[cp]]
    cand_a = [m + cg * n + ii[cp]]
    if m > 0:
        fb, fe = ((p.ws[:, :m] > 0) & (p.xs[:, :m] != 0)).nonzero(as_tuple=True)
        cand_b.append(fb)
        cand_k.append(fe)
        cand_a.append(torch.full_like(fe, -1))
    cb, ck, ca = torch.cat(cand_b), torch.cat(cand_k), torch.cat(cand_a)

    def slope(b: Tensor, k: Tensor, a: Tensor) -> Tensor:
        has_a = a >= 0
        ac = a.clamp_min(0)
        xa = torch.where(has_a, p.xs[b, ac], 0.0)
        ya = torch.where(has_a, p.ys[b, ac], 0.0)
        return (p.ys[b, k] - ya) / (p.xs[b, k] - xa)

    def group_locations(b: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        u = (p.groups(p.ys[b]) - s[:, None, None] * p.groups(p.xs[b])).reshape(-1, n)
        wg = p.groups(p.ws[b]).reshape(-1, n)
        tg = None if p.taus is None else p.groups(p.taus[b]).reshape(-1, n)
        t, idx = _location(u, wg, tg)
        loss = _objective(t, torch.ones_like(u), u, wg, tg).reshape(-1, G).sum(-1)
        return loss, idx.reshape(-1, G)

    rows = max(1, chunk_elements // max(1, p.E))
    losses = []
    for c in range(0, cb.shape[0], rows):
        b = cb[c:c + rows]
        s = slope(b, ck[c:c + rows], ca[c:c + rows])
        loss, _ = group_locations(b, s)
        if m > 0:
            tf = None if p.taus is None else p.taus[b, :m]
            loss = loss + _objective(s, p.xs[b, :m], p.ys[b, :m], p.ws[b, :m], tf)
        losses.append(loss)
    none = torch.full((B,), -1, dtype=torch.long, device=dev)
    if not losses:
        return _Solution(k=none, a=none, anchors=torch.full((B, G), -1, dtype=torch.long, device=dev))
    _, best = _segment_argmin(torch.cat(losses), cb, B)
    ok_b = best >= 0
    bc = best.clamp_min(0)
    k = torch.where(ok_b, ck[bc], none)
    a = torch.where(ok_b, ca[bc], none)
    s_best = torch.where(ok_b, slope(torch.arange(B, device=dev), k.clamp_min(0), a), 0.0)
    _, idx = group_locations(torch.arange(B, device=dev), s_best)
    base = m + torch.arange(G, device=dev) * n
    anchors = torch.where(idx >= 0, idx + base, torch.full_like(idx, -1))
    # the pair (k, a) defines s; the group anchors define the shifts at that s
    return _Solution(k=k, a=a, anchors=anchors)


def _convex_eval(p: _Problem, rows: Tensor, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Untruncated F(s) = min_t sum w |s x + t - y|, a subgradient dF/ds, and the median anchors (C, G)."""
    xs, ys, ws = p.xs[rows], p.ys[rows], p.ws[rows]
    C = rows.shape[0]
    F = torch.zeros(C, dtype=xs.dtype, device=xs.device)
    g = torch.zeros_like(F)
    if p.m > 0:
        r = s[:, None] * xs[:, :p.m] - ys[:, :p.m]
        F += (ws[:, :p.m] * r.abs()).sum(-1)
        g += (ws[:, :p.m] * xs[:, :p.m] * torch.sign(r)).sum(-1)
    Xg, Yg, Wg = p.groups(xs), p.groups(ys), p.groups(ws)
    u = Yg - s[:, None, None] * Xg
    t, idx = _location(u.reshape(-1, p.n), Wg.reshape(-1, p.n), None)
    r = t.reshape(C, p.G, 1) - u  # residuals s x + t - y, exactly 0 on ties with the median sample
    pos, neg, zero = (r > 0) & (Wg > 0), (r < 0) & (Wg > 0), (r == 0) & (Wg > 0)
    F += (Wg * r.abs()).sum((-1, -2))
    P = (Wg * pos).sum(-1)
    N = (Wg * neg).sum(-1)
    Z = (Wg * zero).sum(-1)
    # split the zero-residual entries' sign so that the t-component of the subgradient vanishes
    sigma = torch.where(Z > 0, ((N - P) / torch.where(Z > 0, Z, 1.0)).clamp(-1, 1), 0.0)
    g += (Wg * Xg * torch.sign(r)).sum((-1, -2)) + (sigma * (Wg * Xg * zero).sum(-1)).sum(-1)
    base = p.m + torch.arange(p.G, device=xs.device) * p.n
    idx = idx.reshape(C, p.G)
    anchors = torch.where(idx >= 0, idx + base, torch.full_like(idx, -1))
    return F, g, anchors


def _initial_scale(p: _Problem) -> tuple[Tensor, Tensor]:
    """A robust first guess: the 1-D core on group-median-centred entries; and a step size for bracketing."""
    X, Y = p.xs.clone(), p.ys.clone()
    Wg = p.groups(p.ws).reshape(-1, p.n)
    mx, _ = _location(p.groups(X).reshape(-1, p.n), Wg, None)
    my, _ = _location(p.groups(Y).reshape(-1, p.n), Wg, None)
    p.groups(X).sub_(mx.reshape(p.B, p.G, 1))
    p.groups(Y).sub_(my.reshape(p.B, p.G, 1))
    X = torch.where(p.ws > 0, X, 0.0)
    Y = torch.where(p.ws > 0, Y, 0.0)
    s0, _, _ = _search_1d(X, Y, p.ws, None)
    sx, sy = (p.ws * X.abs()).sum(-1), (p.ws * Y.abs()).sum(-1)
    ratio = torch.where(sx > 0, sy / torch.where(sx > 0, sx, 1.0), 1.0)
    step = torch.maximum(s0.abs(), ratio).clamp_min(1e-30)
    return s0, step


def _solve_convex(p: _Problem) -> _Solution:
    """Exact untruncated scale + grouped shifts: bracketing + 1-D cutting planes on the convex F(s), then
    an anchored exact step that lands on an optimal vertex."""
    B, dev = p.B, p.xs.device
    allrows = torch.arange(B, device=dev)
    s0, step = _initial_scale(p)
    F0, g0, anc0 = _convex_eval(p, allrows, s0)
    best_s, best_F, best_anc = s0.clone(), F0.clone(), anc0.clone()
    nan = torch.full_like(s0, float("nan"))
    lo, Flo, glo = torch.where(g0 < 0, s0, nan), F0.clone(), g0.clone()
    hi, Fhi, ghi = torch.where(g0 > 0, s0, nan), F0.clone(), g0.clone()
    done = g0 == 0
    scale_F = (p.ws * (p.ys.abs() + (s0.abs() + step)[:, None] * p.xs.abs())).sum(-1)

    def record(rows: Tensor, s: Tensor, F: Tensor, anc: Tensor) -> None:
        better = F < best_F[rows]
        r = rows[better]
        best_s[r], best_F[r], best_anc[r] = s[better], F[better], anc[better]

    # bracket: expand geometrically until the subgradient changes sign
    for _ in range(64):
        need_hi = ~done & torch.isnan(hi)
        need_lo = ~done & torch.isnan(lo)
        need = need_hi | need_lo
        if not need.any():
            break
        rows = need.nonzero().squeeze(1)
        trial = torch.where(need_hi[rows], s0[rows] + step[rows], s0[rows] - step[rows])
        F, g, anc = _convex_eval(p, rows, trial)
        record(rows, trial, F, anc)
        zero = g == 0
        done[rows[zero]] = True
        up = need_hi[rows] & ~zero
        dn = need_lo[rows] & ~zero
        set_hi = (up & (g > 0)) | (dn & (g > 0))
        set_lo = (dn & (g < 0)) | (up & (g < 0))
        hi[rows[set_hi]], Fhi[rows[set_hi]], ghi[rows[set_hi]] = trial[set_hi], F[set_hi], g[set_hi]
        lo[rows[set_lo]], Flo[rows[set_lo]], glo[rows[set_lo]] = trial[set_lo], F[set_lo], g[set_lo]
        step[rows] *= 4.0
    done |= torch.isnan(lo) | torch.isnan(hi)  # no sign change found (flat objective): keep the best seen

    # cutting planes: the two cuts meet at s_x with model value m_x <= min F; stop when F(s_x) ~= m_x
    for _ in range(MAX_CUTTING_PLANE_ITERS):
        if done.all():
            break
        rows = (~done).nonzero().squeeze(1)
        l, h = lo[rows], hi[rows]
        sx = (Fhi[rows] - Flo[rows] + glo[rows] * l - ghi[rows] * h) / (glo[rows] - ghi[rows])
        sx = torch.minimum(torch.maximum(sx, l), h)
        model = torch.maximum(Flo[rows] + glo[rows] * (sx - l), Fhi[rows] + ghi[rows] * (sx - h))
        F, g, anc = _convex_eval(p, rows, sx)
        record(rows, sx, F, anc)
        tol = 1e-12 * F.abs() + 1e-14 * scale_F[rows]
        fin = (F - model <= tol) | (g == 0) | (h - l <= 1e-15 * torch.maximum(l.abs(), h.abs()))
        done[rows[fin]] = True
        up = ~fin & (g > 0)
        dn = ~fin & (g < 0)
        hi[rows[up]], Fhi[rows[up]], ghi[rows[up]] = sx[up], F[up], g[up]
        lo[rows[dn]], Flo[rows[dn]], glo[rows[dn]] = sx[dn], F[dn], g[dn]

    # anchored final step from the best scale: exact 1-D solve with the median anchors held fixed
    ok = (best_anc >= 0).all(-1)
    anc = torch.where(best_anc >= 0, best_anc, p.m + torch.arange(p.G, device=dev) * p.n)
    X, Y = _anchored_rows(p, allrows, anc)
    _, _, k = _search_1d(X, Y, p.ws, None)
    anchors = torch.where(best_anc >= 0, best_anc, torch.full_like(best_anc, -1))
    k = torch.where(ok, k, torch.full_like(k, -1))
    return _Solution(k=k, a=_scale_pair_from_k(p, k, anchors), anchors=anchors)


def _reexpress(p: _Problem, sol: _Solution, fixed_scale: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Scale (B,), shifts (B, G) and loss (B,) from the selected samples, in the input dtype with grad."""
    x, y = p.x, p.y

    def take(t: Tensor, idx: Tensor) -> Tensor:
        return t.gather(1, idx.clamp_min(0).reshape(idx.shape[0], -1)).reshape(idx.shape)

    if fixed_scale:
        s = torch.ones(p.B, dtype=x.dtype, device=x.device)
    else:
        has_k, has_a = sol.k >= 0, sol.a >= 0
        xk, yk = take(x, sol.k), take(y, sol.k)
        xa = torch.where(has_a, take(x, sol.a), torch.zeros_like(xk))
        ya = torch.where(has_a, take(y, sol.a), torch.zeros_like(yk))
        den = xk - xa
        s = torch.where(has_k, (yk - ya) / torch.where(has_k, den, torch.ones_like(den)),
                        torch.zeros_like(den))
    if p.G > 0:
        has = sol.anchors >= 0
        t = torch.where(has, take(y, sol.anchors) - s.unsqueeze(1) * take(x, sol.anchors),
                        torch.zeros(p.B, p.G, dtype=x.dtype, device=x.device))
        t_e = torch.cat([torch.zeros(p.B, p.m, dtype=x.dtype, device=x.device),
                         t.repeat_interleave(p.n, dim=1)], dim=1)
    else:
        t = torch.zeros(p.B, 0, dtype=x.dtype, device=x.device)
        t_e = torch.zeros_like(x)
    zero = torch.zeros_like(x)
    r = p.w * (s.unsqueeze(1) * torch.where(p.valid, x, zero) + t_e - torch.where(p.valid, y, zero)).abs()
    if p.tau is not None:
        r = torch.minimum(r, p.tau)
    return s, t, r.sum(-1)


def _solve(p: _Problem, trunc: bool, method: Method, chunk_elements: int, fixed_scale: bool = False):
    if method not in ("exact", "anchor"):
        raise InputError("method", f"unknown alignment method {method!r}; use 'exact' or 'anchor'")
    with torch.no_grad():
        if fixed_scale:
            sol = _solve_shift_only(p)
        elif p.G == 0:
            sol = _solve_scale_only(p)
        elif not trunc and method == "exact":
            sol = _solve_convex(p)
        elif method == "anchor" or p.G == 1:
            sol = _solve_anchor_enumeration(p, chunk_elements)
        else:
            sol = _solve_pair_enumeration(p, chunk_elements)
    s, t, loss = _reexpress(p, sol, fixed_scale)
    if fixed_scale:
        valid = (sol.anchors >= 0).all(-1)
    else:
        valid = (sol.k >= 0) & ((sol.anchors >= 0).all(-1) if p.G > 0 else torch.ones_like(sol.k, dtype=torch.bool))
    return s, t, loss, valid


# ----------------------------------------------------------------------------------------------------------
# public models


def _prep_depth(pred: Tensor, gt: Tensor, weight: Optional[Tensor], trunc: Trunc, name: str):
    if pred.shape != gt.shape:
        raise InputError(f"{name}.gt", f"shape {tuple(gt.shape)} differs from pred {tuple(pred.shape)}")
    if pred.ndim < 1:
        raise InputError(f"{name}.pred", "expected shape (*batch, n)")
    if weight is None:
        weight = torch.ones_like(pred)
    weight = torch.as_tensor(weight, dtype=pred.dtype, device=pred.device).expand_as(pred)
    _check_weight(weight, f"{name}.weight")
    batch, n = pred.shape[:-1], pred.shape[-1]
    B = math.prod(batch)
    tau = _as_trunc(trunc, pred, f"{name}.trunc")
    tau = None if tau is None else tau.expand_as(pred).reshape(B, n)
    return batch, n, pred.reshape(B, n), gt.reshape(B, n), weight.reshape(B, n), tau


def _prep_points(pred: Tensor, gt: Tensor, weight: Optional[Tensor], trunc: Trunc, name: str):
    """Returns batch shape, N and coordinate-major (B, 3N) entries: entry c*N + i is coordinate c of point i."""
    if pred.shape != gt.shape:
        raise InputError(f"{name}.gt", f"shape {tuple(gt.shape)} differs from pred {tuple(pred.shape)}")
    if pred.ndim < 2 or pred.shape[-1] != 3:
        raise InputError(f"{name}.pred", f"expected shape (*batch, N, 3), got {tuple(pred.shape)}")
    batch, N = pred.shape[:-2], pred.shape[-2]
    B = math.prod(batch)

    def per_coord(t: Optional[Tensor], what: str) -> Optional[Tensor]:
        if t is None:
            return None
        t = torch.as_tensor(t, dtype=pred.dtype, device=pred.device)
        if t.ndim >= 1 and t.shape == pred.shape:  # per coordinate
            full = t
        else:  # per point (*batch, N) or scalar
            try:
                full = t.unsqueeze(-1).expand_as(pred) if t.ndim > 0 else t.expand_as(pred)
            except RuntimeError as e:
                raise InputError(f"{name}.{what}", f"shape {tuple(t.shape)} fits neither (*batch, N) nor "
                                 f"(*batch, N, 3) of pred {tuple(pred.shape)}") from e
        return full.reshape(B, N, 3).transpose(1, 2).reshape(B, 3 * N)

    w = per_coord(torch.ones(pred.shape[:-1], dtype=pred.dtype, device=pred.device)
                  if weight is None else weight, "weight")
    _check_weight(w, f"{name}.weight")
    tau = _as_trunc(trunc, pred, f"{name}.trunc")
    tau = per_coord(tau, "trunc")

    def flat(t: Tensor) -> Tensor:
        return t.reshape(B, N, 3).transpose(1, 2).reshape(B, 3 * N)

    return batch, N, flat(pred), flat(gt), w, tau


def align_depth_scale(pred: Tensor, gt: Tensor, weight: Optional[Tensor] = None, trunc: Trunc = None) -> Alignment:
    """``gt ~= s * pred`` for depth samples (*batch, n); weighted median of ratios (ROE core). O(n log n)."""
    batch, n, x, y, w, tau = _prep_depth(pred, gt, weight, trunc, "align_depth_scale")
    p = _make_problem(x, y, w, tau, m=n, G=0, n=0)
    s, _, loss, valid = _solve(p, tau is not None, "exact", DEFAULT_CHUNK_ELEMENTS)
    return Alignment(s.reshape(batch), torch.zeros_like(s).reshape(batch), loss.reshape(batch), valid.reshape(batch))


def align_depth_affine(pred: Tensor, gt: Tensor, weight: Optional[Tensor] = None, trunc: Trunc = None,
                       method: Method = "exact", chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Alignment:
    """``gt ~= s * pred + t`` for depth samples (*batch, n). Exact global optimum for every setting:
    untruncated ``exact`` uses cutting planes on the convex profile, O(K n log n); truncated (or
    ``method='anchor'``) enumerates anchors, O(n^2 log n)."""
    batch, n, x, y, w, tau = _prep_depth(pred, gt, weight, trunc, "align_depth_affine")
    p = _make_problem(x, y, w, tau, m=0, G=1, n=n)
    s, t, loss, valid = _solve(p, tau is not None, method, chunk_elements)
    return Alignment(s.reshape(batch), t[:, 0].reshape(batch), loss.reshape(batch), valid.reshape(batch))


def align_points_scale(pred: Tensor, gt: Tensor, weight: Optional[Tensor] = None, trunc: Trunc = None) -> Alignment:
    """``gt ~= s * pred`` for points (*batch, N, 3); weight per point (*batch, N) or per coordinate."""
    batch, N, x, y, w, tau = _prep_points(pred, gt, weight, trunc, "align_points_scale")
    p = _make_problem(x, y, w, tau, m=3 * N, G=0, n=0)
    s, _, loss, valid = _solve(p, tau is not None, "exact", DEFAULT_CHUNK_ELEMENTS)
    shift = torch.zeros(*batch, 3, dtype=s.dtype, device=s.device)
    return Alignment(s.reshape(batch), shift, loss.reshape(batch), valid.reshape(batch))


def align_points_scale_z_shift(pred: Tensor, gt: Tensor, weight: Optional[Tensor] = None, trunc: Trunc = None,
                               method: Method = "exact",
                               chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Alignment:
    """``gt ~= s * pred + (0, 0, t)`` for points (*batch, N, 3) (MoGe's affine-invariant point map).
    Exact for every setting (see ``align_depth_affine`` for costs)."""
    batch, N, x, y, w, tau = _prep_points(pred, gt, weight, trunc, "align_points_scale_z_shift")
    p = _make_problem(x, y, w, tau, m=2 * N, G=1, n=N)
    s, t, loss, valid = _solve(p, tau is not None, method, chunk_elements)
    zeros = torch.zeros_like(t[:, 0])
    shift = torch.stack([zeros, zeros, t[:, 0]], dim=-1)
    return Alignment(s.reshape(batch), shift.reshape(*batch, 3), loss.reshape(batch), valid.reshape(batch))


def align_points_scale_xyz_shift(pred: Tensor, gt: Tensor, weight: Optional[Tensor] = None, trunc: Trunc = None,
                                 method: Method = "exact",
                                 chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Alignment:
    """``gt ~= s * pred + t`` (t in R^3) for points (*batch, N, 3).

    ``method='exact'``: global optimum; untruncated O(K N log N) (cutting planes), truncated
    O(N^3 log N) (pairwise-slope enumeration; small N only). ``method='anchor'``: MoGe's point-anchor
    enumeration, O(N^2 log N), an upper bound on the optimum (not always optimal).
    """
    batch, N, x, y, w, tau = _prep_points(pred, gt, weight, trunc, "align_points_scale_xyz_shift")
    p = _make_problem(x, y, w, tau, m=0, G=3, n=N)
    s, t, loss, valid = _solve(p, tau is not None, method, chunk_elements)
    return Alignment(s.reshape(batch), t.reshape(*batch, 3), loss.reshape(batch), valid.reshape(batch))


def align_points_z_shift(pred: Tensor, gt: Tensor, weight: Optional[Tensor] = None, trunc: Trunc = None) -> Alignment:
    """``gt ~= pred + (0, 0, t)``: (truncated) weighted median of z differences. O(N log N)."""
    batch, N, x, y, w, tau = _prep_points(pred, gt, weight, trunc, "align_points_z_shift")
    p = _make_problem(x, y, w, tau, m=2 * N, G=1, n=N)
    s, t, loss, valid = _solve(p, tau is not None, "exact", DEFAULT_CHUNK_ELEMENTS, fixed_scale=True)
    zeros = torch.zeros_like(t[:, 0])
    shift = torch.stack([zeros, zeros, t[:, 0]], dim=-1)
    return Alignment(s.reshape(batch), shift.reshape(*batch, 3), loss.reshape(batch), valid.reshape(batch))


def align_points_xyz_shift(pred: Tensor, gt: Tensor, weight: Optional[Tensor] = None, trunc: Trunc = None) -> Alignment:
    """``gt ~= pred + t``: per-coordinate (truncated) weighted median of differences. O(N log N)."""
    batch, N, x, y, w, tau = _prep_points(pred, gt, weight, trunc, "align_points_xyz_shift")
    p = _make_problem(x, y, w, tau, m=0, G=3, n=N)
    s, t, loss, valid = _solve(p, tau is not None, "exact", DEFAULT_CHUNK_ELEMENTS, fixed_scale=True)
    return Alignment(s.reshape(batch), t.reshape(*batch, 3), loss.reshape(batch), valid.reshape(batch))


# ----------------------------------------------------------------------------------------------------------
# simple alternatives (ablations)


def align_affine_lstsq(x: Tensor, y: Tensor, w: Optional[Tensor] = None) -> Alignment:
    """Weighted least squares ``min_{s,t} sum_i w_i (s x_i + t - y_i)^2`` over (*batch, n), closed form on
    weighted-centred moments (differentiable). Entries with w = 0 or non-finite values are ignored;
    ``valid`` is False when the weighted variance of x is 0. ``loss`` is the weighted sum of squares."""
    if w is None:
        w = torch.ones_like(x)
    x, y, w = torch.broadcast_tensors(x, y, w)
    _check_weight(w, "align_affine_lstsq.w")
    ok = torch.isfinite(x) & torch.isfinite(y) & torch.isfinite(w) & (w > 0)
    zero = torch.zeros_like(x)
    x, y, w = torch.where(ok, x, zero), torch.where(ok, y, zero), torch.where(ok, w, zero)
    sw = w.sum(-1, keepdim=True)
    sw_safe = torch.where(sw > 0, sw, torch.ones_like(sw))
    mx, my = (w * x).sum(-1, keepdim=True) / sw_safe, (w * y).sum(-1, keepdim=True) / sw_safe
    xc, yc = torch.where(ok, x - mx, zero), torch.where(ok, y - my, zero)
    vxx, vxy = (w * xc * xc).sum(-1), (w * xc * yc).sum(-1)
    valid = vxx > 0
    s = torch.where(valid, vxy / torch.where(valid, vxx, torch.ones_like(vxx)), torch.zeros_like(vxx))
    t = my.squeeze(-1) - s * mx.squeeze(-1)
    loss = (w * (s.unsqueeze(-1) * x + t.unsqueeze(-1) - y) ** 2).sum(-1)
    return Alignment(s, t, loss, valid)


def align_median_scale(x: Tensor, y: Tensor, mask: Optional[Tensor] = None) -> Alignment:
    """Median scaling ``s = median(y) / median(x)`` over valid entries of (*batch, n) (lower median for an
    even count, as ``torch.nanmedian``). ``loss`` is the unweighted L1 residual after scaling."""
    ok = torch.isfinite(x) & torch.isfinite(y)
    if mask is not None:
        ok = ok & mask.bool()
    nan = torch.full_like(x, float("nan"))
    mx = torch.where(ok, x, nan).nanmedian(-1).values
    my = torch.where(ok, y, nan).nanmedian(-1).values
    valid = ok.any(-1) & (mx != 0)
    s = torch.where(valid, my / torch.where(valid, mx, torch.ones_like(mx)), torch.zeros_like(mx))
    loss = torch.where(ok, (s.unsqueeze(-1) * x - y).abs(), torch.zeros_like(x)).sum(-1)
    return Alignment(s, torch.zeros_like(s), loss, valid)
