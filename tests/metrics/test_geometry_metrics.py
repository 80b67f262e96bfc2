"""MoGe geometry metrics on real GT depth (scikit-image's Middlebury Motorcycle stereo pair): known
scale/shift perturbations give perfect scores; perturbed predictions match hand-computed formulas with
independently computed alignments (NumPy weighted medians, scipy linprog, NumPy least squares)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import sparse
from scipy.optimize import linprog

from feat2gs.errors import InputError
from feat2gs.metrics import geometry as gm

# Middlebury 2014 "Motorcycle" calibration at the resolution scikit-image ships
F_PX, CX, CY, DOFFS, BASELINE_MM = 994.978, 311.193, 254.877, 31.086, 193.001


pytestmark = pytest.mark.usefixtures("single_thread")  # thread count does not change results


@pytest.fixture(scope="module")
def moto():
    skdata = pytest.importorskip("skimage.data")
    try:
        _, _, disp = skdata.stereo_motorcycle()
    except Exception as e:  # pragma: no cover - data missing from the installation
        pytest.skip(f"stereo_motorcycle unavailable: {e}")
    disp = disp.astype(np.float64)
    mask = np.isfinite(disp)
    depth = np.where(mask, F_PX * BASELINE_MM / np.where(mask, disp + DOFFS, 1.0), 0.0)
    H, W = depth.shape
    j, i = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64), indexing="xy")
    pts = np.stack([(j - CX) / F_PX * depth, (i - CY) / F_PX * depth, depth], -1)
    return dict(disp=disp, mask=mask, depth=depth, points=pts, H=H, W=W)


@pytest.fixture(scope="module")
def moto2(moto):
    """Every second pixel of the real GT (keeps the tests fast; still real depth with real holes)."""
    return {k: (v[::2, ::2] if isinstance(v, np.ndarray) else v) for k, v in moto.items()}


def T(a):
    return torch.as_tensor(np.asarray(a))


# ----------------------------------------------------------------------------------------------------------
# independent references


def nearest_valid_subsample(mask, h, w):
    """Per target cell: the valid source pixel whose centre lies in the cell and is closest to the cell
    centre (ties: row-major first); cells without a source centre take the pixel under their centre."""
    H, W = mask.shape
    index = np.zeros((h, w), dtype=np.int64)
    valid = np.zeros((h, w), dtype=bool)
    ii, jj = np.arange(H) + 0.5, np.arange(W) + 0.5
    for a in range(h):
        rows = np.nonzero((ii >= a * H / h) & (ii < (a + 1) * H / h))[0]
        for b in range(w):
            cols = np.nonzero((jj >= b * W / w) & (jj < (b + 1) * W / w))[0]
            if rows.size == 0 or cols.size == 0:
                r = min(int((a + 0.5) * H / h), H - 1)
                c = min(int((b + 0.5) * W / w), W - 1)
                index[a, b], valid[a, b] = r * W + c, mask[r, c]
                continue
            R, C = np.meshgrid(rows, cols, indexing="ij")
            # squared distance to the cell centre in exact rationals (x 4 h^2 w^2) so ties are real ties
            d = (((2 * R + 1) * h - (2 * a + 1) * H) ** 2 * w * w
                 + ((2 * C + 1) * w - (2 * b + 1) * W) ** 2 * h * h).astype(np.float64)
            d = np.where(mask[R, C], d, np.inf)
            flat = (R * W + C).ravel()
            order = np.lexsort((flat, d.ravel()))
            if np.isfinite(d.ravel()[order[0]]):
                index[a, b], valid[a, b] = flat[order[0]], True
    return index, valid


def weighted_median(values, weights):
    o = np.argsort(values)
    c = np.cumsum(weights[o])
    return values[o][np.searchsorted(c, c[-1] / 2)]


def l1_lp(A, y, w):
    """min_b sum w |A b - y| by linear programming."""
    m, p = A.shape
    eye = sparse.identity(m, format="csr")
    A_ub = sparse.vstack([sparse.hstack([sparse.csr_matrix(A), -eye]),
                          sparse.hstack([sparse.csr_matrix(-A), -eye])], format="csr")
    res = linprog(np.r_[np.zeros(p), w], A_ub=A_ub, b_ub=np.r_[y, -y],
                  bounds=[(None, None)] * p + [(0, None)] * m, method="highs")
    assert res.status == 0
    return res.x[:p], res.fun


def depth_formulas(pred, gt, mask):
    p, g = pred[mask], gt[mask]
    rel = np.mean(np.abs(p - g) / (g + 1e-6))
    delta = np.mean((np.maximum(g / p, p / g) < 1.25) & (p > 0))
    return rel, delta


def point_formulas(pred, gt, mask):
    p, g = pred[mask], gt[mask]
    err = np.linalg.norm(p - g, axis=-1)
    rel = np.mean(err / (np.linalg.norm(g, axis=-1) + 1e-6))
    delta = np.mean(err < 0.25 * np.minimum(np.linalg.norm(g, axis=-1), np.linalg.norm(p, axis=-1)))
    return rel, delta


def perturbation(H, W, amp):
    j, i = np.meshgrid(np.linspace(0, 1, W), np.linspace(0, 1, H), indexing="xy")
    return amp * np.sin(7 * i + 3 * j) * np.cos(5 * j)


# ----------------------------------------------------------------------------------------------------------
# the data


def test_motorcycle_ground_truth(moto):
    disp, mask, depth = moto["disp"], moto["mask"], moto["depth"]
    assert disp.shape == (500, 741)
    assert np.isinf(disp).any() and 0.85 < mask.mean() < 0.97  # occlusions are marked inf
    d = depth[mask]
    assert np.all(np.isfinite(d)) and 2000 < d.min() < d.max() < 5500  # millimetres
    # depth = f B / (d + doffs) inverts back to the disparity
    np.testing.assert_allclose(F_PX * BASELINE_MM / d - DOFFS, disp[mask], rtol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# known perturbations are undone exactly


def test_perfect_depth_alignments(moto):
    depth, mask = moto["depth"], moto["mask"]
    gt = np.where(mask, depth, np.inf)  # invalid GT is not even finite
    noise = np.where(mask, 0.0, 1e6)  # garbage in the prediction outside the mask
    r = gm.depth_metrics(T(depth / 2.5 + noise), T(gt), T(mask), kind="scale")
    for k in ("depth_scale_invariant", "depth_affine_invariant", "disparity_affine_invariant"):
        assert r[f"{k}/rel"] < 1e-12 and r[f"{k}/delta1"] == 1.0
    assert "depth_metric/rel" not in r
    r = gm.depth_metrics(T((depth - 1500.0) / 2.5 + noise), T(gt), T(mask), kind="affine")
    assert set(r) == {"depth_affine_invariant/rel", "depth_affine_invariant/delta1"}
    assert r["depth_affine_invariant/rel"] < 1e-12 and r["depth_affine_invariant/delta1"] == 1.0
    inv = np.where(mask, 1 / np.where(mask, depth, 1.0), 0.0)
    r = gm.depth_metrics(T(3.0 * inv + 0.01), T(gt), T(mask), kind="disparity")
    assert r["disparity_affine_invariant/rel"] < 1e-9 and r["disparity_affine_invariant/delta1"] == 1.0
    r = gm.depth_metrics(T(depth), T(gt), T(mask), kind="metric")
    assert all(v < 1e-12 for k, v in r.items() if k.endswith("rel"))
    assert all(v == 1.0 for k, v in r.items() if k.endswith("delta1")) and len(r) == 8


def test_perfect_point_alignments(moto2):
    P, mask = moto2["points"], moto2["mask"]
    t = np.array([120.0, -80.0, 900.0])
    r = gm.point_map_metrics(T(P + t), T(P), T(mask), kind="metric")
    assert r["points_metric/rel"] < 1e-12 and r["points_metric/delta1"] == 1.0
    assert r["points_affine_invariant/rel"] < 1e-12
    assert r["points_scale_invariant/rel"] > 0.01  # a translation is not a scale
    r = gm.point_map_metrics(T(0.3 * P), T(P), T(mask), kind="scale")
    assert r["points_scale_invariant/rel"] < 1e-12 and r["points_affine_invariant/rel"] < 1e-12
    r = gm.point_map_metrics(T((P - t) / 3.0), T(P), T(mask), kind="affine")
    assert r["points_affine_invariant/rel"] < 1e-12 and r["points_affine_invariant/delta1"] == 1.0


# ----------------------------------------------------------------------------------------------------------
# perturbed predictions against hand-computed values


@pytest.fixture(scope="module")
def lowres(moto2):
    return nearest_valid_subsample(moto2["mask"], 64, 64)


def test_masked_nearest_resize_matches_bruteforce(moto2, lowres):
    moto = moto2
    rng = np.random.default_rng(0)
    for (H, W), (h, w) in [((37, 53), (8, 8)), ((20, 20), (6, 9)), ((5, 7), (8, 12)), ((30, 11), (30, 11))]:
        mask = rng.random((2, H, W)) < 0.5
        idx, val = gm.masked_nearest_resize_index(T(mask), (h, w))
        for b in range(2):
            ref_i, ref_v = nearest_valid_subsample(mask[b], h, w)
            np.testing.assert_array_equal(val[b].numpy(), ref_v)
            np.testing.assert_array_equal(idx[b].numpy()[ref_v], ref_i[ref_v])
    idx, val = gm.masked_nearest_resize_index(T(moto["mask"]), (64, 64))
    np.testing.assert_array_equal(idx.numpy(), np.where(lowres[1], lowres[0], 0))
    np.testing.assert_array_equal(val.numpy(), lowres[1])
    (res,), v = gm.masked_nearest_resize(T(moto["points"]), T(moto["mask"]), (64, 64))
    np.testing.assert_array_equal(res.numpy()[lowres[1]], moto["points"].reshape(-1, 3)[lowres[0][lowres[1]]])


def test_depth_metrics_hand_computed(moto2, lowres):
    depth, mask = moto2["depth"], moto2["mask"]
    H, W = depth.shape
    eps = perturbation(H, W, 0.3)
    idx = lowres[0][lowres[1]]
    g_lr = depth.reshape(-1)[idx]

    # metric: no alignment
    pred = depth * (1 + eps)
    r = gm.depth_metrics(T(pred), T(depth), T(mask), kind="metric")
    rel, delta = depth_formulas(pred, depth, mask)
    assert r["depth_metric/rel"] == pytest.approx(rel, rel=1e-12)
    assert r["depth_metric/delta1"] == pytest.approx(delta, abs=1e-12)
    assert 0.05 < delta < 0.95  # a non-trivial case

    # scale-invariant: weighted median of ratios (weights 1/d_gt * pred) on the 64x64 subsample
    pred = 0.01 * depth * (1 + eps)
    p_lr = pred.reshape(-1)[idx]
    s = weighted_median(g_lr / p_lr, p_lr / g_lr)
    r = gm.depth_metrics(T(pred), T(depth), T(mask), kind="scale")
    rel, delta = depth_formulas(s * pred, depth, mask)
    assert r["depth_scale_invariant/rel"] == pytest.approx(rel, rel=1e-9)
    assert r["depth_scale_invariant/delta1"] == pytest.approx(delta, abs=1e-12)

    # affine-invariant: weighted L1 affine fit by linear programming on the subsample
    pred = 0.01 * (depth - 1000) * (1 + eps)
    p_lr = pred.reshape(-1)[idx]
    (a, b), _ = l1_lp(np.c_[p_lr, np.ones_like(p_lr)], g_lr, 1 / g_lr)
    r = gm.depth_metrics(T(pred), T(depth), T(mask), kind="affine")
    rel, delta = depth_formulas(a * pred + b, depth, mask)
    assert r["depth_affine_invariant/rel"] == pytest.approx(rel, rel=1e-6)
    assert r["depth_affine_invariant/delta1"] == pytest.approx(delta, abs=1e-5)

    # affine disparity: least squares on all valid pixels, clamp, invert
    pd = (np.where(mask, 1 / np.where(mask, depth, 1.0), 0.0) + 1e-4) * (1 + eps)
    A = np.c_[pd[mask], np.ones(mask.sum())]
    coef, *_ = np.linalg.lstsq(A, 1 / depth[mask], rcond=None)
    aligned = np.maximum(coef[0] * pd + coef[1], 1 / depth[mask].max())
    r = gm.depth_metrics(T(pd), T(depth), T(mask), kind="disparity")
    rel, delta = depth_formulas(1 / aligned, depth, mask)
    assert r["disparity_affine_invariant/rel"] == pytest.approx(rel, rel=1e-9)
    assert r["disparity_affine_invariant/delta1"] == pytest.approx(delta, abs=1e-12)


def test_point_metrics_hand_computed(moto2):
    P, mask = moto2["points"], moto2["mask"]
    H, W = mask.shape
    eps = perturbation(H, W, 0.2)[..., None] * np.array([1.0, -0.5, 0.8])
    size = (32, 32)  # smaller alignment grid keeps the reference LP small
    idx, val = nearest_valid_subsample(mask, *size)
    idx = idx[val]
    G_lr = P.reshape(-1, 3)[idx]
    w_lr = 1 / np.linalg.norm(G_lr, axis=-1)

    # metric points: translation only = per-coordinate weighted median of differences
    pred = P * (1 + eps) + np.array([50.0, 20.0, -300.0])
    D = G_lr - pred.reshape(-1, 3)[idx]
    t = np.array([weighted_median(D[:, c], w_lr) for c in range(3)])
    r = gm.point_map_metrics(T(pred), T(P), T(mask), kind="metric", align_size=size)
    rel, delta = point_formulas(pred + t, P, mask)
    assert r["points_metric/rel"] == pytest.approx(rel, rel=1e-9)
    assert r["points_metric/delta1"] == pytest.approx(delta, abs=1e-12)

    # scale-invariant: weighted median over all coordinates
    pred = 0.02 * P * (1 + eps)
    X, Y = pred.reshape(-1, 3)[idx].ravel(), G_lr.ravel()
    ww = np.repeat(w_lr, 3)
    s = weighted_median(Y / X, ww * np.abs(X))
    rel, delta = point_formulas(s * pred, P, mask)
    r = gm.point_map_metrics(T(pred), T(P), T(mask), kind="scale", align_size=size)
    assert r["points_scale_invariant/rel"] == pytest.approx(rel, rel=1e-9)
    assert r["points_scale_invariant/delta1"] == pytest.approx(delta, abs=1e-12)

    # affine-invariant: scale + xyz shift, weighted L1 by linear programming
    pred = 0.02 * (P - np.array([0, 0, 1500.0])) * (1 + eps)
    p_lr = pred.reshape(-1, 3)[idx]
    A = np.zeros((3 * len(idx), 4))
    for c in range(3):
        A[c::3, 0], A[c::3, 1 + c] = p_lr[:, c], 1.0
    coef, _ = l1_lp(A, G_lr.ravel(), np.repeat(w_lr, 3))
    r = gm.point_map_metrics(T(pred), T(P), T(mask), kind="affine", align_size=size)
    rel, delta = point_formulas(coef[0] * pred + coef[1:], P, mask)
    assert r["points_affine_invariant/rel"] == pytest.approx(rel, rel=1e-6)
    assert r["points_affine_invariant/delta1"] == pytest.approx(delta, abs=1e-5)


def test_local_points(moto2):
    P, mask = moto2["points"], moto2["mask"]
    H, W = mask.shape
    i, j = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    seg = (i // 63) * 10 + (j // 95)
    seg[:10] = -1  # unlabelled band
    pred = P.copy()
    for k in np.unique(seg[seg >= 0]):
        m = seg == k
        pred[m] = (P[m] - k * 10.0) / (1 + k / 30)  # every segment has its own scale and shift
    r = gm.local_point_metrics(T(pred), T(P), T(seg), T(mask))
    assert r["local_points/rel"] < 1e-12 and r["local_points/delta1"] == 1.0
    assert gm.point_map_metrics(T(pred), T(P), T(mask), kind="affine")["points_affine_invariant/rel"] > 0.05

    # hand-computed with a perturbed segment: alignment per segment, then the diameter-relative formulas
    from feat2gs.geometry.alignment import align_points_scale_xyz_shift
    noisy = pred * (1 + perturbation(H, W, 0.1)[..., None])
    idx, val = nearest_valid_subsample(mask, 64, 64)
    rels, dels = [], []
    for k in np.unique(seg[seg >= 0]):
        m_full = (seg == k) & mask
        lr = val & (seg.reshape(-1)[idx] == k)
        if lr.sum() < 10:
            continue
        g = P[m_full]
        dia = (g.max(0) - g.min(0)).max()
        sel = idx[lr]
        a = align_points_scale_xyz_shift(T(noisy.reshape(-1, 3)[sel]), T(P.reshape(-1, 3)[sel]),
                                         T(np.full(len(sel), 1 / dia)))
        err = np.linalg.norm(a.scale.item() * noisy[m_full] + a.shift.numpy() - g, axis=-1)
        rels.append(np.mean(err / dia))
        dels.append(np.mean(err < 0.25 * dia))
    r = gm.local_point_metrics(T(noisy), T(P), T(seg), T(mask))
    assert r["local_points/rel"] == pytest.approx(np.mean(rels), rel=1e-9)
    assert r["local_points/delta1"] == pytest.approx(np.mean(dels), abs=1e-12)
    assert 0 < r["local_points/rel"] < 0.2


def test_fov_metrics():
    def K(fx):
        return torch.tensor([[fx, 0, 0.5], [0, fx * 1.3, 0.5], [0, 0, 1]], dtype=torch.float64)

    fov = lambda fx: math.degrees(2 * math.atan(0.5 / fx))  # noqa: E731
    pred = torch.stack([K(0.8), K(1.2)])
    gt = torch.stack([K(1.0), K(1.0)])
    r = gm.fov_metrics(pred, gt)
    d = [fov(0.8) - fov(1.0), fov(1.2) - fov(1.0)]
    assert r["fov_x/mae"] == pytest.approx((abs(d[0]) + abs(d[1])) / 2, rel=1e-12)
    assert r["fov_x/deviation"] == pytest.approx((d[0] + d[1]) / 2, rel=1e-12)
    assert gm.fov_metrics(K(0.8), K(0.8))["fov_x/mae"] == 0.0
    assert gm.fov_metrics(pred, gt, reduction="none")["fov_x/deviation"] == pytest.approx(d)


def test_batches_reductions_and_empty_samples(moto2):
    depth, mask = moto2["depth"][::2, ::2], moto2["mask"][::2, ::2]
    eps = perturbation(*depth.shape, 0.3)
    preds = np.stack([depth * (1 + eps), depth / 2, depth])
    masks = np.stack([mask, mask, np.zeros_like(mask)])  # the last sample has no valid pixel
    per = gm.depth_metrics(T(preds), T(np.stack([depth] * 3)), T(masks), kind="scale", reduction="none")
    singles = [gm.depth_metrics(T(preds[b]), T(depth), T(masks[b]), kind="scale") for b in range(2)]
    for k, v in per.items():
        assert math.isnan(v[2])
        assert v[:2] == pytest.approx([singles[0][k], singles[1][k]], rel=1e-12)
    mean = gm.depth_metrics(T(preds), T(np.stack([depth] * 3)), T(masks), kind="scale")
    assert mean["depth_scale_invariant/rel"] == pytest.approx(np.mean(per["depth_scale_invariant/rel"][:2]))


def test_bad_inputs(moto2):
    d = T(moto2["depth"])
    with pytest.raises(InputError, match="pred"):
        gm.depth_metrics(d, d[:10])
    with pytest.raises(InputError, match="mask"):
        gm.depth_metrics(d, d, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(InputError, match="kind"):
        gm.depth_metrics(d, d, kind="projective")
    with pytest.raises(InputError):
        gm.fov_metrics(torch.eye(3), torch.eye(2))
