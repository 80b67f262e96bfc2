"""Focal length and z-shift recovery from an affine-invariant point map (MoGe), batched in torch.

Convention (MoGe): a predicted point map ``(x, y, z)`` (OpenCV camera axes) is correct up to a global scale
and a shift of z only. For the true shift ``sigma`` and focal ``f`` the projection of every point lands on its
pixel:  ``f * (x, y) / (z + sigma) = uv``, where ``uv`` is the *normalised view-plane UV* of the pixel centre:
pixel offsets from the image centre divided by half the image diagonal (``normalized_view_plane_uv``). So ``f``
is the focal length relative to half the image diagonal: ``f_pixels = f * sqrt(W^2 + H^2) / 2``.

Solver: for a given shift the best focal is closed form, ``f*(sigma) = sum q.uv / sum |q|^2`` with
``q = (x, y)/(z + sigma)``, which leaves a 1-D problem in ``sigma``::

    R(sigma) = sum_i |f*(sigma) q_i - uv_i|^2          (f eliminated)
    R(sigma) = sum_i |f q_i - uv_i|^2                   (known focal / field of view)

MoGe runs ``scipy.optimize.least_squares`` (LM, x0 = 0, loose ftol) per image on the CPU. Here every image of
the batch is solved at once on the tensor's device: ``R`` has a pole at ``sigma = -min z`` (the nearest point
crosses the camera plane), so the search is restricted to ``sigma > -min z`` and parametrised by the nearest
shifted depth ``d0 = min z + sigma = span * 10^v`` (``span = max z - min z``); a log-spaced scan of ``v`` over
[-4, 4] brackets the global minimum, golden-section search narrows the bracket, and a few safeguarded Newton
steps on ``R'(sigma) = 0`` with analytic derivatives converge to machine precision. The data are the point
map nearest-subsampled to 64x64 (MoGe's ``downsample_size``) together with the mask; float64 throughout.

Intrinsics: ``intrinsics_from_focal`` gives MoGe's normalised K (``fx = f/2 * sqrt(1 + a^2)/a``,
``fy = f/2 * sqrt(1 + a^2)``, principal point at the centre, ``a = W/H``) or the pixel K of this project's
convention (pixel (i, j) has its centre at (j + 0.5, i + 0.5); K_pixel = diag(W, H, 1) @ K_normalised).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass
class FocalShift:
    """Recovered focal (relative to half the image diagonal) and z-shift per image, shapes (*batch).

    ``valid`` is False where fewer than 2 valid points were available or the fit was degenerate; there
    ``focal = 1`` and ``shift = 0`` (MoGe's fallback). ``residual`` is R at the solution (sum of squared
    view-plane errors over the subsampled points)."""

    focal: Tensor
    shift: Tensor
    valid: Tensor
    residual: Tensor


def normalized_view_plane_uv(width: int, height: int, aspect_ratio: Optional[float] = None, *,
                             dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """(H, W, 2) view-plane coordinates (u right, v down) of pixel centres, normalised so that half the image
    diagonal is 1: ``u = span_x * (2 (j + 0.5)/W - 1)`` with ``span_x = a / sqrt(1 + a^2)``, ``a = W/H``
    (or ``aspect_ratio``), and likewise ``v`` with ``span_y = 1 / sqrt(1 + a^2)``."""
    if width <= 0 or height <= 0:
        raise InputError("normalized_view_plane_uv", f"bad image size {width}x{height}")
    a = width / height if aspect_ratio is None else float(aspect_ratio)
    span_x, span_y = a / math.sqrt(1 + a * a), 1 / math.sqrt(1 + a * a)
    u = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, dtype=dtype, device=device)
    v = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, dtype=dtype,
                       device=device)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], dim=-1)


# ----------------------------------------------------------------------------------------------------------
# batched 1-D solver


class _Sums:
    """Per-point constants of R for rows (B, n) with invalid points zeroed (w = 0): p = (x, y).uv,
    r = |(x, y)|^2, U = sum |uv|^2. Invalid points get z = max valid z, so 1/(z + sigma) stays finite on the
    search domain and their zero p, r, xy, uv contribute nothing."""

    def __init__(self, uv: Tensor, xyz: Tensor, w: Tensor, zfill: Tensor):
        self.w = w
        self.z = torch.where(w > 0, xyz[..., 2], zfill.unsqueeze(-1))
        self.xy = xyz[..., :2] * w.unsqueeze(-1)
        self.uv = uv * w.unsqueeze(-1)
        self.p = (self.xy * self.uv).sum(-1)
        self.r = (self.xy ** 2).sum(-1)
        self.U = (self.uv ** 2).sum(-1)

    def moments(self, sigma: Tensor, order: int = 0) -> list[Tensor]:
        """[a_0, b_0, a_1, b_1, ...] with a_k = sum p / d^(k+1), b_k = sum r / d^(k+2), d = z + sigma;
        sigma (B, S) -> each (B, S)."""
        inv = 1.0 / (self.z.unsqueeze(1) + sigma.unsqueeze(-1))  # (B, S, n)
        out = []
        pk = self.p.unsqueeze(1) * inv
        rk = self.r.unsqueeze(1) * inv * inv
        for _ in range(order + 1):
            out += [pk.sum(-1), rk.sum(-1)]
            pk = pk * inv
            rk = rk * inv
        return out

    def residual_fast(self, sigma: Tensor, focal: Optional[Tensor]) -> Tensor:
        """R(sigma) from the moments, U - a^2/b or U - 2 f a + f^2 b (cancels near a perfect fit; used to
        locate the basin only)."""
        a, b = self.moments(sigma)
        U = self.U.sum(-1, keepdim=True)
        if focal is None:
            return U - a * a / b.clamp_min(1e-300)
        f = focal.unsqueeze(1)
        return U - 2 * f * a + f * f * b

    def residual(self, sigma: Tensor, focal: Optional[Tensor]) -> Tensor:
        """R(sigma) summed term by term (accurate near a perfect fit), sigma (B,) -> (B,)."""
        inv = 1.0 / (self.z + sigma.unsqueeze(-1))  # (B, n)
        if focal is None:
            f = (self.p * inv).sum(-1) / (self.r * inv * inv).sum(-1).clamp_min(1e-300)
        else:
            f = focal
        e = f[:, None, None] * self.xy * inv.unsqueeze(-1) - self.uv
        return (e * e).sum((-1, -2))

    def focal(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        a, b = (t.squeeze(1) for t in self.moments(sigma.unsqueeze(1)))
        return a / b.clamp_min(1e-300), b


def _solve_rows(uv: Tensor, xyz: Tensor, w: Tensor, focal: Optional[Tensor], scan: int = 33,
                golden_iters: int = 24, newton_iters: int = 8) -> FocalShift:
    """Solve (B, n) rows in float64. ``focal`` None (free) or (B,)."""
    B = uv.shape[0]
    big = torch.finfo(xyz.dtype).max
    z = xyz[..., 2]
    zmin = torch.where(w > 0, z, torch.full_like(z, big)).amin(-1)
    zmax = torch.where(w > 0, z, torch.full_like(z, -big)).amax(-1)
    valid = (w > 0).sum(-1) >= 2
    zmin = torch.where(valid, zmin, torch.ones_like(zmin))
    zmax = torch.where(valid, zmax, torch.ones_like(zmax))
    S = _Sums(uv, xyz, w, zmax)
    span = zmax - zmin
    tiny = 1e-9 * torch.maximum(zmin.abs(), zmax.abs()).clamp_min(1e-12)
    span = torch.where(span > tiny, span, tiny)

    def sigma_of(v: Tensor) -> Tensor:  # v (B, K) -> sigma (B, K); nearest shifted depth = span * 10^v > 0
        return span.unsqueeze(1) * torch.pow(10.0, v) - zmin.unsqueeze(1)

    def R(v: Tensor) -> Tensor:
        return S.residual_fast(sigma_of(v), focal)

    # 1) log-spaced scan brackets the global minimum
    grid = torch.linspace(-4.0, 4.0, scan, dtype=xyz.dtype, device=xyz.device).expand(B, scan)
    Rg = R(grid)
    Rg = torch.where(torch.isfinite(Rg), Rg, torch.full_like(Rg, float("inf")))
    k = Rg.argmin(-1, keepdim=True)
    lo = grid.gather(1, (k - 1).clamp_min(0))
    hi = grid.gather(1, (k + 1).clamp_max(scan - 1))

    # 2) golden-section search on v in [lo, hi], one new evaluation per step
    c = hi - _GOLDEN * (hi - lo)
    d = lo + _GOLDEN * (hi - lo)
    Rc, Rd = R(c), R(d)
    for _ in range(golden_iters):
        left = Rc <= Rd  # the minimum lies in [lo, d]
        hi = torch.where(left, d, hi)
        lo = torch.where(left, lo, c)
        new = torch.where(left, hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo))
        Rnew = R(new)
        c, d, Rc, Rd = (torch.where(left, new, d), torch.where(left, c, new),
                        torch.where(left, Rnew, Rd), torch.where(left, Rc, Rnew))
    v = torch.where(Rc <= Rd, c, d)
    sigma = sigma_of(v).squeeze(1)
    # Newton may move within the scan bracket around the basin
    sig_lo = sigma_of(grid.gather(1, (k - 1).clamp_min(0))).squeeze(1)
    sig_hi = sigma_of(grid.gather(1, (k + 1).clamp_max(scan - 1))).squeeze(1)
    best = S.residual(sigma, focal)

    # 3) safeguarded Newton on R'(sigma) = 0 with analytic derivatives (accepted only if R decreases)
    for _ in range(newton_iters):
        a0, b0, a1, b1, a2, b2 = (t.squeeze(1) for t in S.moments(sigma.unsqueeze(1), order=2))
        da, dda, db, ddb = -a1, 2 * a2, -2 * b1, 6 * b2  # d/dsigma of a = sum p/d and b = sum r/d^2
        if focal is None:  # R = U - h, h = a^2 / b
            bb = b0.clamp_min(1e-300)
            dh = 2 * a0 * da / bb - a0 * a0 * db / bb ** 2
            ddh = (2 * (da * da + a0 * dda) / bb - 4 * a0 * da * db / bb ** 2 - a0 * a0 * ddb / bb ** 2
                   + 2 * a0 * a0 * db * db / bb ** 3)
            g, H = -dh, -ddh
        else:  # R = U - 2 f a + f^2 b
            g, H = -2 * focal * da + focal * focal * db, -2 * focal * dda + focal * focal * ddb
        step = torch.where(H > 0, -g / torch.where(H > 0, H, torch.ones_like(H)), torch.zeros_like(g))
        cand = sigma + step
        inside = (cand > sig_lo) & (cand < sig_hi) & torch.isfinite(cand)
        cand = torch.where(inside, cand, sigma)
        Rn = S.residual(cand, focal)
        accept = inside & (Rn <= best)
        sigma = torch.where(accept, cand, sigma)
        best = torch.where(accept, Rn, best)

    if focal is None:
        fo, b0 = S.focal(sigma)
        valid = valid & (b0 > 0) & (fo > 0)
    else:
        fo = focal
    valid = valid & torch.isfinite(sigma) & torch.isfinite(fo)
    return FocalShift(focal=torch.where(valid, fo, torch.ones_like(fo)),
                      shift=torch.where(valid, sigma, torch.zeros_like(sigma)),
                      valid=valid, residual=torch.where(valid, best, torch.zeros_like(best)))


def solve_focal_shift(uv: Tensor, xyz: Tensor, mask: Optional[Tensor] = None,
                      focal: Union[None, float, Tensor] = None) -> FocalShift:
    """Solve the focal (unless given) and z-shift from matched samples: ``uv`` (*batch, n, 2) normalised
    view-plane coordinates, ``xyz`` (*batch, n, 3) affine-invariant points, ``mask`` (*batch, n).
    Non-finite points are ignored. Results in the dtype of ``xyz``; computed in float64."""
    if uv.shape[-1] != 2 or xyz.shape[-1] != 3 or uv.shape[:-1] != xyz.shape[:-1]:
        raise InputError("solve_focal_shift", f"expected uv (*batch, n, 2) and xyz (*batch, n, 3); got "
                         f"{tuple(uv.shape)} and {tuple(xyz.shape)}")
    batch, n = xyz.shape[:-2], xyz.shape[-2]
    B = math.prod(batch)
    x = xyz.detach().reshape(B, n, 3).double()
    u = uv.detach().reshape(B, n, 2).double()
    ok = torch.isfinite(x).all(-1) & torch.isfinite(u).all(-1)
    if mask is not None:
        ok = ok & mask.reshape(B, n).bool()
    x = torch.where(ok.unsqueeze(-1), x, torch.zeros_like(x))
    u = torch.where(ok.unsqueeze(-1), u, torch.zeros_like(u))
    f = None
    if focal is not None:
        f = torch.as_tensor(focal, dtype=torch.float64, device=x.device).expand(batch).reshape(B)
        if not torch.isfinite(f).all() or (f <= 0).any():
            raise InputError("solve_focal_shift.focal", "must be finite and positive")
    res = _solve_rows(u, x, ok.double(), f)
    dt = xyz.dtype if xyz.is_floating_point() else torch.float32
    return FocalShift(focal=res.focal.to(dt).reshape(batch), shift=res.shift.to(dt).reshape(batch),
                      valid=res.valid.reshape(batch), residual=res.residual.to(dt).reshape(batch))


def nearest_subsample(t: Tensor, size: tuple[int, int]) -> Tensor:
    """Plain nearest resize of (*batch, H, W, C) maps (``F.interpolate(mode='nearest')``: target cell i takes
    source row floor(i * H / h)), as MoGe's torch path does before focal recovery."""
    *batch, H, W, C = t.shape
    B = math.prod(batch)
    x = t.reshape(B, H, W, C).permute(0, 3, 1, 2)
    if not x.is_floating_point():
        x = x.float()
    y = F.interpolate(x, size=size, mode="nearest")
    return y.permute(0, 2, 3, 1).reshape(*batch, *size, C)


def recover_focal_shift(points: Tensor, mask: Optional[Tensor] = None, focal: Union[None, float, Tensor] = None,
                        downsample_size: tuple[int, int] = (64, 64)) -> FocalShift:
    """Recover focal (relative to half the image diagonal) and z-shift of point maps (*batch, H, W, 3).

    ``mask`` (*batch, H, W) marks valid pixels; ``focal`` fixes the focal (known field of view, see
    ``focal_from_fov_x``) so only the shift is solved. The map, mask and view-plane UV are nearest-subsampled
    to ``downsample_size`` first (MoGe's 64x64). Apply as ``depth = z + shift``."""
    if points.ndim < 3 or points.shape[-1] != 3:
        raise InputError("recover_focal_shift.points", f"expected (*batch, H, W, 3), got {tuple(points.shape)}")
    *batch, H, W, _ = points.shape
    if mask is not None and tuple(mask.shape) != (*batch, H, W):
        raise InputError("recover_focal_shift.mask", f"expected shape {(*batch, H, W)}, got {tuple(mask.shape)}")
    uv = normalized_view_plane_uv(W, H, dtype=torch.float64, device=points.device)
    pts = points.detach().double()
    pts_lr = nearest_subsample(pts, downsample_size)
    uv_lr = nearest_subsample(uv, downsample_size)
    h, w = downsample_size
    n = h * w
    uv_lr = uv_lr.reshape(1, n, 2).expand(math.prod(batch), n, 2).reshape(*batch, n, 2)
    mask_lr = None
    if mask is not None:
        mask_lr = nearest_subsample(mask.unsqueeze(-1), downsample_size).reshape(*batch, n) > 0.5
    res = solve_focal_shift(uv_lr, pts_lr.reshape(*batch, n, 3), mask_lr, focal)
    dt = points.dtype
    return FocalShift(res.focal.to(dt), res.shift.to(dt), res.valid, res.residual.to(dt))


# ----------------------------------------------------------------------------------------------------------
# focal / field of view / intrinsics conversions


def focal_from_fov_x(fov_x_deg: Union[float, Tensor], width: int, height: int) -> Tensor:
    """Focal relative to half the image diagonal for a horizontal field of view in degrees:
    ``a / sqrt(1 + a^2) / tan(fov_x / 2)``, ``a = W/H``."""
    a = width / height
    fov = torch.as_tensor(fov_x_deg, dtype=torch.float64)
    return (a / math.sqrt(1 + a * a)) / torch.tan(torch.deg2rad(fov) / 2)


def fov_x_from_focal(focal: Union[float, Tensor], width: int, height: int) -> Tensor:
    """Horizontal field of view in degrees of a focal relative to half the image diagonal."""
    a = width / height
    f = torch.as_tensor(focal, dtype=torch.float64) if not isinstance(focal, Tensor) else focal
    return torch.rad2deg(2 * torch.atan((a / math.sqrt(1 + a * a)) / f))


def intrinsics_from_focal(focal: Union[float, Tensor], width: int, height: int, pixel: bool = False) -> Tensor:
    """(*batch, 3, 3) intrinsics for focals (*batch) relative to half the image diagonal, principal point at
    the image centre, square pixels. Normalised (MoGe: image spans [0, 1] in u and v) unless ``pixel``."""
    f = torch.as_tensor(focal) if not isinstance(focal, Tensor) else focal
    if not f.is_floating_point():
        f = f.double()
    a = width / height
    fx = f / 2 * math.sqrt(1 + a * a) / a
    fy = f / 2 * math.sqrt(1 + a * a)
    K = torch.zeros(*f.shape, 3, 3, dtype=f.dtype, device=f.device)
    K[..., 0, 0], K[..., 1, 1] = fx, fy
    K[..., 0, 2], K[..., 1, 2], K[..., 2, 2] = 0.5, 0.5, 1.0
    return normalized_to_pixel_intrinsics(K, width, height) if pixel else K


def normalized_to_pixel_intrinsics(K: Tensor, width: int, height: int) -> Tensor:
    """K_pixel = diag(W, H, 1) @ K_normalised (pixel centres at (j + 0.5, i + 0.5))."""
    S = torch.tensor([width, height, 1.0], dtype=K.dtype, device=K.device)
    return K * S.reshape(3, 1)


def pixel_to_normalized_intrinsics(K: Tensor, width: int, height: int) -> Tensor:
    """Inverse of ``normalized_to_pixel_intrinsics``."""
    S = torch.tensor([1.0 / width, 1.0 / height, 1.0], dtype=K.dtype, device=K.device)
    return K * S.reshape(3, 1)


def intrinsics_to_fov(K: Tensor) -> tuple[Tensor, Tensor]:
    """Horizontal and vertical field of view in radians of normalised intrinsics (*batch, 3, 3):
    ``2 atan(0.5 / fx)``, ``2 atan(0.5 / fy)`` (principal point assumed central)."""
    return 2 * torch.atan(0.5 / K[..., 0, 0]), 2 * torch.atan(0.5 / K[..., 1, 1])
