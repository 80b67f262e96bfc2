"""Differentiable EWA projection of 3D Gaussians (gsplat 1.5.3 conventions) and the shared torch front end.

Projection (``project_gaussians``) follows ``gsplat.fully_fused_projection`` as ``gsplat.rasterization``
calls it (pinhole, ``packed=False``, opacities passed in for the tighter radius):

* camera-space mean ``p = R m + t``; culled unless ``near <= p.z <= far``;
* 3D covariance ``R_q S S R_q^T`` from the normalised quaternion (wxyz) and scales;
* Jacobian of the perspective map with the mean's ``x/z`` and ``y/z`` clamped to the field of view widened
  by 30 % of its half-width on each side (``lim = (W - cx)/fx + 0.3 * W/(2 fx)`` etc.), the projected mean
  itself is not clamped: ``u = fx x/z + cx``, ``v = fy y/z + cy`` (pixel centres at j + 0.5);
* 2D covariance ``J R Sigma R^T J^T + eps2d I``; culled if its determinant is <= 0; conic = its inverse,
  stored as (inv_xx, inv_xy, inv_yy);
* opacity-aware radius per axis ``ceil(extend * sqrt(cov2d_ii))`` with
  ``extend = min(3.33, sqrt(2 ln(255 opacity)))``; culled if opacity < 1/255, if both radii are 0, or if
  the box ``mean +- radius`` lies off the image (touching the border counts as off).

Culled entries have radii (0, 0) and zero means2d / conics / depths (so no gradient reaches them).

The front end (``SplatRenderer``) turns raw ``Gaussians`` into per-camera splats -- activations, projection,
SH colours ``max(SH(dir) + 0.5, 0)``, optional depth channel, background -- hands them to a backend's
``rasterize`` and assembles a ``RenderOutput``. The CPU backend and the pure-torch reference share it, so
they differ only in rasterisation.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import InputError
from ..gaussians import Gaussians
from .base import Renderer, RenderOutput, RenderSettings
from .sh import sh_colors

ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat's ALPHA_THRESHOLD: smaller alphas are skipped
MAX_EXTEND = 3.33  # gsplat's sigma multiple of the bounding box
FOV_MARGIN = 0.3  # fraction of the half field of view added to the clamping limits


@dataclass
class Projection:
    """Projected Gaussians for C cameras. Only entries with radii > 0 are valid.

    means2d, conics and radii are (C, N, k) views of contiguous component-major (k, C, N) tensors.
    """

    means2d: torch.Tensor  # (C, N, 2) pixel coordinates
    conics: torch.Tensor  # (C, N, 3) inverse 2D covariance (xx, xy, yy)
    depths: torch.Tensor  # (C, N) camera-space z
    radii: torch.Tensor  # (C, N, 2) int32 box half-sizes in pixels, 0 = culled (no grad)


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) of quaternions (..., 4) in wxyz order (normalised here)."""
    rows = _rotmat_entries(*quats.unbind(-1))
    return torch.stack(rows, dim=-1).reshape(*quats.shape[:-1], 3, 3)


def _rotmat_entries(w, x, y, z) -> list[torch.Tensor]:
    """Row-major entries of the rotation of the quaternion (w, x, y, z) after normalisation."""
    inv = torch.rsqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w * inv, x * inv, y * inv, z * inv
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    return [
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    ]


def project_gaussians(
    means: torch.Tensor,  # (N, 3)
    quats: torch.Tensor,  # (N, 4) wxyz, any norm
    scales: torch.Tensor,  # (N, 3) activated
    opacities: torch.Tensor,  # (N,) activated, only used for the radius and culling
    viewmats: torch.Tensor,  # (C, 4, 4) world-to-camera
    Ks: torch.Tensor,  # (C, 3, 3)
    width: int,
    height: int,
    settings: RenderSettings,
) -> Projection:
    """EWA projection, differentiable w.r.t. means, quats, scales and viewmats (see the module docstring).

    Written on (C, N) component tensors (no (C, N, 3, 3) intermediates, no masked ``where``): with ~20
    elementwise ops per output this keeps autograd's cost close to the arithmetic. The (C, N, k) outputs are
    views of component-major (k, C, N) tensors.
    """
    dt = means.dtype
    R = viewmats[:, :3, :3]  # (C, 3, 3)
    # camera-space means, one contiguous (C, N) tensor per coordinate
    # (elementwise, not a matmul: MKL's GEMM rounds differently for different thread counts)
    mx, my, mz = means.t().unsqueeze(1).unbind(0)  # (1, N) each
    x, y, z = (R[:, i, 0:1] * mx + R[:, i, 1:2] * my + R[:, i, 2:3] * mz + viewmats[:, i, 3:4] for i in range(3))
    fx, fy = Ks[:, 0, 0:1], Ks[:, 1, 1:2]  # (C, 1)
    cx, cy = Ks[:, 0, 2:3], Ks[:, 1, 2:3]

    in_depth = ((z >= settings.near_plane) & (z <= settings.far_plane)).to(dt)
    rz = (z * in_depth + (1.0 - in_depth)).reciprocal()  # 1/z, or 1 where culled by depth (kept finite)

    # Jacobian with the view direction clamped to the (widened) field of view
    mx, my = FOV_MARGIN * 0.5 * width / fx, FOV_MARGIN * 0.5 * height / fy
    ux = torch.minimum(torch.maximum(x * rz, -(cx / fx + mx)), (width - cx) / fx + mx)  # clamped tx / z
    uy = torch.minimum(torch.maximum(y * rz, -(cy / fy + my)), (height - cy) / fy + my)
    fxz, fyz = fx * rz, fy * rz
    # W = J R, rows (W0, W1): W0 = fx/z (R_0 - ux R_2), W1 = fy/z (R_1 - uy R_2), each entry (C, N)
    Rc = [[R[:, i, j:j + 1] for j in range(3)] for i in range(3)]  # (C, 1) entries
    W0 = [fxz * (Rc[0][j] - ux * Rc[2][j]) for j in range(3)]
    W1 = [fyz * (Rc[1][j] - uy * Rc[2][j]) for j in range(3)]
    # world covariance M M^T with M = rot(q) diag(s); T = W M, cov2d = T T^T
    rq = _rotmat_entries(*quats.t().contiguous().unbind(0))
    s = scales.t().contiguous().unbind(0)
    M = [[rq[3 * j + k] * s[k] for k in range(3)] for j in range(3)]  # (N,) entries
    T0 = [W0[0] * M[0][k] + W0[1] * M[1][k] + W0[2] * M[2][k] for k in range(3)]
    T1 = [W1[0] * M[0][k] + W1[1] * M[1][k] + W1[2] * M[2][k] for k in range(3)]
    cov_xx = T0[0] * T0[0] + T0[1] * T0[1] + T0[2] * T0[2] + settings.eps2d
    cov_xy = T0[0] * T1[0] + T0[1] * T1[1] + T0[2] * T1[2]
    cov_yy = T1[0] * T1[0] + T1[1] * T1[1] + T1[2] * T1[2] + settings.eps2d
    det = cov_xx * cov_yy - cov_xy * cov_xy
    u, v = fxz * x + cx, fyz * y + cy

    with torch.no_grad():
        op = opacities.detach()[None, :]
        thr = torch.tensor(ALPHA_THRESHOLD, dtype=op.dtype, device=op.device)
        visible_op = op >= thr
        extend = torch.sqrt(2.0 * torch.log(op.clamp_min(thr) / thr)).clamp_max(MAX_EXTEND)
        rx = torch.ceil(extend * torch.sqrt(cov_xx.detach().clamp_min(0)))
        ry = torch.ceil(extend * torch.sqrt(cov_yy.detach().clamp_min(0)))
        ud, vd = u.detach(), v.detach()
        off_image = (ud + rx <= 0) | (ud - rx >= width) | (vd + ry <= 0) | (vd - ry >= height)
        keep_b = (in_depth > 0) & (det.detach() > 0) & visible_op & ((rx > 0) | (ry > 0)) & ~off_image
        keep = keep_b.to(dt)
        radii = torch.stack([rx, ry]).mul_(keep).to(torch.int32).permute(1, 2, 0)

    # culled entries are zeroed by a multiplicative mask (z and det were made safe above, so no 0 * inf)
    inv_det = keep / (det * keep + (1.0 - keep))
    conics = torch.stack([cov_yy * inv_det, -cov_xy * inv_det, cov_xx * inv_det]).permute(1, 2, 0)
    means2d = torch.stack([u * keep, v * keep]).permute(1, 2, 0)
    return Projection(means2d=means2d, conics=conics, depths=z * keep, radii=radii)


def tile_grid(width: int, height: int, tile_size: int) -> tuple[int, int]:
    """Number of tiles (along x, along y) covering the image."""
    return math.ceil(width / tile_size), math.ceil(height / tile_size)


def tile_rects(means2d: torch.Tensor, radii: torch.Tensor, tile_size: int, tiles_x: int,
               tiles_y: int) -> torch.Tensor:
    """Tiles touched by each splat as gsplat's ``isect_tiles`` computes them: (..., 4) int64 (x0, y0, x1, y1).

    x0 = clamp(floor(u / ts - rx / ts), 0, tiles_x), x1 = clamp(ceil(u / ts + rx / ts), 0, tiles_x)
    (half-open), the same along y, in the dtype of ``means2d``. Splats with a zero radius touch no tile.
    """
    ts = float(tile_size)
    r = radii.to(means2d.dtype) / ts
    c = means2d.detach() / ts
    lo = torch.floor(c - r)
    hi = torch.ceil(c + r)
    lim = torch.tensor([tiles_x, tiles_y], dtype=lo.dtype, device=lo.device)
    lo = torch.minimum(lo.clamp_min(0), lim)
    hi = torch.minimum(hi.clamp_min(0), lim)
    rect = torch.cat([lo, hi], dim=-1).long()
    valid = (radii > 0).all(dim=-1, keepdim=True)
    return torch.where(valid, rect, 0)


# --------------------------------------------------------------------------- shared front end


@dataclass
class Splats:
    """What a rasteriser needs for C cameras: per-camera 2D Gaussians with D-channel colours.

    Tensors may be non-contiguous views (the front end builds them component-major, (k, C, N)).

    Entries with radii (0, 0) are culled and must not be drawn. Splats are composited in increasing
    ``depths`` (ties by index) within each tile. ``background`` (C, D) is blended with the
    final transmittance.
    """

    means2d: torch.Tensor  # (C, N, 2)
    conics: torch.Tensor  # (C, N, 3)
    colors: torch.Tensor  # (C, N, D)
    opacities: torch.Tensor  # (C, N)
    depths: torch.Tensor  # (C, N) sort key: front to back, ties by index
    radii: torch.Tensor  # (C, N, 2) int32
    background: torch.Tensor  # (C, D)
    width: int
    height: int
    tile_size: int


def check_settings(settings: RenderSettings) -> None:
    if not settings.near_plane > 0:
        raise InputError("render.near_plane", f"must be > 0, got {settings.near_plane}")
    if not settings.far_plane > settings.near_plane:
        raise InputError("render.far_plane", f"must exceed near_plane, got {settings.far_plane}")
    if not settings.eps2d >= 0:
        raise InputError("render.eps2d", f"must be >= 0, got {settings.eps2d}")
    if int(settings.tile_size) != settings.tile_size or settings.tile_size <= 0:
        raise InputError("render.tile_size", f"must be a positive integer, got {settings.tile_size}")


def check_cameras(K: torch.Tensor, viewmats: torch.Tensor, width: int, height: int) -> int:
    """Validates camera inputs; returns the number of cameras."""
    if K.ndim != 3 or K.shape[1:] != (3, 3):
        raise InputError("render.K", f"expected shape (C, 3, 3), got {tuple(K.shape)}")
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4):
        raise InputError("render.viewmats", f"expected shape (C, 4, 4), got {tuple(viewmats.shape)}")
    if K.shape[0] != viewmats.shape[0]:
        raise InputError("render.viewmats", f"{viewmats.shape[0]} viewmats for {K.shape[0]} intrinsics")
    if int(width) != width or int(height) != height or width <= 0 or height <= 0:
        raise InputError("render.size", f"bad image size {width}x{height}")
    return int(K.shape[0])


def background_for(background: Optional[torch.Tensor], C: int, like: torch.Tensor) -> torch.Tensor:
    """(C, 3) background from None (black), (3,) or (C, 3)."""
    if background is None:
        return like.new_zeros(C, 3)
    bg = background.to(like)
    if bg.shape == (3,):
        return bg.expand(C, 3)
    if bg.shape != (C, 3):
        raise InputError("render.background", f"expected shape (3,) or ({C}, 3), got {tuple(bg.shape)}")
    return bg


class SplatRenderer(Renderer):
    """Torch front end shared by backends that rasterise per-camera splats themselves."""

    @abstractmethod
    def rasterize(self, splats: Splats) -> tuple[torch.Tensor, torch.Tensor]:
        """Composites splats: colours (C, D, H, W) with background, accumulated alpha (C, 1, H, W)."""

    def prepare(self, means: torch.Tensor) -> None:
        """Hook to check the backend can take tensors like ``means`` (device, dtype) and e.g. build a kernel."""

    def render(self, gaussians: Gaussians, K: torch.Tensor, viewmats: torch.Tensor, width: int, height: int,
               background: Optional[torch.Tensor] = None, render_depth: bool = False) -> RenderOutput:
        check_settings(self.settings)
        C = check_cameras(K, viewmats, width, height)
        width, height = int(width), int(height)
        means = gaussians.means
        self.prepare(means)
        K = K.to(means)
        viewmats = viewmats.to(means)
        opacities = gaussians.opacities
        proj = project_gaussians(means, gaussians.quats, gaussians.scales, opacities, viewmats, K,
                                 width, height, self.settings)
        rgb = sh_colors(means, gaussians.sh_dc, gaussians.sh_rest, viewmats, gaussians.sh_degree)  # (C, N, 3)
        bg = background_for(background, C, means)
        channels = [rgb.permute(2, 0, 1)]  # colours are built channel-major: (D, C, N)
        if render_depth:
            channels.append(proj.depths[None])
            bg = torch.cat([bg, bg.new_zeros(C, 1)], dim=-1)
        colors = torch.cat(channels, dim=0).permute(1, 2, 0)  # (C, N, D) view
        splats = Splats(proj.means2d, proj.conics, colors, opacities[None].expand(C, -1), proj.depths.detach(),
                        proj.radii, bg, width, height, int(self.settings.tile_size))
        image, alpha = self.rasterize(splats)
        depth = None
        if render_depth:
            depth = image[:, 3:4] / alpha.clamp_min(1e-10)
            image = image[:, :3]
        return RenderOutput(image=image, alpha=alpha, depth=depth, radii=proj.radii.amax(dim=-1))
