"""Pure-torch reference rasteriser: slow, dense, obviously correct; autograd does the backward.

For every camera and every pixel it considers every Gaussian at once (no per-pixel loops), applying
gsplat's rules literally:

1. membership: a Gaussian takes part at a pixel only if the pixel's tile (``tile_size`` pixels square) lies
   in the Gaussian's tile rectangle (``tile_rects``) and its radii are non-zero;
2. order: members are composited front to back by depth, ties by Gaussian index;
3. ``sigma = 0.5 (a dx^2 + c dy^2) + b dx dy`` with ``d = mean2d - (j + 0.5, i + 0.5)``,
   ``alpha = min(0.999, opacity * exp(-sigma))``; skipped if ``sigma < 0`` or ``alpha < 1/255``;
4. termination: with ``P_k`` the product of ``1 - alpha`` over non-skipped members up to and including k,
   a member is drawn iff ``P_k > 1e-4`` (gsplat stops *before* the Gaussian that would bring the
   transmittance to 1e-4 or below; as ``P`` only decreases, the drawn set is a prefix);
5. ``colour = sum_k alpha_k T_k c_k + T_final * background``, ``T_k = prod_{j<k drawn} (1 - alpha_j)``,
   accumulated alpha ``1 - T_final``.

The masks in 1-4 are piecewise constant (no gradient), exactly as in gsplat's kernels. Memory is bounded
by working one row of tiles at a time (rows are independent) over only the Gaussians whose tile rectangle
meets that row -- the others are masked out anyway -- with activation checkpointing of big rows when
gradients are needed.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from .projection import ALPHA_THRESHOLD, Splats, SplatRenderer, tile_grid, tile_rects

MAX_ALPHA = 0.999
T_MIN = 1e-4
CHECKPOINT_PAIRS = 1 << 22  # bands with more (pixel, Gaussian) pairs keep no activations for the backward


def _composite_band(means2d, conics, colors, opacities, rect, background, y0: int, y1: int, width: int,
                    tile_size: int):
    """Colours (H_band, W, D) and final transmittance (H_band, W) of pixel rows [y0, y1).

    Inputs hold only the Gaussians of one camera that may touch these rows, already sorted front to back.
    """
    dt = means2d.dtype
    ys = torch.arange(y0, y1, device=means2d.device, dtype=dt) + 0.5
    xs = torch.arange(width, device=means2d.device, dtype=dt) + 0.5
    py, px = torch.meshgrid(ys, xs, indexing="ij")  # (h, W)
    py, px = py.reshape(-1, 1), px.reshape(-1, 1)  # (P, 1)
    tx = torch.div(torch.arange(width, device=means2d.device), tile_size, rounding_mode="floor")
    ty = torch.div(torch.arange(y0, y1, device=means2d.device), tile_size, rounding_mode="floor")
    tyy, txx = torch.meshgrid(ty, tx, indexing="ij")
    txx, tyy = txx.reshape(-1, 1), tyy.reshape(-1, 1)
    member = (txx >= rect[None, :, 0]) & (txx < rect[None, :, 2]) & (tyy >= rect[None, :, 1]) & (tyy < rect[None, :, 3])

    dx = means2d[None, :, 0] - px  # (P, G)
    dy = means2d[None, :, 1] - py
    sigma = 0.5 * (conics[None, :, 0] * dx * dx + conics[None, :, 2] * dy * dy) + conics[None, :, 1] * dx * dy
    alpha = torch.clamp_max(opacities[None, :] * torch.exp(-sigma), MAX_ALPHA)
    with torch.no_grad():
        used = member & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        P = torch.cumprod(torch.where(used, 1.0 - alpha, 1.0), dim=1)
        drawn = used & (P > T_MIN)
    a = torch.where(drawn, alpha, 0.0)
    one_minus = 1.0 - a
    trans = torch.cumprod(one_minus, dim=1)  # inclusive
    T_before = torch.cat([torch.ones_like(trans[:, :1]), trans[:, :-1]], dim=1)
    weights = a * T_before
    rgb = weights @ colors  # (P, D)
    T_final = trans[:, -1] if trans.shape[1] > 0 else torch.ones_like(px[:, 0])
    rgb = rgb + T_final[:, None] * background[None, :]
    h = y1 - y0
    return rgb.reshape(h, width, -1), T_final.reshape(h, width)


def rasterize_reference(splats: Splats) -> tuple[torch.Tensor, torch.Tensor]:
    """Composites ``splats``: colours (C, D, H, W) and accumulated alpha (C, 1, H, W)."""
    W, H, ts = splats.width, splats.height, splats.tile_size
    tiles_x, tiles_y = tile_grid(W, H, ts)
    C, N, D = splats.colors.shape
    rect = tile_rects(splats.means2d, splats.radii, ts, tiles_x, tiles_y)  # (C, N, 4)
    images, alphas = [], []
    grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (splats.means2d, splats.conics, splats.colors, splats.opacities, splats.background))
    for c in range(C):
        # front-to-back order: a stable sort by depth keeps ties in Gaussian-index order
        order = torch.sort(splats.depths[c].detach(), stable=True).indices
        rows, trans = [], []
        for ty in range(tiles_y):
            y0, y1 = ty * ts, min(H, (ty + 1) * ts)
            r = rect[c, order]
            sel = order[(r[:, 1] <= ty) & (r[:, 3] > ty) & (r[:, 0] < r[:, 2])]
            args = (splats.means2d[c, sel], splats.conics[c, sel], splats.colors[c, sel],
                    splats.opacities[c, sel], rect[c, sel], splats.background[c])
            if grad and (y1 - y0) * W * len(sel) > CHECKPOINT_PAIRS:  # recompute big bands in the backward
                rgb, T = checkpoint(_composite_band, *args, y0, y1, W, ts, use_reentrant=False)
            else:
                rgb, T = _composite_band(*args, y0, y1, W, ts)
            rows.append(rgb)
            trans.append(T)
        images.append(torch.cat(rows, 0).permute(2, 0, 1))
        alphas.append(1.0 - torch.cat(trans, 0)[None])
    return torch.stack(images), torch.stack(alphas)


class ReferenceRenderer(SplatRenderer):
    """The oracle: shared torch projection + SH, dense torch compositing. Any device, any float dtype."""

    name = "reference"

    def rasterize(self, splats: Splats) -> tuple[torch.Tensor, torch.Tensor]:
        return rasterize_reference(splats)
