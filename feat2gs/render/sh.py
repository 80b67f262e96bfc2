"""Real spherical harmonics (degrees 0..3) with gsplat 1.5.3's basis, signs and ordering.

gsplat evaluates the colour of a Gaussian seen from a camera as ``sum_k Y_k(d) * coeffs[k]`` where ``d`` is
the unit vector from the camera centre to the Gaussian mean, and the renderer then uses
``max(sum + 0.5, 0)``. The basis follows Sloan's "Efficient Spherical Harmonic Evaluation" (JCGT 2013):
index 0 is the constant ``Y_0^0 = 0.28209...``, indices 1..3 are ``(-c1 y, c1 z, -c1 x)`` with
``c1 = 0.48860...``, then the degree-2 and degree-3 bands in the order gsplat uses (4..8, 9..15).

Everything here is plain differentiable torch, so gradients reach the coefficients, the means (through the
view direction) and the camera pose (through the camera centre).
"""

from __future__ import annotations

import functools

import torch

from ..errors import InputError

MAX_SH_DEGREE = 3

# Normalisation constants of the real SH basis (values of the closed-form prefactors).
_C0 = 0.2820947917738781
_C1 = 0.48860251190292
_C2_XZ = 1.092548430592079  # yz and xz terms of degree 2
_C2_Z2A, _C2_Z2B = 0.9461746957575601, 0.3153915652525201
_C2_X2Y2 = 0.5462742152960395
_C3_A = 0.5900435899266435
_C3_B = 1.445305721320277
_C3_C1, _C3_C2 = 2.285228997322329, 0.4570457994644658
_C3_D1, _C3_D2 = 1.865881662950577, 1.119528997770346


def _check_degree(degree: int) -> None:
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise InputError("gaussians.sh_rest", f"SH degree {degree} not supported (0..{MAX_SH_DEGREE})")


def basis_components(degree: int, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> list[torch.Tensor]:
    """The (degree + 1)^2 basis functions at unit directions given by components (any common shape)."""
    _check_degree(degree)
    out = [torch.full_like(x, _C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        z2 = z * z
        xy_diff = x * x - y * y  # cos(2 phi) part
        xy_prod = 2.0 * x * y  # sin(2 phi) part
        out += [
            _C2_X2Y2 * xy_prod,  # 4
            -_C2_XZ * z * y,  # 5
            _C2_Z2A * z2 - _C2_Z2B,  # 6
            -_C2_XZ * z * x,  # 7
            _C2_X2Y2 * xy_diff,  # 8
        ]
        if degree >= 3:
            cos3 = x * xy_diff - y * xy_prod  # cos(3 phi) part
            sin3 = x * xy_prod + y * xy_diff  # sin(3 phi) part
            zc = -_C3_C1 * z2 + _C3_C2
            zb = _C3_B * z
            out += [
                -_C3_A * sin3,  # 9
                zb * xy_prod,  # 10
                zc * y,  # 11
                z * (_C3_D1 * z2 - _C3_D2),  # 12
                zc * x,  # 13
                zb * xy_diff,  # 14
                -_C3_A * cos3,  # 15
            ]
    return out


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """The (degree + 1)^2 basis functions at unit directions ``dirs`` (..., 3) -> (..., (degree + 1)^2)."""
    return torch.stack(basis_components(degree, *dirs.unbind(-1)), dim=-1)


def _unit(*comps: torch.Tensor) -> list[torch.Tensor]:
    """Components divided by the vector's length (zero vectors stay zero)."""
    sq = comps[0] * comps[0] + comps[1] * comps[1] + comps[2] * comps[2]
    inv = torch.rsqrt(sq.clamp_min(torch.finfo(sq.dtype).tiny))
    return [c * inv for c in comps]


def eval_sh(degree: int, dirs: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """SH sum ``sum_k Y_k(normalize(dirs)) coeffs[..., k, :]`` using the first (degree + 1)^2 coefficients.

    ``dirs`` (..., 3) need not be unit length; ``coeffs`` (..., K, 3) broadcasts against ``dirs``' batch
    shape. Returns (..., 3) before the +0.5 offset. (Straightforward version; ``sh_colors`` is the fast one.)
    """
    _check_degree(degree)
    nb = (degree + 1) ** 2
    if coeffs.shape[-2] < nb:
        raise InputError("gaussians.sh_rest", f"degree {degree} needs {nb} coefficients, got {coeffs.shape[-2]}")
    basis = sh_basis(degree, torch.stack(_unit(*dirs.unbind(-1)), -1))  # (..., nb)
    return (basis.unsqueeze(-1) * coeffs[..., :nb, :]).sum(-2)


def camera_centres(viewmats: torch.Tensor) -> torch.Tensor:
    """Camera centres (C, 3) of world-to-camera matrices (C, 4, 4), as gsplat computes them (inverse)."""
    return torch.linalg.inv(viewmats)[:, :3, 3]


@functools.lru_cache(maxsize=16)
def _spread_sum(k: int, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """0/1 matrices: ``spread`` (k, 3k) copies coefficient index j to columns 3j..3j+2, ``gather`` (3k, 3)
    sums the columns of each colour channel."""
    eye = torch.eye(k, dtype=dtype, device=device)
    spread = eye.repeat_interleave(3, dim=1)
    gather = torch.eye(3, dtype=dtype, device=device).repeat(k, 1)
    return spread, gather


def sh_colors(means: torch.Tensor, sh_dc: torch.Tensor, sh_rest: torch.Tensor, viewmats: torch.Tensor,
              degree: int) -> torch.Tensor:
    """Per-camera RGB of every Gaussian, (C, N, 3): ``max(SH(mean - camera centre) + 0.5, 0)``.

    ``sh_dc`` (N, 1, 3), ``sh_rest`` (N, K - 1, 3); only the first (degree + 1)^2 coefficients are used.
    The sum over coefficients runs as two small GEMMs around one elementwise product on (C N, 3 (K - 1))
    (spread the basis to the coefficients' layout, multiply, gather per channel), which keeps both the
    forward and autograd's backward free of slow small-batch matmuls and strided reductions.
    """
    _check_degree(degree)
    C, N = viewmats.shape[0], means.shape[0]
    dc = _C0 * sh_dc[:, 0, :]  # (N, 3)
    if degree == 0:
        return torch.clamp_min(dc + 0.5, 0.0).unsqueeze(0).expand(C, N, 3)
    k = (degree + 1) ** 2 - 1
    if sh_rest.shape[1] < k:
        raise InputError("gaussians.sh_rest", f"degree {degree} needs {k} rest coefficients, got {sh_rest.shape[1]}")
    cam = camera_centres(viewmats)  # (C, 3)
    # unbind (not indexing): its backward is one stack, where indexing would zero-fill a full tensor each time
    mx, my, mz = means.t().contiguous().unbind(0)
    cx, cy, cz = cam.unbind(1)
    dirs = (mx[None] - cx[:, None], my[None] - cy[:, None], mz[None] - cz[:, None])  # (C, N) each
    basis = basis_components(degree, *_unit(*dirs))[1:]  # k tensors (C, N)
    spread, gather = _spread_sum(k, means.dtype, str(means.device))
    b_rep = torch.stack(basis).reshape(k, C * N).t() @ spread  # (C N, 3k): basis j at columns 3j..3j+2
    coeffs = sh_rest if sh_rest.shape[1] == k else sh_rest[:, :k]  # (slicing would zero-fill in the backward)
    # with one camera, no broadcasting: its backward would reduce over a size-1 dim (an extra zero-fill)
    prod = b_rep * coeffs.reshape(N, 3 * k) if C == 1 else b_rep.reshape(C, N, 3 * k) * coeffs.reshape(N, 3 * k)
    rest = (prod @ gather).reshape(C, N, 3)
    return torch.clamp_min(rest + (dc + 0.5), 0.0)
