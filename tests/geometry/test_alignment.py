"""ROE alignment: optimality against independent references (exhaustive breakpoint search in NumPy,
scipy's linprog), masks, batching, gradients, ablation alternatives."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from scipy import sparse
from scipy.optimize import linprog

from feat2gs.errors import InputError
from feat2gs.geometry import alignment as al

RTOL = 1e-6


pytestmark = pytest.mark.usefixtures("single_thread")  # thread count does not change results


# ----------------------------------------------------------------------------------------------------------
# independent references (NumPy / SciPy)


def _rho(r: np.ndarray, tau: float | None) -> np.ndarray:
    return r if tau is None else np.minimum(r, tau)


def brute_core(x, y, w, tau):
    """min_a sum rho(w|a x - y|) by evaluating every breakpoint a = y_j / x_j."""
    ok = (w > 0) & (x != 0)
    if not ok.any():
        return float(_rho(w * np.abs(y), tau).sum())
    a = y[ok] / x[ok]
    cost = _rho(w[None] * np.abs(a[:, None] * x[None] - y[None]), tau).sum(1)
    return float(cost.min())


def brute_model(P, G, w, tau, shifted):
    """Exhaustive optimum of sum_{i,c} rho(w_i |s P_ic + t_c [c shifted] - G_ic|) over s and the shifts.

    P, G (N, C); the optimum has s at a pairwise slope within a shifted coordinate or a ratio G/P in an
    unshifted one; for each candidate s every shift is optimised exhaustively over its breakpoints."""
    N, C = P.shape
    if N == 0:
        return 0.0
    cands = []
    for c in range(C):
        if c in shifted:
            i, k = np.triu_indices(N, 1)
            ok = (w[i] > 0) & (w[k] > 0) & (P[i, c] != P[k, c])
            cands.append((G[k, c] - G[i, c])[ok] / (P[k, c] - P[i, c])[ok])
        else:
            ok = (w > 0) & (P[:, c] != 0)
            cands.append(G[ok, c] / P[ok, c])
    s = np.concatenate(cands)
    if s.size == 0:
        s = np.zeros(1)
    total = np.zeros(s.size)
    valid = w > 0
    for c in range(C):
        U = G[None, :, c] - s[:, None] * P[None, :, c]  # (K, N): residual of t = 0 is -U
        if c in shifted:
            # shift t = U_j for every valid anchor j
            cost = _rho(w[None, None, :] * np.abs(U[:, valid][:, :, None] - U[:, None, :]), tau).sum(-1)
            total += cost.min(1)
        else:
            total += _rho(w[None] * np.abs(U), tau).sum(1)
    return float(total.min())


def lp_model(P, G, w, shifted):
    """Untruncated optimum by linear programming: variables (s, t_c for shifted c, e_ic >= 0)."""
    N, C = P.shape
    if N == 0:
        return 0.0
    valid = w > 0
    rows_x, rows_y, rows_w = [], [], []
    nt = len(shifted)
    for c in range(C):
        A = np.zeros((N, 1 + nt))
        A[:, 0] = P[:, c]
        if c in shifted:
            A[:, 1 + shifted.index(c)] = 1
        rows_x.append(A[valid])
        rows_y.append(G[valid, c])
        rows_w.append(w[valid])
    A, y, ww = np.concatenate(rows_x), np.concatenate(rows_y), np.concatenate(rows_w)
    m, p = A.shape
    cost = np.r_[np.zeros(p), ww]
    eye = sparse.identity(m, format="csr")
    A_ub = sparse.vstack([sparse.hstack([A, -eye]), sparse.hstack([-A, -eye])], format="csr")
    res = linprog(cost, A_ub=A_ub, b_ub=np.r_[y, -y], bounds=[(None, None)] * p + [(0, None)] * m,
                  method="highs")
    assert res.status == 0
    return float(res.fun)


def objective_np(scale, shift, P, G, w, tau):
    """Objective of a returned alignment, recomputed independently."""
    return float(_rho(w[:, None] * np.abs(scale * P + shift - G), tau).sum())


# ----------------------------------------------------------------------------------------------------------
# random problems: a batch padded with masked entries (weight 0 and NaN garbage)


def random_batch(rng, B, nmax, C, outliers=0.3, nmin=2):
    P = np.zeros((B, nmax, C))
    G = np.zeros((B, nmax, C))
    w = np.zeros((B, nmax))
    for b in range(B):
        n = rng.integers(nmin, nmax + 1)
        p = rng.normal(size=(n, C)) * rng.uniform(0.5, 3) + rng.normal(size=C)
        s, t = rng.uniform(0.3, 3) * rng.choice([1, -1], p=[0.9, 0.1]), rng.normal(size=C)
        g = s * p + t + 0.05 * rng.normal(size=(n, C))
        bad = rng.random(n) < outliers
        g[bad] += rng.normal(size=(bad.sum(), C)) * 5
        ww = rng.uniform(0.1, 2, size=n)
        ww[rng.random(n) < 0.1] = 0.0  # masked samples inside the problem
        if rng.random() < 0.1:  # ties: duplicated samples
            p[-1], g[-1] = p[0], g[0]
        P[b, :n], G[b, :n], w[b, :n] = p, g, ww
        P[b, n:] = rng.normal(size=(nmax - n, C)) * 100  # garbage that must be ignored
        G[b, n:] = np.nan
    return P, G, w


def as_t(*arrays):
    return [torch.tensor(a, dtype=torch.float64) for a in arrays]


# ----------------------------------------------------------------------------------------------------------
# optimality


@pytest.mark.parametrize("tau", [None, 0.4])
def test_core_is_optimal(tau):
    rng = np.random.default_rng(1 if tau is None else 2)
    P, G, w = random_batch(rng, 300, 30, 1)
    x, y = P[..., 0], G[..., 0]
    x[:, 3] = np.where(rng.random(300) < 0.2, 0.0, x[:, 3])  # x = 0 entries are constants of the objective
    res = al.align(*as_t(x, y, w), trunc=tau)
    a = res.value.numpy()
    for b in range(300):
        ok = np.isfinite(y[b]) & (w[b] > 0)
        bf = brute_core(x[b, ok], y[b, ok], w[b, ok], tau)
        got = float(_rho(w[b, ok] * np.abs(a[b] * x[b, ok] - y[b, ok]), tau).sum())
        assert got <= bf * (1 + RTOL) + 1e-12, (b, got, bf)
        assert got >= bf * (1 - 1e-9) - 1e-12
        assert res.loss[b].item() == pytest.approx(got, rel=1e-9, abs=1e-12)
        if res.index[b] >= 0:  # the minimiser is a breakpoint y_k / x_k of a valid sample
            k = int(res.index[b])
            assert ok[k] and a[b] == pytest.approx(y[b, k] / x[b, k], rel=1e-12)


MODELS = {
    # name: (function, number of coordinates, shifted coordinates)
    "depth_scale": (al.align_depth_scale, 1, []),
    "depth_affine": (al.align_depth_affine, 1, [0]),
    "points_scale": (al.align_points_scale, 3, []),
    "points_scale_z_shift": (al.align_points_scale_z_shift, 3, [2]),
    "points_scale_xyz_shift": (al.align_points_scale_xyz_shift, 3, [0, 1, 2]),
}


def _call(name, P, G, w, tau, **kw):
    fn, C, _ = MODELS[name]
    Pt, Gt, wt = as_t(P, G, w)
    if C == 1:
        return fn(Pt[..., 0], Gt[..., 0], wt, trunc=tau, **kw)
    return fn(Pt, Gt, wt, trunc=tau, **kw)


def _params(res, C):
    s = res.scale.numpy()
    t = res.shift.numpy()
    return s, (t[:, None] if C == 1 else t)


# every model with its default solver, plus MoGe's anchor enumeration where it is exact (one shift group);
# for the xyz shift it is not optimal (test_anchor_xyz_is_an_upper_bound)
CASES = [(name, "exact") for name in MODELS] + [("depth_affine", "anchor"), ("points_scale_z_shift", "anchor")]


@pytest.mark.parametrize("name,method", CASES)
def test_untruncated_models_match_linprog(name, method):
    fn, C, shifted = MODELS[name]
    rng = np.random.default_rng(zlib.crc32(f"{name}-{method}".encode()))
    B = 200 if method == "exact" else 60
    P, G, w = random_batch(rng, B, 16 if C == 3 else 30, C, nmin=3)
    kw = {} if not shifted else {"method": method}
    res = _call(name, P, G, w, None, **kw)
    s, t = _params(res, C)
    for b in range(B):
        ok = np.isfinite(G[b]).all(-1) & (w[b] > 0)
        ref = lp_model(P[b, ok], G[b, ok], w[b, ok], shifted)
        got = objective_np(s[b], t[b], P[b, ok], G[b, ok], w[b, ok], None)
        assert got <= ref * (1 + RTOL) + 1e-9, (name, b, got, ref)
        assert got >= ref * (1 - 1e-6) - 1e-9
        assert res.loss[b].item() == pytest.approx(got, rel=1e-9)


@pytest.mark.parametrize("name,method", CASES)
def test_truncated_models_match_exhaustive_search(name, method):
    fn, C, shifted = MODELS[name]
    rng = np.random.default_rng(zlib.crc32(f"{name}-{method}-trunc".encode()))
    B, tau = (200 if method == "exact" else 60), 0.3
    P, G, w = random_batch(rng, B, 8 if len(shifted) == 3 else 12, C, outliers=0.4)
    kw = {} if not shifted else {"method": method}
    res = _call(name, P, G, w, tau, **kw)
    s, t = _params(res, C)
    for b in range(B):
        ok = np.isfinite(G[b]).all(-1) & (w[b] > 0)
        ref = brute_model(P[b, ok], G[b, ok], w[b, ok], tau, shifted)
        got = objective_np(s[b], t[b], P[b, ok], G[b, ok], w[b, ok], tau)
        assert got <= ref * (1 + RTOL) + 1e-12, (name, b, got, ref)
        assert got >= ref * (1 - 1e-9) - 1e-12
        assert res.loss[b].item() == pytest.approx(got, rel=1e-9, abs=1e-12)


def test_truncated_solution_not_beaten_by_random_search():
    """Independent of the breakpoint theory: dense random (s, t) never beats the solver."""
    rng = np.random.default_rng(7)
    P, G, w = random_batch(rng, 20, 10, 3, outliers=0.4, nmin=6)
    tau = 0.3
    res = _call("points_scale_xyz_shift", P, G, w, tau)
    for b in range(20):
        ok = np.isfinite(G[b]).all(-1) & (w[b] > 0)
        Pb, Gb, wb = P[b, ok], G[b, ok], w[b, ok]
        got = res.loss[b].item()
        s0, t0 = res.scale[b].item(), res.shift[b].numpy()
        s = np.r_[rng.normal(s0, 0.3, 3000), rng.uniform(-5, 5, 3000)]
        t = np.r_[t0 + rng.normal(0, 0.3, (3000, 3)), rng.uniform(-5, 5, (3000, 3))]
        vals = _rho(wb[None, :, None] * np.abs(s[:, None, None] * Pb[None] + t[:, None, :] - Gb[None]), tau)
        assert vals.sum((1, 2)).min() >= got - 1e-9


def test_anchor_xyz_is_an_upper_bound():
    """MoGe's point-anchor xyz solver never beats the exact one and is sometimes strictly worse."""
    rng = np.random.default_rng(11)
    P, G, w = random_batch(rng, 100, 12, 3, nmin=4)
    exact = _call("points_scale_xyz_shift", P, G, w, None)
    anchor = _call("points_scale_xyz_shift", P, G, w, None, method="anchor")
    assert (anchor.loss >= exact.loss * (1 - 1e-12)).all()
    assert (anchor.loss > exact.loss * (1 + 1e-6)).any()


@pytest.mark.parametrize("tau", [None, 0.3])
def test_shift_only_models(tau):
    rng = np.random.default_rng(5)
    P, G, w = random_batch(rng, 100, 15, 3)
    Pt, Gt, wt = as_t(P, G, w)
    for fn, shifted in ((al.align_points_z_shift, [2]), (al.align_points_xyz_shift, [0, 1, 2])):
        res = fn(Pt, Gt, wt, trunc=tau)
        assert (res.scale == 1).all() and res.valid.all()
        for b in range(100):
            ok = np.isfinite(G[b]).all(-1) & (w[b] > 0)
            ref = 0.0
            for c in range(3):
                u = G[b, ok, c] - P[b, ok, c]
                if c in shifted:
                    ref += min(_rho(w[b, ok] * np.abs(u - uj), tau).sum() for uj in u[w[b, ok] > 0])
                else:
                    ref += _rho(w[b, ok] * np.abs(u), tau).sum()
            got = objective_np(1.0, res.shift[b].numpy(), P[b, ok], G[b, ok], w[b, ok], tau)
            assert got == pytest.approx(ref, rel=1e-9)
            assert np.all(res.shift[b].numpy()[[c for c in range(3) if c not in shifted]] == 0)


# ----------------------------------------------------------------------------------------------------------
# exact recovery, masks, batching, dtypes


@pytest.mark.parametrize("tau", [None, 0.05])
def test_exact_recovery_with_outliers(tau):
    g = torch.Generator().manual_seed(0)
    n = 500 if tau is None else 40  # the exact truncated xyz solver is O(n^3 log n)
    gt = torch.rand(4, n, 3, generator=g, dtype=torch.float64) * 4 + torch.tensor([0.0, 0.0, 2.0],
                                                                                   dtype=torch.float64)
    s, t = torch.tensor([0.5, 2.0, 3.0, 0.8], dtype=torch.float64), torch.randn(4, 3, generator=g,
                                                                              dtype=torch.float64)
    pred = (gt - t[:, None]) / s[:, None, None]
    out = torch.rand(4, n, generator=g) < (0.2 if tau is None else 0.45)
    noise = torch.randn(int(out.sum()), 3, generator=g, dtype=torch.float64) * 3
    if tau is None:  # L1 tolerates gross errors in the target (no leverage); truncation also in the prediction
        w = 1 / gt.norm(dim=-1)
        gt[out] += noise
    else:
        pred[out] += noise
        w = 1 / gt.norm(dim=-1)
    r = al.align_points_scale_xyz_shift(pred, gt, w, trunc=tau)
    torch.testing.assert_close(r.scale, s, rtol=1e-10, atol=0)
    torch.testing.assert_close(r.shift, t, rtol=1e-9, atol=1e-9)
    rz = al.align_points_scale_z_shift(pred, gt, w, trunc=tau)
    assert rz.loss.ge(r.loss * (1 - 1e-12)).all()  # a z-shift is a restricted xyz shift
    rd = al.align_depth_affine(pred[..., 2], gt[..., 2], w, trunc=tau)
    torch.testing.assert_close(rd.scale, s, rtol=1e-10, atol=0)
    torch.testing.assert_close(rd.shift, t[:, 2], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(rd.apply(pred[..., 2])[~out], gt[..., 2][~out])


def test_masks_and_nonfinite_are_ignored():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(3, 200, generator=g, dtype=torch.float64) + 0.5
    gt = 2 * pred + 0.1 * torch.randn(3, 200, generator=g, dtype=torch.float64)
    w = torch.rand(3, 200, generator=g, dtype=torch.float64)
    keep = torch.rand(3, 200, generator=g) < 0.6
    pred_bad, gt_bad = pred.clone(), gt.clone()
    pred_bad[~keep] = torch.randn(int((~keep).sum()), generator=g, dtype=torch.float64) * 1e3
    gt_bad[~keep] = float("nan")
    for fn in (al.align_depth_scale, al.align_depth_affine):
        ref = [fn(pred[b][keep[b]], gt[b][keep[b]], w[b][keep[b]]) for b in range(3)]
        got = fn(pred_bad, gt_bad, torch.where(keep, w, 0.0))
        got2 = fn(pred_bad, gt_bad, w)  # NaN targets alone also mask
        for b in range(3):
            for r in (got, got2):
                assert r.scale[b].item() == pytest.approx(ref[b].scale.item(), rel=1e-12)
                assert r.shift[b].item() == pytest.approx(ref[b].shift.item(), rel=1e-9, abs=1e-12)
                assert r.loss[b].item() == pytest.approx(ref[b].loss.item(), rel=1e-9)


def test_degenerate_problems_are_flagged():
    z = torch.zeros(2, 5, dtype=torch.float64)
    r = al.align_depth_affine(torch.ones(2, 5, dtype=torch.float64), torch.rand(2, 5, dtype=torch.float64),
                              torch.stack([torch.ones(5), torch.zeros(5)]).double())
    assert not r.valid.any()  # constant prediction / no valid sample: no scale determined
    r = al.align_depth_scale(torch.rand(2, 5, dtype=torch.float64), torch.rand(2, 5, dtype=torch.float64), z)
    assert not r.valid.any() and (r.scale == 0).all()


@pytest.mark.parametrize("name", ["depth_affine", "points_scale_z_shift", "points_scale_xyz_shift"])
@pytest.mark.parametrize("tau", [None, 0.3])
def test_batched_equals_per_item_and_batch_shapes(name, tau):
    fn, C, _ = MODELS[name]
    rng = np.random.default_rng(3)
    P, G, w = random_batch(rng, 6, 10, C, nmin=10)
    res = _call(name, P, G, w, tau)
    for b in range(6):
        one = _call(name, P[b:b + 1], G[b:b + 1], w[b:b + 1], tau)
        assert one.loss.item() == pytest.approx(res.loss[b].item(), rel=1e-12)
        assert one.scale.item() == pytest.approx(res.scale[b].item(), rel=1e-9)
    # leading batch dims (2, 3)
    Pt, Gt, wt = as_t(P, G, w)
    if C == 1:
        Pt, Gt = Pt[..., 0], Gt[..., 0]
    r2 = fn(Pt.reshape(2, 3, *Pt.shape[1:]), Gt.reshape(2, 3, *Gt.shape[1:]), wt.reshape(2, 3, -1), trunc=tau)
    assert r2.scale.shape == (2, 3)
    torch.testing.assert_close(r2.loss.reshape(6), res.loss)


def test_float32_inputs():
    g = torch.Generator().manual_seed(2)
    gt = torch.rand(8, 300, 3, generator=g) * 3 + torch.tensor([0.0, 0.0, 1.0])
    pred = (gt - torch.tensor([0.1, 0.2, 0.5])) / 1.5 + 0.01 * torch.randn(8, 300, 3, generator=g)
    r32 = al.align_points_scale_xyz_shift(pred, gt, 1 / gt.norm(dim=-1))
    r64 = al.align_points_scale_xyz_shift(pred.double(), gt.double(), 1 / gt.double().norm(dim=-1))
    assert r32.scale.dtype == torch.float32
    torch.testing.assert_close(r32.scale.double(), r64.scale, rtol=1e-5, atol=0)
    torch.testing.assert_close(r32.loss.double(), r64.loss, rtol=1e-4, atol=0)


def test_apply_shapes():
    r = al.Alignment(torch.tensor([2.0, 3.0]), torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]), torch.zeros(2),
                     torch.ones(2, dtype=torch.bool))
    p = torch.ones(2, 4, 5, 3)
    out = r.apply(p)
    assert out.shape == p.shape and out[0, 0, 0].tolist() == [3.0, 2.0, 2.0] and out[1, 1, 1].tolist() == [3, 3, 4]
    rd = al.Alignment(torch.tensor([2.0]), torch.tensor([1.0]), torch.zeros(1), torch.ones(1, dtype=torch.bool))
    assert rd.apply(torch.ones(1, 4, 5)).unique().tolist() == [3.0]


# ----------------------------------------------------------------------------------------------------------
# gradients


@pytest.mark.parametrize("name,tau", [("depth_affine", None), ("depth_affine", 0.3),
                                      ("points_scale_z_shift", None), ("points_scale_xyz_shift", None),
                                      ("points_scale_xyz_shift", 0.3), ("points_scale", 0.3)])
def test_gradients_reach_the_prediction(name, tau):
    fn, C, _ = MODELS[name]
    rng = np.random.default_rng(9)
    P, G, w = random_batch(rng, 1, 6, C, nmin=6, outliers=0.2)
    w[:] = np.maximum(w, 0.1)
    Pt, Gt, wt = as_t(P, G, w)
    if C == 1:
        Pt, Gt = Pt[..., 0], Gt[..., 0]

    def f(pred):
        r = fn(pred, Gt, wt, trunc=tau)
        return torch.cat([r.scale.reshape(-1), r.shift.reshape(-1)])

    pred = Pt.clone().requires_grad_(True)
    out = f(pred)
    out.sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    # the selection is locally constant, so the re-expressed parameters are smooth in the prediction
    assert torch.autograd.gradcheck(f, (Pt.clone().requires_grad_(True),), eps=1e-7, atol=1e-5)


def test_core_gradient_is_ratio_derivative():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[2.1, 3.9, 6.0, 20.0]], dtype=torch.float64)
    r = al.align(x, y)
    r.value.sum().backward()
    k = int(r.index)
    expected = torch.zeros_like(x)
    expected[0, k] = -y[0, k] / x[0, k] ** 2
    torch.testing.assert_close(x.grad, expected)


# ----------------------------------------------------------------------------------------------------------
# ablation alternatives and input errors


def test_lstsq_matches_numpy():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 50)), rng.normal(size=(5, 50))
    w = rng.uniform(0, 2, size=(5, 50))
    r = al.align_affine_lstsq(*as_t(x, y, w))
    for b in range(5):
        sw = np.sqrt(w[b])
        coef, *_ = np.linalg.lstsq(np.c_[x[b] * sw, sw], y[b] * sw, rcond=None)
        assert r.scale[b].item() == pytest.approx(coef[0], rel=1e-10)
        assert r.shift[b].item() == pytest.approx(coef[1], rel=1e-10, abs=1e-12)


def test_median_scale():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0, float("nan")]])
    y = torch.tensor([[2.0, 4.0, 6.0, 1.0, 5.0]])
    r = al.align_median_scale(x, y, torch.tensor([[True, True, True, False, True]]))
    assert r.scale.item() == pytest.approx(2.0)


def test_bad_inputs_raise():
    x = torch.rand(2, 5)
    with pytest.raises(InputError, match="weight"):
        al.align_depth_affine(x, x, -torch.ones(2, 5))
    with pytest.raises(InputError, match="gt"):
        al.align_depth_scale(x, torch.rand(2, 4))
    with pytest.raises(InputError, match="pred"):
        al.align_points_scale(torch.rand(2, 5, 2), torch.rand(2, 5, 2))
    with pytest.raises(InputError, match="method"):
        al.align_depth_affine(x, x, method="magic")
    with pytest.raises(InputError, match="trunc"):
        al.align_depth_scale(x, x, trunc=-1.0)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    rng = np.random.default_rng(12)
    P, G, w = random_batch(rng, 16, 64, 3, nmin=64)
    for tau in (None, 0.3):
        cpu = _call("points_scale_z_shift", P, G, w, tau)
        Pt, Gt, wt = (t.cuda() for t in as_t(P, G, w))
        gpu = al.align_points_scale_z_shift(Pt, Gt, wt, trunc=tau)
        torch.testing.assert_close(gpu.loss.cpu(), cpu.loss, rtol=1e-9, atol=1e-12)


def test_exact_truncated_xyz_refuses_huge_problems():
    x = torch.rand(1, 4000, 3, dtype=torch.float64)
    with pytest.raises(InputError, match="anchor"):
        al.align_points_scale_xyz_shift(x, x, trunc=0.1)
    assert al.align_points_scale_xyz_shift(x[:, :300], 2 * x[:, :300], trunc=0.1, method="anchor").scale.item() == \
        pytest.approx(2.0)
