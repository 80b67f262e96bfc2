"""Closed-form cases, checked on the CPU backend and the reference."""

from __future__ import annotations

import math

import pytest
import torch

from feat2gs.gaussians import Gaussians, SH_C0
from feat2gs.render import get_renderer

F, W, H = 40.0, 37, 29
CX, CY = 18.3, 14.1


def _camera(dtype=torch.float64):
    K = torch.tensor([[[F, 0, CX], [0, F, CY], [0, 0, 1]]], dtype=dtype)
    return K, torch.eye(4, dtype=dtype)[None]


def _gaussians(means, scale, opacity, rgb, dtype=torch.float64) -> Gaussians:
    n = len(means)
    rgb = torch.as_tensor(rgb, dtype=dtype).reshape(n, 3)
    return Gaussians(
        means=torch.as_tensor(means, dtype=dtype),
        log_scales=torch.full((n, 3), math.log(scale), dtype=dtype),
        quats=torch.tensor([[1.0, 0, 0, 0]] * n, dtype=dtype),
        opacity_logits=torch.logit(torch.as_tensor(opacity, dtype=dtype).reshape(n, 1)),
        sh_dc=((rgb - 0.5) / SH_C0).reshape(n, 1, 3),
        sh_rest=torch.zeros(n, 0, 3, dtype=dtype),
    )


@pytest.fixture(params=["cpu", "reference"])
def renderer(request):
    return get_renderer(request.param)


def test_single_isotropic_gaussian_closed_form(renderer):
    """A sphere of std s at camera-space (x, y, z) projects (EWA) to the 2D Gaussian centred at
    (f x / z + cx, f y / z + cy) with covariance s^2 J J^T + 0.3 I, J = (f / z) [[1, 0, -x/z], [0, 1, -y/z]];
    pixel = c o exp(-d^T cov^-1 d / 2) where that is >= 1/255, within the tiles of its box."""
    z, s, o = 2.0, 0.06, 0.8
    x, y = 0.11, -0.07
    rgb = [0.9, 0.4, 0.2]
    out = renderer.render(_gaussians([[x, y, z]], s, [o], rgb), *_camera(), W, H, render_depth=True)
    k = (F * s / z) ** 2
    cxx, cyy, cxy = k * (1 + (x / z) ** 2) + 0.3, k * (1 + (y / z) ** 2) + 0.3, k * x * y / z ** 2
    det = cxx * cyy - cxy ** 2
    u, v = F * x / z + CX, F * y / z + CY
    jj, ii = torch.meshgrid(torch.arange(W, dtype=torch.float64) + 0.5, torch.arange(H, dtype=torch.float64) + 0.5,
                            indexing="xy")
    dx, dy = jj - u, ii - v
    alpha = o * torch.exp(-0.5 * (cyy * dx ** 2 - 2 * cxy * dx * dy + cxx * dy ** 2) / det)
    alpha = torch.where(alpha >= 1 / 255, alpha, 0.0)
    extend = math.sqrt(2 * math.log(255 * o))
    rx, ry = math.ceil(extend * math.sqrt(cxx)), math.ceil(extend * math.sqrt(cyy))
    tj, ti = torch.floor(jj / 16), torch.floor(ii / 16)
    tile_ok = ((tj >= math.floor((u - rx) / 16)) & (tj < math.ceil((u + rx) / 16))
               & (ti >= math.floor((v - ry) / 16)) & (ti < math.ceil((v + ry) / 16)))
    # the tile rectangle covers every pixel where alpha >= 1/255 (it contains the ellipse's box)
    assert (alpha > 0).sum() > 20 and (alpha[~tile_ok] == 0).all() and (~tile_ok).any()
    expected = torch.stack([c * alpha for c in rgb])[None]
    assert torch.allclose(out.image, expected, atol=1e-12)
    assert torch.allclose(out.alpha, alpha[None, None], atol=1e-12)
    covered = alpha[None, None] > 0
    assert torch.allclose(out.depth[covered], torch.full_like(out.depth[covered], z), atol=1e-12)
    assert (out.depth[~covered] == 0).all()
    assert out.radii.tolist() == [[max(rx, ry)]]


def test_two_layers_composite_in_depth_order(renderer):
    """Front-to-back: c = a1 c1 + (1 - a1) a2 c2 + (1 - a1)(1 - a2) bg, whatever the input order."""
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    c_near, c_far = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    a_near, a_far = 0.7, 0.6
    K, vm = _camera()
    px = (int(CX), int(CY))  # the pixel whose centre is closest to the principal point
    cxp, cyp = px[0] + 0.5, px[1] + 0.5
    # both Gaussians project exactly onto that pixel centre
    def at(z):
        return [(cxp - CX) * z / F, (cyp - CY) * z / F, z]

    for order in ([0, 1], [1, 0]):
        means = [at(1.5), at(3.0)]
        ops, rgbs = [a_near, a_far], [c_near, c_far]
        g = _gaussians([means[i] for i in order], 0.05, [ops[i] for i in order], [rgbs[i] for i in order])
        out = renderer.render(g, K, vm, W, H, background=bg)
        got = out.image[0, :, px[1], px[0]]
        near, far = (torch.tensor(c, dtype=torch.float64) for c in (c_near, c_far))
        exp = a_near * near + (1 - a_near) * a_far * far + (1 - a_near) * (1 - a_far) * bg
        assert torch.allclose(got, exp, atol=1e-12), order
        exp_alpha = torch.tensor(1 - (1 - a_near) * (1 - a_far), dtype=torch.float64)
        assert torch.isclose(out.alpha[0, 0, px[1], px[0]], exp_alpha)


def test_opaque_front_layer_occludes(renderer):
    K, vm = _camera()
    big_front = _gaussians([[0.0, 0.0, 1.0]], 0.5, [0.99], [0.0, 1.0, 0.0])
    back = _gaussians([[0.0, 0.0, 4.0]], 2.0, [0.99], [1.0, 0.0, 0.0])
    both = Gaussians(*(torch.cat([getattr(back, k), getattr(big_front, k)]) for k in
                       ("means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest")))
    img = renderer.render(both, K, vm, W, H).image[0]
    centre = img[:, int(CY), int(CX)]
    assert centre[1] > 0.98 and centre[0] < 0.02  # green in front wins at the centre


def test_termination_before_transmittance_reaches_1e_4(renderer):
    """Five stacked layers of alpha 0.95: T goes 1, .05, .0025, 1.25e-4; the 4th would bring it to 6.25e-6
    <= 1e-4, so the pixel stops *before* it and layers 4 and 5 are not drawn."""
    K, vm = _camera()
    i, j = int(CY), int(CX)
    cxp, cyp = j + 0.5, i + 0.5
    zs = [1.0, 1.5, 2.0, 2.5, 3.0]
    means = [[(cxp - CX) * z / F, (cyp - CY) * z / F, z] for z in zs]
    rgb = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 1, 0]]
    out = renderer.render(_gaussians(means, 0.02, [0.95] * 5, rgb), K, vm, W, H, render_depth=True)
    T = [1.0, 0.05, 0.0025]
    exp = sum(0.95 * t * torch.tensor(c, dtype=torch.float64) for t, c in zip(T, rgb[:3]))
    assert torch.allclose(out.image[0, :, i, j], exp, atol=1e-9)
    assert torch.isclose(out.alpha[0, 0, i, j], torch.tensor(1 - 1.25e-4, dtype=torch.float64), atol=1e-12)
    exp_depth = sum(0.95 * t * z for t, z in zip(T, zs[:3])) / (1 - 1.25e-4)
    assert torch.isclose(out.depth[0, 0, i, j], torch.tensor(exp_depth, dtype=torch.float64), atol=1e-9)
