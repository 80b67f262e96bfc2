"""The compiled CPU backend against the dense pure-torch reference: images and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from feat2gs.render import get_renderer
from feat2gs.render.cpu_backend import rasterize_cpu
from feat2gs.render.projection import Splats
from feat2gs.render.torch_reference import rasterize_reference
from render_testlib import rel_err, random_scene, render_and_grad

# (name, scene kwargs, background, render_depth)
CASES = [
    ("two_cams_sh3_aniso", dict(n=150, cameras=2, width=45, height=37, degree=3, seed=0), "rand", True),
    ("three_cams_sh1_behind", dict(n=300, cameras=3, width=50, height=23, degree=1, seed=1, behind=15), None, True),
    ("one_cam_sh0_big_splats", dict(n=60, cameras=1, width=33, height=40, degree=0, seed=2, scale=0.25), "rand",
     False),
    ("exact_tiles_dense", dict(n=400, cameras=1, width=32, height=16, degree=2, seed=3, aniso=1.2), "white", True),
    ("wide_spread_sh3", dict(n=250, cameras=2, width=61, height=47, degree=3, seed=4, spread=2.0), None, False),
]


def _background(kind, cameras):
    if kind is None:
        return None
    if kind == "white":
        return torch.ones(3)
    return torch.rand(cameras, 3, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def renderers():
    return get_renderer("cpu"), get_renderer("reference")


@pytest.mark.parametrize("name,kw,bg,depth", CASES, ids=[c[0] for c in CASES])
def test_cpu_matches_reference(renderers, name, kw, bg, depth):
    cpu, ref = renderers
    case = random_scene(**kw).to(torch.float32)
    background = _background(bg, kw["cameras"])
    a = render_and_grad(cpu, case, background, depth, wrt_background=background is not None)
    b = render_and_grad(ref, case, background, depth, wrt_background=background is not None)
    # the scene must exercise drawing: visible Gaussians and partly covered pixels
    assert (b.radii > 0).sum() > 10 and 0.05 < b.alpha.mean() < 0.999
    assert (a.image - b.image).abs().max() < 1e-5
    assert (a.alpha - b.alpha).abs().max() < 1e-5
    if depth:
        # the rendered channel is the accumulated depth; the expected depth divides it by alpha
        assert (a.depth * a.alpha - b.depth * b.alpha).abs().max() < 1e-5
        solid = b.alpha > 0.2
        assert ((a.depth - b.depth).abs() / b.depth.abs().clamp_min(1))[solid].max() < 1e-5
    assert torch.equal(a.radii, b.radii)
    for key, g in b.grads.items():
        if g.numel() == 0:  # sh_rest of a degree-0 scene
            continue
        assert g.norm() > 0, key
        assert rel_err(a.grads[key], g) < 1e-4, (key, rel_err(a.grads[key], g))


def _hard_splats(seed: int, C: int = 2, N: int = 400, W: int = 53, H: int = 35, D: int = 4):
    """Splats straight into the rasterisers: very elongated and large ones, opacities down to the 1/255
    threshold, duplicate depths (ties), culled entries, means off the image."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    means2d = torch.stack([r(C, N) * (W + 40) - 20, r(C, N) * (H + 40) - 20], -1)
    ang = r(C, N) * math.pi
    s1 = torch.exp(r(C, N) * 6 - 1.5)  # std along the major axis: 0.2 .. 90 px
    s2 = s1 * torch.exp(-r(C, N) * 6)  # aspect up to ~400
    s1, s2 = s1.clamp_min(0.05), s2.clamp_min(0.05)
    c, s = torch.cos(ang), torch.sin(ang)
    cov_xx = c * c * s1 ** 2 + s * s * s2 ** 2 + 0.3
    cov_yy = s * s * s1 ** 2 + c * c * s2 ** 2 + 0.3
    cov_xy = c * s * (s1 ** 2 - s2 ** 2)
    det = cov_xx * cov_yy - cov_xy ** 2
    conics = torch.stack([cov_yy / det, -cov_xy / det, cov_xx / det], -1)
    opac = torch.exp(r(C, N) * math.log(300.0)) / 300.0  # 1/300 .. 1
    opac[:, :20] = 1.0 / 255.0 * (1 + 1e-3 * r(C, 20))
    extend = torch.sqrt(2 * torch.log(opac.clamp_min(1 / 255) * 255)).clamp_max(3.33)
    radii = torch.stack([torch.ceil(extend * cov_xx.sqrt()), torch.ceil(extend * cov_yy.sqrt())], -1)
    keep = (opac >= 1 / 255) & ~((means2d[..., 0] + radii[..., 0] <= 0) | (means2d[..., 0] - radii[..., 0] >= W)
                                 | (means2d[..., 1] + radii[..., 1] <= 0) | (means2d[..., 1] - radii[..., 1] >= H))
    keep[:, 20:30] = False  # explicitly culled
    radii = (radii * keep[..., None]).to(torch.int32)
    depths = torch.round(r(C, N) * 40) / 10 + 0.5  # many exact ties
    colors = r(C, N, D) * 2 - 0.5
    background = r(C, D)
    return Splats(means2d, conics, colors, opac, depths, radii, background, W, H, 16)


@pytest.mark.parametrize("seed", [0, 1])
def test_kernel_matches_reference_on_hard_splats(seed):
    sp64 = _hard_splats(seed)
    sp = Splats(*(t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t
                  for t in (sp64.means2d, sp64.conics, sp64.colors, sp64.opacities, sp64.depths, sp64.radii,
                            sp64.background, sp64.width, sp64.height, sp64.tile_size)))
    names = ("means2d", "conics", "colors", "opacities", "background")

    def run(fn):
        leaves = {k: getattr(sp, k).detach().clone().requires_grad_(True) for k in names}
        s2 = Splats(leaves["means2d"], leaves["conics"], leaves["colors"], leaves["opacities"], sp.depths,
                    sp.radii, leaves["background"], sp.width, sp.height, sp.tile_size)
        img, alpha = fn(s2)
        g = torch.Generator().manual_seed(3)
        ((torch.randn(img.shape, generator=g) * img).sum() + (torch.randn(alpha.shape, generator=g) * alpha).sum()
         ).backward()
        return img.detach(), alpha.detach(), {k: v.grad for k, v in leaves.items()}

    a_img, a_alpha, a_g = run(rasterize_cpu)
    b_img, b_alpha, b_g = run(rasterize_reference)
    assert 0.1 < b_alpha.mean() < 0.99
    assert (a_img - b_img).abs().max() < 1e-5 * max(1.0, b_img.abs().max().item())
    assert (a_alpha - b_alpha).abs().max() < 1e-5
    for k in names:
        assert rel_err(a_g[k], b_g[k]) < 1e-4, (k, rel_err(a_g[k], b_g[k]))


@pytest.mark.parametrize("tile_size", [8, 32])
def test_other_tile_sizes(tile_size):
    from feat2gs.render import RenderSettings

    s = RenderSettings(tile_size=tile_size)
    case = random_scene(n=200, cameras=2, width=41, height=30, degree=2, seed=9).to(torch.float32)
    a = render_and_grad(get_renderer("cpu", s), case)
    b = render_and_grad(get_renderer("reference", s), case)
    assert (a.image - b.image).abs().max() < 1e-5 and (a.alpha - b.alpha).abs().max() < 1e-5
    for key, g in b.grads.items():
        assert rel_err(a.grads[key], g) < 1e-4, key
