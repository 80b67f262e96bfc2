"""Spherical harmonics vs gsplat's pure-torch ``_spherical_harmonics``."""

from __future__ import annotations

import pytest
import torch
from gsplat.cuda._torch_impl import _spherical_harmonics

from feat2gs.errors import InputError
from feat2gs.render.sh import camera_centres, eval_sh, sh_colors
from render_testlib import random_scene


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_eval_sh_matches_gsplat(degree):
    g = torch.Generator().manual_seed(degree)
    dirs = torch.randn(300, 3, generator=g, dtype=torch.float64) * 3
    coeffs = torch.randn(300, 16, 3, generator=g, dtype=torch.float64)
    ours = eval_sh(degree, dirs, coeffs)
    ref = _spherical_harmonics(degree, dirs, coeffs)
    assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_colors_values_and_gradients_match_gsplat(degree):
    case = random_scene(n=120, cameras=3, degree=degree, seed=degree)
    gs = case.gaussians
    w = torch.randn(3, 120, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)

    def run(fn):
        leaves = [t.detach().clone().requires_grad_(True) for t in (gs.means, gs.sh_dc, gs.sh_rest, case.viewmats)]
        out = fn(*leaves)
        (out * w).sum().backward()
        return out.detach(), [torch.zeros_like(t) if t.grad is None else t.grad for t in leaves]

    ours, g_ours = run(lambda m, dc, rest, vm: sh_colors(m, dc, rest, vm, degree))

    def gsplat_colors(m, dc, rest, vm):
        campos = torch.inverse(vm)[:, :3, 3]
        dirs = m[None] - campos[:, None]
        coeffs = torch.cat([dc, rest], 1)[None].expand(vm.shape[0], -1, -1, -1)
        return torch.clamp_min(_spherical_harmonics(degree, dirs, coeffs) + 0.5, 0.0)

    ref, g_ref = run(gsplat_colors)
    assert (ref > 0).float().mean() > 0.5  # the clamp is exercised but most colours are positive
    assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-12)
    for name, a, b in zip(("means", "sh_dc", "sh_rest", "viewmats"), g_ours, g_ref):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11), name
    if degree == 0:
        assert (g_ours[0] == 0).all() and (g_ours[3] == 0).all()  # no view dependence


def test_sh_colors_float32_close_to_float64():
    case = random_scene(n=500, cameras=2, degree=3, seed=4)
    gs = case.gaussians
    c64 = sh_colors(gs.means, gs.sh_dc, gs.sh_rest, case.viewmats, 3)
    g32 = gs.to(torch.float32)
    c32 = sh_colors(g32.means, g32.sh_dc, g32.sh_rest, case.viewmats.float(), 3)
    assert (c32.double() - c64).abs().max() < 1e-5


def test_camera_centres_and_bad_degree():
    case = random_scene(n=4, cameras=2)
    vm = case.viewmats
    centres = camera_centres(vm)
    # the centre maps to the camera origin
    h = torch.cat([centres, torch.ones(2, 1, dtype=vm.dtype)], -1)
    assert torch.allclose(torch.einsum("cij,cj->ci", vm, h)[:, :3], torch.zeros(2, 3, dtype=vm.dtype), atol=1e-12)
    with pytest.raises(InputError):
        eval_sh(4, torch.randn(2, 3), torch.randn(2, 25, 3))
    with pytest.raises(InputError):
        sh_colors(case.gaussians.means, case.gaussians.sh_dc, case.gaussians.sh_rest[:, :3], vm, 3)
