"""Closed-form similarity (sim(3)) alignment of corresponding point sets (Umeyama, 1991).

Convention: a similarity maps a point x to ``y = s * R @ x + t`` with ``s > 0`` a scale, ``R`` a proper
rotation (det +1) and ``t`` a translation. ``umeyama(src, dst)`` returns the (s, R, t) minimising the
(weighted) sum of squared residuals ``sum_i w_i ||dst_i - (s R src_i + t)||^2``. When the best orthogonal
fit of the data is a reflection (det -1), the best *proper* rotation is returned instead (Umeyama's sign
correction), never a reflection.

Everything is computed in float64; results are returned in the dtype of ``src`` (float32 if it is not a
floating tensor).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import torch

from ..errors import InputError

ArrayLike = torch.Tensor | np.ndarray


class Sim3(NamedTuple):
    """A similarity ``y = scale * rotation @ x + translation``; unpacks as ``(s, R, t)``."""

    scale: torch.Tensor  # () scalar
    rotation: torch.Tensor  # (3, 3)
    translation: torch.Tensor  # (3,)

    def matrix(self) -> torch.Tensor:
        """The 4x4 homogeneous matrix [[s R, t], [0, 1]]."""
        M = torch.eye(4, dtype=self.rotation.dtype)
        M[:3, :3] = self.scale * self.rotation
        M[:3, 3] = self.translation
        return M

    def inverse(self) -> "Sim3":
        """The similarity mapping y back to x: x = (1/s) R^T (y - t)."""
        s_inv = 1.0 / self.scale
        R_inv = self.rotation.T
        return Sim3(s_inv, R_inv, -s_inv * (R_inv @ self.translation))


def _as_points(x: ArrayLike, where: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 2 or t.shape[1] != 3:
        raise InputError(where, f"expected points of shape (N, 3), got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise InputError(where, "contains NaN or inf")
    return t


def umeyama(src: ArrayLike, dst: ArrayLike, weights: Optional[ArrayLike] = None,
            with_scale: bool = True) -> Sim3:
    """Least-squares similarity taking ``src`` (N, 3) onto ``dst`` (N, 3), row i corresponding to row i.

    ``weights`` (N,) are non-negative per-correspondence weights (normalised internally); ``with_scale=False``
    fixes s = 1 (a rigid fit). At least 3 correspondences with positive weight are required. For
    collinear ``src`` the rotation about that line is undetermined and one minimiser is returned.
    Raises ``InputError`` for mismatched shapes, non-finite values, bad weights, or (with scale) a ``src``
    whose points all coincide.
    """
    src_t = _as_points(src, "umeyama.src")
    dst_t = _as_points(dst, "umeyama.dst")
    out_dtype = src_t.dtype if src_t.is_floating_point() else torch.float32
    if src_t.shape[0] != dst_t.shape[0]:
        raise InputError("umeyama", f"src has {src_t.shape[0]} points but dst has {dst_t.shape[0]}")
    x = src_t.double()
    y = dst_t.double()
    n = x.shape[0]
    if weights is None:
        w = torch.ones(n, dtype=torch.float64)
    else:
        w = torch.as_tensor(weights).double().reshape(-1)
        if w.shape[0] != n:
            raise InputError("umeyama.weights", f"expected {n} weights, got {w.shape[0]}")
        if not torch.isfinite(w).all() or (w < 0).any():
            raise InputError("umeyama.weights", "weights must be finite and non-negative")
    if int((w > 0).sum()) < 3:
        raise InputError("umeyama", f"need at least 3 correspondences with positive weight, got {int((w > 0).sum())}")
    w = w / w.sum()

    mu_x = w @ x
    mu_y = w @ y
    xc = x - mu_x
    yc = y - mu_y
    var_x = float(w @ (xc * xc).sum(1))
    cov = (yc * w[:, None]).T @ xc  # (3, 3) = sum_i w_i (y_i - mu_y)(x_i - mu_x)^T

    U, D, Vh = torch.linalg.svd(cov)
    S = torch.ones(3, dtype=torch.float64)
    if torch.linalg.det(U) * torch.linalg.det(Vh) < 0:
        S[2] = -1.0  # the best orthogonal map is a reflection: flip the weakest axis instead
    R = U @ torch.diag(S) @ Vh

    if with_scale:
        if var_x <= 1e-30 * max(1.0, float(mu_x.abs().max()) ** 2):
            raise InputError("umeyama.src", "all source points coincide; the scale is undetermined")
        s = float((D * S).sum()) / var_x
        if s <= 0:
            raise InputError("umeyama", "degenerate correspondences (non-positive optimal scale)")
    else:
        s = 1.0
    t = mu_y - s * (R @ mu_x)
    return Sim3(torch.tensor(s, dtype=out_dtype), R.to(out_dtype), t.to(out_dtype))


def apply_sim3(points: ArrayLike, s: torch.Tensor | float, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``s * R @ p + t`` for every point p of ``points`` (..., 3); returns a tensor in the points' dtype.

    With a ``Sim3`` ``sim``: ``apply_sim3(points, *sim)``.
    """
    p = torch.as_tensor(points)
    if p.shape[-1] != 3:
        raise InputError("apply_sim3.points", f"expected (..., 3), got {tuple(p.shape)}")
    dtype = p.dtype if p.is_floating_point() else torch.float32
    R = torch.as_tensor(R, dtype=dtype)
    t = torch.as_tensor(t, dtype=dtype)
    s = torch.as_tensor(s, dtype=dtype)
    return s * (p.to(dtype) @ R.T) + t
