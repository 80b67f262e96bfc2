"""Gradients against finite differences (torch.autograd.gradcheck, float64)."""

from __future__ import annotations

import torch

from feat2gs.gaussians import Gaussians
from feat2gs.render import get_renderer
from feat2gs.render.cpu_backend import rasterize_cpu
from feat2gs.render.projection import Splats
from render_testlib import PARAMS, random_scene


def _full_pipeline(renderer, case, bg):
    """(params..., viewmats) -> (image, alpha, depth) as one differentiable function for gradcheck."""

    def fn(*tensors):
        gs = Gaussians(*tensors[:6])
        out = renderer.render(gs, case.K, tensors[6], case.width, case.height, background=bg, render_depth=True)
        return out.image, out.alpha, out.depth * out.alpha

    inputs = [getattr(case.gaussians, k).detach().clone().requires_grad_(True) for k in PARAMS]
    inputs.append(case.viewmats.detach().clone().requires_grad_(True))
    return fn, inputs


def _tiny_case(seed):
    # few, fairly large Gaussians in a small image: every pixel sees several, nothing sits on a threshold
    return random_scene(n=8, cameras=2, width=14, height=11, degree=2, seed=seed, scale=0.6, aniso=0.3,
                        spread=0.5)


def test_reference_gradcheck_full_pipeline():
    case = _tiny_case(0)
    fn, inputs = _full_pipeline(get_renderer("reference"), case, torch.tensor([0.2, 0.5, 0.1], dtype=torch.float64))
    out = fn(*inputs)
    assert out[1].mean() > 0.4
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_cpu_backend_gradcheck_full_pipeline():
    case = _tiny_case(1)
    fn, inputs = _full_pipeline(get_renderer("cpu"), case, torch.tensor([0.2, 0.5, 0.1], dtype=torch.float64))
    assert fn(*inputs)[1].mean() > 0.4
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_cpu_kernel_gradcheck_on_splats():
    """The analytic backward of the C++ kernel alone, w.r.t. means2d, conics, colours (5 channels),
    opacities and background, against central differences."""
    g = torch.Generator().manual_seed(0)
    C, N, W, H, D = 2, 9, 21, 18, 5
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    means2d = torch.stack([r(C, N) * W, r(C, N) * H], -1)
    s1, s2, ang = 1.5 + 4 * r(C, N), 1 + 2 * r(C, N), 3.1 * r(C, N)
    c, s = torch.cos(ang), torch.sin(ang)
    cxx, cyy, cxy = c * c * s1 ** 2 + s * s * s2 ** 2, s * s * s1 ** 2 + c * c * s2 ** 2, c * s * (s1 ** 2 - s2 ** 2)
    det = cxx * cyy - cxy ** 2
    conics = torch.stack([cyy / det, -cxy / det, cxx / det], -1)
    radii = torch.stack([torch.ceil(3.33 * cxx.sqrt()), torch.ceil(3.33 * cyy.sqrt())], -1).to(torch.int32)
    opac = 0.3 + 0.6 * r(C, N)
    depths = r(C, N)
    colors, background = r(C, N, D), r(C, D)

    def fn(m, cn, col, op, bg):
        img, alpha = rasterize_cpu(Splats(m, cn, col, op, depths, radii, bg, W, H, 16))
        return img, alpha

    inputs = [t.clone().requires_grad_(True) for t in (means2d, conics, colors, opac, background)]
    assert fn(*inputs)[1].mean() > 0.4
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)
