"""MoGe's monocular-geometry metrics, each preceded by the alignment MoGe applies (``moge/test/metrics.py``).

Every function takes a prediction and the ground truth as one sample (H, W[, 3]) or a batch
(B, H, W[, 3]) with a validity mask and returns a dict of Python floats, averaged over the batch (NaN samples
skipped), or per-sample lists with ``reduction="none"``. Keys are ``"<kind>/<metric>"``.

Alignments (the invariance a prediction is granted), all solved untruncated with GT-based weights on a 64x64
``masked_nearest_resize`` subsample of the valid GT pixels and then applied to the full-resolution
prediction; metrics use every valid full-resolution pixel:

================================  =====================================================================
``depth_metric``                  none (metric prediction and metric GT)
``depth_scale_invariant``         ``align_depth_scale``, w = 1/d_gt (weighted median of ratios)
``depth_affine_invariant``        ``align_depth_affine``, w = 1/d_gt
``disparity_affine_invariant``    least squares on all valid full-res disparities; the aligned disparity is
                                  clamped below by 1/max(d_gt) before inverting
``points_metric``                 ``align_points_xyz_shift`` (translation only), w = 1/||P_gt||
``points_scale_invariant``        ``align_points_scale``, w = 1/||P_gt||
``points_affine_invariant``       ``align_points_scale_xyz_shift``, w = 1/||P_gt||
``local_points``                  per GT segment with >= 10 subsampled pixels: ``align_points_scale_xyz_shift``
                                  with w = 1/diameter (largest bounding-box side of the segment's GT points)
================================  =====================================================================

A prediction of a stronger kind is also scored under every weaker one (MoGe's cascade): depth ``metric`` ->
metric, scale, affine, affine disparity; ``scale`` -> scale, affine, disparity; ``affine`` -> affine;
``disparity`` (an affine-invariant disparity map) -> disparity. Points ``metric`` -> metric, scale, affine;
``scale`` -> scale, affine; ``affine`` -> affine.

Formulas: depth ``rel = mean |d - d*| / (d* + 1e-6)``, ``delta1 = mean[max(d/d*, d*/d) < 1.25]``;
points ``rel = mean ||p - p*|| / ||p*||`` (MoGe adds 1e-6 to the norm), ``delta1 = mean[||p - p*|| <
0.25 min(||p*||, ||p||)]``; local ``rel = mean ||p - p*|| / diameter``, ``delta1 = mean[||p - p*|| < 0.25
diameter]``; FOV ``mae`` (degrees, mean |fov_x - fov_x*|) and signed ``deviation`` (mean fov_x - fov_x*).

Deliberate difference: in ``delta1`` a non-positive predicted depth counts as a failure (MoGe's
``max(d*/d, d/d*)`` is negative, i.e. counted as an inlier, when d < 0).

The ``xyz`` shift alignment defaults to the exact optimum (``method="exact"``); ``method="anchor"`` reproduces
MoGe's point-anchor solver, which can leave a slightly larger L1 objective (see
``feat2gs.geometry.alignment``). Both are identical for the other alignments.
"""

from __future__ import annotations

import functools
import math
from typing import Literal, Optional, Sequence, Union

import torch
from torch import Tensor

from ..errors import InputError
from ..geometry.alignment import (
    Alignment,
    Method,
    align_affine_lstsq,
    align_depth_affine,
    align_depth_scale,
    align_points_scale,
    align_points_scale_xyz_shift,
    align_points_xyz_shift,
)
from ..geometry.focal import intrinsics_to_fov

Reduction = Literal["mean", "none"]
DepthKind = Literal["metric", "scale", "affine", "disparity"]
PointsKind = Literal["metric", "scale", "affine"]
ALIGN_SIZE = (64, 64)
_EPS = 1e-6


# ----------------------------------------------------------------------------------------------------------
# masked nearest resize


@functools.lru_cache(maxsize=32)
def _resize_layout(H: int, W: int, h: int, w: int, device: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Mask-independent part of ``masked_nearest_resize_index`` (cached; never mutated): source pixels ordered
    by distance to their cell centre (ties by row-major index) and the rank of each in that order, the cell of
    every source pixel, which cells own a source centre, and the source pixel under every cell centre."""
    dev = torch.device(device)
    # exact integer geometry: pixel centre (2i+1)/2, cell centre (2a+1) H / (2h); distances scaled by 4 h^2 w^2
    ii = torch.arange(H, device=dev, dtype=torch.int64)
    jj = torch.arange(W, device=dev, dtype=torch.int64)
    ci = torch.div((2 * ii + 1) * h, 2 * H, rounding_mode="floor").clamp_max(h - 1)
    cj = torch.div((2 * jj + 1) * w, 2 * W, rounding_mode="floor").clamp_max(w - 1)
    dy = (2 * ii + 1) * h - (2 * ci + 1) * H  # = 2 h (row centre - cell centre)
    dx = (2 * jj + 1) * w - (2 * cj + 1) * W
    dist = (dy[:, None] ** 2 * (w * w) + dx[None, :] ** 2 * (h * h)).reshape(-1)
    cell = (ci[:, None] * w + cj[None, :]).reshape(-1)
    order = torch.argsort(dist, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=dev)
    occupied = torch.zeros(h * w, dtype=torch.bool, device=dev)
    occupied[cell] = True
    ti = torch.div((2 * torch.arange(h, device=dev) + 1) * H, 2 * h, rounding_mode="floor").clamp_max(H - 1)
    tj = torch.div((2 * torch.arange(w, device=dev) + 1) * W, 2 * w, rounding_mode="floor").clamp_max(W - 1)
    under = (ti[:, None] * W + tj[None, :]).reshape(-1)
    return order, rank, cell, occupied, under


def masked_nearest_resize_index(mask: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """For each cell of a ``size`` = (h, w) grid over (*batch, H, W) maps, the nearest *valid* source pixel.

    Target cell (i, j) covers the source rectangle [i H/h, (i+1) H/h) x [j W/w, (j+1) W/w); among the valid
    source pixels whose centres fall inside it, the one whose centre is closest to the cell centre is taken
    (ties: lowest row-major index). A cell that contains no source pixel centre (upsampling) takes the
    source pixel under its centre. Returns (index (*batch, h, w) long row-major into H*W, valid (*batch, h, w));
    index is 0 where invalid.
    """
    if mask.ndim < 2:
        raise InputError("masked_nearest_resize.mask", f"expected (*batch, H, W), got {tuple(mask.shape)}")
    *batch, H, W = mask.shape
    h, w = size
    if h <= 0 or w <= 0:
        raise InputError("masked_nearest_resize.size", f"bad target size {size}")
    dev = mask.device
    B = math.prod(batch)
    m = mask.reshape(B, H * W).bool()
    order, rank, cell, occupied, under = _resize_layout(H, W, h, w, str(dev))
    big = H * W
    keyed = torch.where(m, rank.unsqueeze(0), torch.full_like(rank, big).unsqueeze(0))
    best = torch.full((B, h * w), big, dtype=torch.long, device=dev)
    best = best.scatter_reduce(1, cell.unsqueeze(0).expand(B, -1), keyed, reduce="amin", include_self=True)
    valid = best < big
    index = order[best.clamp_max(big - 1)]
    if not bool(occupied.all()):  # cells with no source centre inside (upsampling): pixel under the centre
        empty = ~occupied
        index[:, empty] = under[empty]
        valid[:, empty] = m[:, under[empty]]
    index = torch.where(valid, index, torch.zeros_like(index))
    return index.reshape(*batch, h, w), valid.reshape(*batch, h, w)


def _gather_pixels(t: Tensor, index: Tensor) -> Tensor:
    """t (B, H, W, *C), index (B, n) row-major -> (B, n, *C)."""
    B, H, W = t.shape[:3]
    flat = t.reshape(B, H * W, -1)
    out = flat.gather(1, index.unsqueeze(-1).expand(-1, -1, flat.shape[-1]))
    return out.reshape(B, index.shape[1], *t.shape[3:])


def masked_nearest_resize(maps: Union[Tensor, Sequence[Tensor]], mask: Tensor,
                          size: tuple[int, int]) -> tuple[list[Tensor], Tensor]:
    """Resize maps (*batch, H, W, *C) to ``size`` taking, per target cell, the nearest valid pixel
    (``masked_nearest_resize_index``). Returns (resized maps (*batch, h, w, *C) with zeros at invalid
    cells, mask (*batch, h, w))."""
    if isinstance(maps, Tensor):
        maps = [maps]
    *batch, H, W = mask.shape
    index, valid = masked_nearest_resize_index(mask, size)
    B = math.prod(batch)
    idx = index.reshape(B, -1)
    out = []
    for t in maps:
        if tuple(t.shape[:len(batch) + 2]) != (*batch, H, W):
            raise InputError("masked_nearest_resize.maps", f"map of shape {tuple(t.shape)} does not start "
                             f"with the mask shape {(*batch, H, W)}")
        g = _gather_pixels(t.reshape(B, H, W, *t.shape[len(batch) + 2:]), idx)
        v = valid.reshape(B, -1).reshape(B, -1, *([1] * (g.ndim - 2)))
        g = torch.where(v, g, torch.zeros_like(g))
        out.append(g.reshape(*batch, *size, *t.shape[len(batch) + 2:]))
    return out, valid


# ----------------------------------------------------------------------------------------------------------
# helpers


def _batched(pred: Tensor, gt: Tensor, mask: Optional[Tensor], point: bool, name: str):
    """Normalise to (B, H, W[, 3]) float tensors and a (B, H, W) mask of finite, valid GT."""
    base = 3 if point else 2
    if pred.shape != gt.shape:
        raise InputError(f"{name}.pred", f"shape {tuple(pred.shape)} differs from gt {tuple(gt.shape)}")
    if point and pred.shape[-1] != 3:
        raise InputError(f"{name}.pred", f"expected point maps (..., H, W, 3), got {tuple(pred.shape)}")
    if pred.ndim == base:
        pred, gt = pred.unsqueeze(0), gt.unsqueeze(0)
        mask = None if mask is None else mask.unsqueeze(0)
    if pred.ndim != base + 1:
        raise InputError(f"{name}.pred", f"expected (H, W{', 3' if point else ''}) or a batch of them, got "
                         f"{tuple(pred.shape)}")
    hw = pred.shape[:3]
    if mask is None:
        mask = torch.ones(hw, dtype=torch.bool, device=pred.device)
    if tuple(mask.shape) != tuple(hw):
        raise InputError(f"{name}.mask", f"expected shape {tuple(hw)}, got {tuple(mask.shape)}")
    gt_ok = torch.isfinite(gt).all(-1) if point else torch.isfinite(gt)
    mask = mask.bool() & gt_ok
    if not pred.is_floating_point():
        pred = pred.float()
    gt = torch.where((mask.unsqueeze(-1) if point else mask), gt, torch.zeros_like(gt)).to(pred.dtype)
    return pred, gt, mask


def _masked_mean(v: Tensor, mask: Tensor) -> Tensor:
    """Per-sample mean of v (B, H, W) over mask; NaN where the mask is empty."""
    v = torch.where(mask, v, torch.zeros_like(v))
    cnt = mask.flatten(1).sum(-1)
    s = v.flatten(1).sum(-1)
    return torch.where(cnt > 0, s / cnt.clamp_min(1), torch.full_like(s, float("nan")))


def _depth_scores(pred: Tensor, gt: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample depth rel and delta1 over mask (B, H, W)."""
    rel = (pred - gt).abs() / (gt + _EPS)
    safe_pred = torch.where(pred > 0, pred, torch.ones_like(pred))
    ratio = torch.maximum(gt / safe_pred, safe_pred / gt.clamp_min(1e-30))
    inlier = ((ratio < 1.25) & (pred > 0)).to(pred.dtype)
    return _masked_mean(rel, mask), _masked_mean(inlier, mask)


def _point_scores(pred: Tensor, gt: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample point rel and delta1 over mask (B, H, W) for maps (B, H, W, 3)."""
    err = (pred - gt).norm(dim=-1)
    ngt = gt.norm(dim=-1)
    rel = err / (ngt + _EPS)
    inlier = (err < 0.25 * torch.minimum(ngt, pred.norm(dim=-1))).to(pred.dtype)
    return _masked_mean(rel, mask), _masked_mean(inlier, mask)


def _reduce(per_sample: dict[str, Tensor], reduction: Reduction) -> dict:
    if reduction == "none":
        return {k: [float(x) for x in v.tolist()] for k, v in per_sample.items()}
    if reduction != "mean":
        raise InputError("reduction", f"unknown reduction {reduction!r}; use 'mean' or 'none'")
    out = {}
    for k, v in per_sample.items():
        ok = ~torch.isnan(v)
        out[k] = float(v[ok].double().mean()) if bool(ok.any()) else float("nan")
    return out


def _subsample(mask: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    index, valid = masked_nearest_resize_index(mask, size)
    return index.flatten(1), valid.flatten(1)


def _invalidate(scores: tuple[Tensor, Tensor], al: Alignment) -> tuple[Tensor, Tensor]:
    nan = torch.full_like(scores[0], float("nan"))
    return tuple(torch.where(al.valid, s, nan) for s in scores)  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------------------
# depth


def depth_metrics(pred: Tensor, gt: Tensor, mask: Optional[Tensor] = None, *, kind: DepthKind = "scale",
                  gt_is_metric: bool = True, align_size: tuple[int, int] = ALIGN_SIZE,
                  method: Method = "exact", reduction: Reduction = "mean") -> dict:
    """Depth ``rel`` / ``delta1`` of a depth prediction (H, W) or (B, H, W) against GT z-depth.

    ``kind`` is what the prediction claims (``metric``, ``scale``-invariant, ``affine``-invariant depth, or
    an affine-invariant ``disparity`` map); it is scored under that invariance and every weaker one (module
    docstring). Pixels outside ``mask`` or with non-finite / non-positive GT are ignored; ``depth_metric``
    needs ``gt_is_metric``.
    """
    pred, gt, mask = _batched(pred, gt, mask, point=False, name="depth_metrics")
    mask = mask & (gt > 0)
    B = pred.shape[0]
    res: dict[str, Tensor] = {}
    if kind not in ("metric", "scale", "affine", "disparity"):
        raise InputError("depth_metrics.kind", f"unknown kind {kind!r}")
    index, valid = _subsample(mask, align_size)
    pf, gf = pred.reshape(B, -1), gt.reshape(B, -1)
    p_lr, g_lr = pf.gather(1, index), gf.gather(1, index)
    w_lr = torch.where(valid, 1.0 / torch.where(valid, g_lr, torch.ones_like(g_lr)), torch.zeros_like(g_lr))

    def put(name: str, scores: tuple[Tensor, Tensor]) -> None:
        res[f"{name}/rel"], res[f"{name}/delta1"] = scores

    if kind == "metric" and gt_is_metric:
        put("depth_metric", _depth_scores(pred, gt, mask))
    if kind in ("metric", "scale"):
        al = align_depth_scale(p_lr, g_lr, w_lr)
        put("depth_scale_invariant", _invalidate(_depth_scores(al.apply(pred), gt, mask), al))
    if kind in ("metric", "scale", "affine"):
        al = align_depth_affine(p_lr, g_lr, w_lr, method=method)
        put("depth_affine_invariant", _invalidate(_depth_scores(al.apply(pred), gt, mask), al))
    if kind in ("metric", "scale", "disparity"):
        disp = pred if kind == "disparity" else 1.0 / pred
        put("disparity_affine_invariant", disparity_scores(disp, gt, mask))
    return _reduce(res, reduction)


def disparity_scores(pred_disp: Tensor, gt: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample (rel, delta1) of an affine-invariant disparity (B, H, W) against GT depth: least-squares
    affine fit to 1/d_gt over all valid pixels, aligned disparity clamped below by 1/max(d_gt), inverted."""
    B = pred_disp.shape[0]
    ok = mask & torch.isfinite(pred_disp)
    g_disp = torch.where(mask, 1.0 / torch.where(mask, gt, torch.ones_like(gt)), torch.zeros_like(gt))
    al = align_affine_lstsq(pred_disp.reshape(B, -1), g_disp.reshape(B, -1), ok.reshape(B, -1).to(gt.dtype))
    aligned = al.apply(pred_disp)
    gmax = torch.where(mask, gt, torch.zeros_like(gt)).flatten(1).amax(-1).clamp_min(1e-30)
    aligned = torch.maximum(aligned, (1.0 / gmax).reshape(B, 1, 1))
    return _invalidate(_depth_scores(1.0 / aligned, gt, mask), al)


# ----------------------------------------------------------------------------------------------------------
# points


def point_map_metrics(pred: Tensor, gt: Tensor, mask: Optional[Tensor] = None, *, kind: PointsKind = "scale",
                      gt_is_metric: bool = True, align_size: tuple[int, int] = ALIGN_SIZE,
                      method: Method = "exact", reduction: Reduction = "mean") -> dict:
    """Point ``rel`` / ``delta1`` of a camera-space point map (H, W, 3) or (B, H, W, 3) against GT points.

    ``kind``: ``metric`` (scored after a translation-only alignment, and under the weaker invariances),
    ``scale`` or ``affine`` (scale + xyz shift). Pixels outside ``mask`` or with non-finite GT are ignored.
    """
    pred, gt, mask = _batched(pred, gt, mask, point=True, name="point_map_metrics")
    if kind not in ("metric", "scale", "affine"):
        raise InputError("point_map_metrics.kind", f"unknown kind {kind!r}")
    mask = mask & (gt.norm(dim=-1) > 0)
    index, valid = _subsample(mask, align_size)
    p_lr, g_lr = _gather_pixels(pred, index), _gather_pixels(gt, index)
    n_lr = g_lr.norm(dim=-1)
    w_lr = torch.where(valid, 1.0 / torch.where(valid, n_lr, torch.ones_like(n_lr)), torch.zeros_like(n_lr))
    res: dict[str, Tensor] = {}

    def put(name: str, al: Alignment) -> None:
        s = _invalidate(_point_scores(al.apply(pred), gt, mask), al)
        res[f"{name}/rel"], res[f"{name}/delta1"] = s

    if kind == "metric" and gt_is_metric:
        put("points_metric", align_points_xyz_shift(p_lr, g_lr, w_lr))
    if kind in ("metric", "scale"):
        put("points_scale_invariant", align_points_scale(p_lr, g_lr, w_lr))
    put("points_affine_invariant", align_points_scale_xyz_shift(p_lr, g_lr, w_lr, method=method))
    return _reduce(res, reduction)


def local_point_metrics(pred: Tensor, gt: Tensor, segments: Tensor, mask: Optional[Tensor] = None, *,
                        min_pixels: int = 10, align_size: tuple[int, int] = ALIGN_SIZE,
                        method: Method = "exact", reduction: Reduction = "mean") -> dict:
    """MoGe's ``local_points``: every GT segment (label >= 0 in ``segments`` (B, H, W) / (H, W); negative =
    none) with at least ``min_pixels`` valid subsampled pixels is aligned on its own (scale + xyz shift,
    w = 1/diameter); ``rel`` and ``delta1`` relative to the segment diameter (largest side of the bounding
    box of its valid full-res GT points) are averaged over segments, then over samples."""
    pred, gt, mask = _batched(pred, gt, mask, point=True, name="local_point_metrics")
    if segments.ndim == 2:
        segments = segments.unsqueeze(0)
    if tuple(segments.shape) != tuple(mask.shape):
        raise InputError("local_point_metrics.segments", f"expected shape {tuple(mask.shape)}, got "
                         f"{tuple(segments.shape)}")
    B, H, W = mask.shape
    seg = segments.long().to(pred.device)
    labels = torch.unique(seg[seg >= 0])
    L = int(labels.numel())
    nan = torch.full((B,), float("nan"), dtype=pred.dtype, device=pred.device)
    if L == 0:
        return _reduce({"local_points/rel": nan, "local_points/delta1": nan}, reduction)
    lab = torch.searchsorted(labels, seg.clamp_min(0))  # label -> 0..L-1
    lab = torch.where((seg >= 0) & mask, lab, torch.full_like(lab, -1))
    # per (sample, label) segment id and full-res statistics
    sid = torch.where(lab >= 0, torch.arange(B, device=pred.device).reshape(B, 1, 1) * L + lab, -1).reshape(-1)
    in_seg = sid >= 0
    gflat = gt.reshape(-1, 3)
    K = B * L
    inf = torch.full((K, 3), float("inf"), dtype=gt.dtype, device=gt.device)
    gmin = inf.scatter_reduce(0, sid[in_seg].unsqueeze(-1).expand(-1, 3), gflat[in_seg], "amin")
    gmax = (-inf).scatter_reduce(0, sid[in_seg].unsqueeze(-1).expand(-1, 3), gflat[in_seg], "amax")
    diameter = (gmax - gmin).amax(-1)  # (K,)
    # subsampled alignment problems, one per (sample, label)
    index, valid = _subsample(mask, align_size)
    lab_lr = lab.reshape(B, -1).gather(1, index)
    p_lr, g_lr = _gather_pixels(pred, index), _gather_pixels(gt, index)  # (B, n, 3)
    member = valid.unsqueeze(1) & (lab_lr.unsqueeze(1) == torch.arange(L, device=pred.device).reshape(1, L, 1))
    count = member.sum(-1).reshape(K)
    usable = (count >= min_pixels) & torch.isfinite(diameter) & (diameter > 0)
    d_safe = torch.where(usable, diameter, torch.ones_like(diameter))
    keep = usable.nonzero().squeeze(1)
    if keep.numel() == 0:
        return _reduce({"local_points/rel": nan, "local_points/delta1": nan}, reduction)
    # compact every kept segment's subsampled members to the front (padding has weight 0)
    member = member.reshape(K, -1)[keep]
    width = int(member.sum(-1).max())
    cols = torch.argsort(member.to(torch.int8), dim=-1, descending=True, stable=True)[:, :width]
    rows = (keep // L).unsqueeze(1).expand_as(cols)
    P, G = p_lr[rows, cols], g_lr[rows, cols]
    w = member.gather(1, cols).to(pred.dtype) / d_safe[keep].unsqueeze(-1)
    al = align_points_scale_xyz_shift(P, G, w, method=method)
    scale = torch.zeros(K, dtype=pred.dtype, device=pred.device)
    shift = torch.zeros(K, 3, dtype=pred.dtype, device=pred.device)
    ok = torch.zeros(K, dtype=torch.bool, device=pred.device)
    scale[keep], shift[keep], ok[keep] = al.scale, al.shift, al.valid
    # full-res errors of every pixel under its segment's alignment
    use_px = in_seg & ok[sid.clamp_min(0)]
    s_px = scale[sid.clamp_min(0)]
    t_px = shift[sid.clamp_min(0)]
    err = (s_px.unsqueeze(-1) * pred.reshape(-1, 3) + t_px - gflat).norm(dim=-1)
    dia_px = d_safe[sid.clamp_min(0)]
    rel_px = torch.where(use_px, err / dia_px, torch.zeros_like(err))
    inl_px = torch.where(use_px, (err < 0.25 * dia_px).to(err.dtype), torch.zeros_like(err))
    def per_segment(v: Tensor) -> Tensor:
        return torch.zeros(K, dtype=err.dtype, device=err.device).index_add_(0, sid.clamp_min(0), v)

    cnt = per_segment(use_px.to(err.dtype))
    rel_k = per_segment(rel_px) / cnt.clamp_min(1)
    inl_k = per_segment(inl_px) / cnt.clamp_min(1)
    scored = (ok & (cnt > 0)).reshape(B, L)
    rel_b = torch.where(scored, rel_k.reshape(B, L), 0).sum(-1) / scored.sum(-1).clamp_min(1)
    inl_b = torch.where(scored, inl_k.reshape(B, L), 0).sum(-1) / scored.sum(-1).clamp_min(1)
    any_b = scored.any(-1)
    return _reduce({"local_points/rel": torch.where(any_b, rel_b, nan),
                    "local_points/delta1": torch.where(any_b, inl_b, nan)}, reduction)


# ----------------------------------------------------------------------------------------------------------
# field of view


def fov_metrics(pred_K: Tensor, gt_K: Tensor, reduction: Reduction = "mean") -> dict:
    """Horizontal FOV error in degrees of normalised intrinsics (3, 3) or (B, 3, 3): ``fov_x/mae`` (mean
    absolute) and ``fov_x/deviation`` (mean signed, prediction minus GT)."""
    if pred_K.shape != gt_K.shape or pred_K.shape[-2:] != (3, 3):
        raise InputError("fov_metrics", f"expected matching (..., 3, 3) intrinsics, got {tuple(pred_K.shape)} "
                         f"and {tuple(gt_K.shape)}")
    if pred_K.ndim == 2:
        pred_K, gt_K = pred_K.unsqueeze(0), gt_K.unsqueeze(0)
    d = torch.rad2deg(intrinsics_to_fov(pred_K.double())[0] - intrinsics_to_fov(gt_K.double())[0])
    return _reduce({"fov_x/mae": d.abs(), "fov_x/deviation": d}, reduction)
