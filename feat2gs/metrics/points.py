"""3D reconstruction metrics between predicted and ground-truth point clouds (DTU-style, done right).

Protocol (the official Feat2GS DTU evaluation with its defects fixed):

1. The prediction (e.g. the trained Gaussian means, one per GT pixel) is aligned to the *clean* GT by the
   least-squares similarity (Umeyama sim(3)) over the per-point correspondences pred_i <-> gt_i
   (skipped with ``align=False``; alignment needs correspondences).
2. Accuracy     = mean (and median) over predicted points of the distance to the nearest GT point;
   Completeness = mean (and median) over GT points of the distance to the nearest predicted point;
   Distance     = mean (and median) of ||gt_i - pred_i|| over corresponding points;
   Overall      = (Accuracy + Completeness) / 2, DTU's usual summary.
   Nearest neighbours come from a scipy ``cKDTree`` (exact), not a brute-force distance matrix.

All distances are in the units of the GT after alignment (the caller names them with ``units``; e.g. a DTU
scene in metres evaluated with ``scale=1000, units="mm"``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..errors import InputError
from ..geometry.umeyama import apply_sim3, umeyama


def _points_np(x: Any, where: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise InputError(where, f"expected points of shape (N, 3), got {a.shape}")
    if a.shape[0] == 0:
        raise InputError(where, "is empty")
    if not np.isfinite(a).all():
        raise InputError(where, f"contains NaN or inf ({int((~np.isfinite(a)).any(1).sum())} points)")
    return a


def nearest_distances(query: np.ndarray, reference: np.ndarray, workers: int = 1) -> np.ndarray:
    """Distance from every row of ``query`` (N, 3) to its nearest neighbour in ``reference`` (M, 3)."""
    d, _ = cKDTree(reference).query(query, k=1, workers=workers)
    return np.asarray(d, dtype=np.float64)


def point_metrics(pred: Any, gt: Any, *, align: bool = True, corresponding: bool = True,
                  weights: Optional[Any] = None, scale: float = 1.0, units: str = "scene units",
                  workers: int = 1) -> dict[str, Any]:
    """Accuracy / Completeness / Distance between ``pred`` (N, 3) and ``gt`` (M, 3).

    ``corresponding=True`` means row i of ``pred`` corresponds to row i of ``gt`` (N == M); this is needed for
    the sim(3) alignment (``align=True``) and for Distance. ``weights`` (N,) optionally weight the alignment.
    ``scale`` multiplies every reported distance (a unit conversion, e.g. 1000 for metres -> mm) and
    ``units`` names the result's units. ``workers`` is passed to the KD-tree queries.

    Returns a dict with ``accuracy``, ``accuracy_median``, ``completeness``, ``completeness_median``,
    ``overall``, ``distance``, ``distance_median`` (None without correspondences), ``units``, ``aligned``,
    ``alignment`` (the sim(3) as {"scale", "rotation", "translation"} lists, or None), ``num_pred``, ``num_gt``.
    """
    P = _points_np(pred, "points.pred")
    G = _points_np(gt, "points.gt")
    if corresponding and P.shape[0] != G.shape[0]:
        raise InputError("points", f"corresponding clouds must have equal sizes: pred {P.shape[0]}, gt {G.shape[0]}"
                         " (pass corresponding=False to compare unordered clouds without alignment)")
    if align and not corresponding:
        raise InputError("points.align", "sim(3) alignment needs per-point correspondences (corresponding=True)")
    if not np.isfinite(scale) or scale <= 0:
        raise InputError("points.scale", f"must be a positive number, got {scale}")

    alignment = None
    if align:
        if np.ptp(P, axis=0).max() <= 0:
            raise InputError("points.pred", "all predicted points coincide; cannot align")
        sim = umeyama(torch.from_numpy(P), torch.from_numpy(G), weights=weights, with_scale=True)
        P = apply_sim3(torch.from_numpy(P), *sim).numpy()
        alignment = {"scale": float(sim.scale), "rotation": sim.rotation.tolist(),
                     "translation": sim.translation.tolist()}

    acc = nearest_distances(P, G, workers) * scale
    comp = nearest_distances(G, P, workers) * scale
    out: dict[str, Any] = {
        "accuracy": float(acc.mean()),
        "accuracy_median": float(np.median(acc)),
        "completeness": float(comp.mean()),
        "completeness_median": float(np.median(comp)),
        "overall": float(0.5 * (acc.mean() + comp.mean())),
        "distance": None,
        "distance_median": None,
        "units": units,
        "aligned": bool(align),
        "alignment": alignment,
        "num_pred": int(P.shape[0]),
        "num_gt": int(G.shape[0]),
    }
    if corresponding:
        dist = np.linalg.norm(G - P, axis=1) * scale
        out["distance"] = float(dist.mean())
        out["distance_median"] = float(np.median(dist))
    return out
