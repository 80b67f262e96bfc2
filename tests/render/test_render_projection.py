"""EWA projection vs gsplat's own pure-torch reference (gsplat/cuda/_torch_impl.py, runs on CPU)."""

from __future__ import annotations

import math

import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _isect_tiles, _quat_scale_to_covar_preci

from feat2gs.render.base import RenderSettings
from feat2gs.render.projection import project_gaussians, quat_to_rotmat, tile_grid, tile_rects
from render_testlib import random_scene


def _inputs(dtype, seed=0, n=400):
    case = random_scene(n=n, cameras=3, width=52, height=39, seed=seed, spread=2.5, behind=20).to(dtype)
    g = case.gaussians
    return case, g.means, g.quats, g.scales


def _gsplat(means, quats, scales, viewmats, K, W, H, eps2d=0.3):
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(means, covars, viewmats, K, W, H, eps2d=eps2d)
    return radii, means2d, depths, conics


def _expected_radii(conics, means2d, depths, opacities, W, H, s: RenderSettings):
    """gsplat 1.5.3's CUDA culling and opacity-aware radii, recomputed from gsplat-torch's outputs (float64)."""
    a, b, c = conics.double().unbind(-1)
    det = a * c - b * b
    cov_xx, cov_yy = c / det, a / det  # inverse of the conic
    op = opacities.double()[None].expand_as(cov_xx)
    extend = torch.sqrt(2 * torch.log(op.clamp_min(1 / 255) * 255)).clamp_max(3.33)
    rx, ry = torch.ceil(extend * cov_xx.sqrt()), torch.ceil(extend * cov_yy.sqrt())
    u, v = means2d.double().unbind(-1)
    z = depths.double()
    keep = (z >= s.near_plane) & (z <= s.far_plane) & (op >= 1 / 255) & ((rx > 0) | (ry > 0))
    keep &= ~((u + rx <= 0) | (u - rx >= W) | (v + ry <= 0) | (v - ry >= H))
    # entries whose radius is within rounding of an integer may legitimately differ
    border = ((extend * cov_xx.sqrt() - rx.round()).abs() < 1e-4) | ((extend * cov_yy.sqrt() - ry.round()).abs() < 1e-4)
    return torch.stack([rx, ry], -1) * keep[..., None], keep, border


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_projection_matches_gsplat_torch(dtype):
    case, means, quats, scales = _inputs(dtype)
    s = RenderSettings()
    opac = torch.rand(means.shape[0], generator=torch.Generator().manual_seed(3), dtype=dtype)
    opac[:10] = 1 / 400  # below 1/255: culled
    p = project_gaussians(means, quats, scales, opac, case.viewmats, case.K, case.width, case.height, s)
    radii_g, m2_g, d_g, con_g = _gsplat(means, quats, scales, case.viewmats, case.K, case.width, case.height)
    exp_radii, keep, border = _expected_radii(con_g, m2_g, d_g, opac, case.width, case.height, s)

    valid = (p.radii > 0).all(-1)
    assert valid.sum() > 100 and (~valid).sum() > 50  # both visible and culled Gaussians are exercised
    ok = ~border
    assert torch.equal(valid[ok], keep[ok])
    assert torch.equal(p.radii[ok].long(), exp_radii[ok].long())
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    v = valid & keep
    assert torch.allclose(p.means2d[v], m2_g[v], rtol=tol, atol=tol * 100)
    assert torch.allclose(p.depths[v], d_g[v], rtol=tol, atol=tol)
    # conics: compare relative to each conic's size (their entries can cancel)
    scale = con_g[v].abs().amax(-1, keepdim=True)
    assert ((p.conics[v] - con_g[v]).abs() / scale).max() < (1e-9 if dtype == torch.float64 else 1e-4)
    # culled entries are zeroed
    assert (p.means2d[~valid] == 0).all() and (p.conics[~valid] == 0).all() and (p.depths[~valid] == 0).all()


def test_projection_gradients_match_gsplat_torch():
    case, means, quats, scales = _inputs(torch.float64, seed=1, n=200)
    s = RenderSettings()
    ones = torch.ones(means.shape[0], dtype=torch.float64)
    with torch.no_grad():
        valid = (project_gaussians(means, quats, scales, ones, case.viewmats, case.K, case.width, case.height,
                                   s).radii > 0).all(-1)
    g = torch.Generator().manual_seed(5)
    w_m = torch.randn(valid.shape + (2,), generator=g, dtype=torch.float64) * valid[..., None]
    w_c = torch.randn(valid.shape + (3,), generator=g, dtype=torch.float64) * valid[..., None]
    w_d = torch.randn(valid.shape, generator=g, dtype=torch.float64) * valid

    def grads(fn):
        leaves = [t.detach().clone().requires_grad_(True) for t in (means, quats, scales, case.viewmats)]
        m2, con, dep = fn(*leaves)
        ((m2 * w_m).sum() + (con * w_c).sum() + (dep * w_d).sum()).backward()
        return [t.grad for t in leaves]

    ours = grads(lambda m, q, sc, vm: (lambda p: (p.means2d, p.conics, p.depths))(
        project_gaussians(m, q, sc, ones, vm, case.K, case.width, case.height, s)))
    ref = grads(lambda m, q, sc, vm: (lambda r: (r[1], r[3], r[2]))(
        _gsplat(m, q, sc, vm, case.K, case.width, case.height)))
    for name, a, b in zip(("means", "quats", "scales", "viewmats"), ours, ref):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-8 * b.abs().max().item()), name


def test_fov_clamp_changes_covariance_only():
    """A Gaussian far outside the field of view keeps its true projected mean, but its Jacobian uses the
    clamped direction (gsplat's behaviour): its 2D covariance equals that of a Gaussian at the clamp limit."""
    W, H, f = 40, 30, 30.0
    K = torch.tensor([[[f, 0, 20.0], [0, f, 15.0], [0, 0, 1]]], dtype=torch.float64)
    vm = torch.eye(4, dtype=torch.float64)[None]
    s = RenderSettings()
    lim = (W - 20.0) / f + 0.3 * 0.5 * W / f  # lim_x_pos
    z = 2.0
    means = torch.tensor([[5.0 * lim * z, 0.0, z], [lim * z, 0.0, z]], dtype=torch.float64)
    quats = torch.tensor([[1.0, 0, 0, 0]] * 2, dtype=torch.float64)
    scales = torch.full((2, 3), 3.0, dtype=torch.float64)  # big: the far one still reaches the image
    p = project_gaussians(means, quats, scales, torch.ones(2, dtype=torch.float64), vm, K, W, H, s)
    assert torch.allclose(p.means2d[0, 0, 0], torch.tensor(f * 5.0 * lim + 20.0, dtype=torch.float64))
    a0, b0, c0 = p.conics[0, 0]
    a1, b1, c1 = p.conics[0, 1]
    assert (p.radii[0] > 0).all()
    assert torch.allclose(torch.stack([a0, b0, c0]), torch.stack([a1, b1, c1]), rtol=1e-12)


def test_opacity_aware_radius_and_culling():
    W, H, f, z = 64, 48, 50.0, 3.0
    K = torch.tensor([[[f, 0, 32.0], [0, f, 24.0], [0, 0, 1]]], dtype=torch.float64)
    vm = torch.eye(4, dtype=torch.float64)[None]
    s = RenderSettings()
    ops = torch.tensor([1.0, 0.5, 0.02, 1 / 255 * 0.99, 1.0, 1.0, 1.0], dtype=torch.float64)
    means = torch.tensor([[0, 0, z]] * 4 + [[0, 0, 0.005], [0, 0, 2e10], [40.0, 0, z]], dtype=torch.float64)
    scale = 0.05
    p = project_gaussians(means, torch.tensor([[1.0, 0, 0, 0]] * 7, dtype=torch.float64),
                          torch.full((7, 3), scale, dtype=torch.float64), ops, vm, K, W, H, s)
    sigma2 = (f * scale / z) ** 2 + 0.3
    for i in range(3):
        extend = min(3.33, math.sqrt(2 * math.log(255 * ops[i].item())))
        r = math.ceil(extend * math.sqrt(sigma2))
        assert p.radii[0, i].tolist() == [r, r]
        assert torch.allclose(p.conics[0, i], torch.tensor([1 / sigma2, 0, 1 / sigma2], dtype=torch.float64))
    # opacity < 1/255, in front of the near plane, beyond the far plane, off the image: culled
    assert (p.radii[0, 3:] == 0).all()


def test_tile_rects_match_gsplat_isect_tiles():
    case, means, quats, scales = _inputs(torch.float32, seed=2, n=300)
    s = RenderSettings()
    p = project_gaussians(means, quats, scales, torch.ones(means.shape[0]), case.viewmats, case.K, case.width,
                          case.height, s)
    tx, ty = tile_grid(case.width, case.height, 16)
    rect = tile_rects(p.means2d, p.radii, 16, tx, ty)  # (C, N, 4)
    ours = set()
    C, N = rect.shape[:2]
    for c in range(C):
        for n in range(N):
            x0, y0, x1, y1 = rect[c, n].tolist()
            ours |= {(c, n, y * tx + x) for y in range(y0, y1) for x in range(x0, x1)}
    _, isect_ids, flatten_ids = _isect_tiles(p.means2d.contiguous(), p.radii.contiguous(), p.depths.contiguous(),
                                             16, tx, ty)
    tile_bits = (tx * ty).bit_length()
    hi = (isect_ids >> 32).tolist()
    theirs = {(h >> tile_bits, int(f) % N, h & ((1 << tile_bits) - 1)) for h, f in zip(hi, flatten_ids.tolist())}
    assert len(ours) > 100 and ours == theirs


def test_quat_to_rotmat_is_rotation():
    q = torch.randn(50, 4, dtype=torch.float64)
    R = quat_to_rotmat(q)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(50, dtype=torch.float64))
    assert torch.allclose(quat_to_rotmat(torch.tensor([[2.0, 0, 0, 0]], dtype=torch.float64))[0],
                          torch.eye(3, dtype=torch.float64))
