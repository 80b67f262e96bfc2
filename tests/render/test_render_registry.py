"""Renderer registry, backend selection and input validation."""

from __future__ import annotations

import pytest
import torch

from feat2gs.errors import InputError, UnknownNameError
from feat2gs.render import RENDERERS, RenderSettings, get_renderer, gsplat_cuda_available
from feat2gs.render.base import Renderer
from render_testlib import random_scene


def test_registry_names_and_settings():
    assert set(RENDERERS.names()) == {"gsplat", "cpu", "reference"}
    s = RenderSettings(eps2d=0.1)
    for name in RENDERERS.names():
        r = get_renderer(name, s)
        assert isinstance(r, Renderer) and r.name == name and r.settings is s
    with pytest.raises(UnknownNameError):
        get_renderer("vulkan")


def test_auto_selection():
    expected = "gsplat" if gsplat_cuda_available() else "cpu"
    assert get_renderer("auto").name == expected
    if not torch.cuda.is_available():
        assert expected == "cpu"


@pytest.mark.parametrize("name", ["cpu", "reference"])
def test_bad_inputs_name_the_field(name):
    case = random_scene(n=10, cameras=2, width=16, height=12)
    r = get_renderer(name)
    g = case.gaussians
    with pytest.raises(InputError, match="render.K"):
        r.render(g, case.K[:, :2], case.viewmats, 16, 12)
    with pytest.raises(InputError, match="render.viewmats"):
        r.render(g, case.K, case.viewmats[:1], 16, 12)
    with pytest.raises(InputError, match="render.size"):
        r.render(g, case.K, case.viewmats, 0, 12)
    with pytest.raises(InputError, match="render.background"):
        r.render(g, case.K, case.viewmats, 16, 12, background=torch.zeros(4))
    with pytest.raises(InputError, match="render.near_plane"):
        get_renderer(name, RenderSettings(near_plane=0.0)).render(g, case.K, case.viewmats, 16, 12)
    with pytest.raises(InputError, match="render.tile_size"):
        get_renderer(name, RenderSettings(tile_size=0)).render(g, case.K, case.viewmats, 16, 12)


def test_cpu_renderer_limits():
    case = random_scene(n=10, cameras=1, width=16, height=12)
    with pytest.raises(InputError, match="render.tile_size"):
        get_renderer("cpu", RenderSettings(tile_size=128)).render(case.gaussians, case.K, case.viewmats, 16, 12)
    with pytest.raises(InputError, match="float32 or float64"):
        get_renderer("cpu").render(case.gaussians.to(torch.float16), case.K, case.viewmats, 16, 12)


def test_cpu_renderer_rejects_other_devices_and_gsplat_rejects_cpu_tensors():
    case = random_scene(n=4, cameras=1, width=8, height=8)
    with pytest.raises(InputError, match="CUDA"):
        get_renderer("gsplat").render(case.gaussians, case.K, case.viewmats, 8, 8)
    if torch.cuda.is_available():
        with pytest.raises(InputError, match="CPU"):
            get_renderer("cpu").render(case.gaussians.to("cuda"), case.K, case.viewmats, 8, 8)


def test_float32_and_float64_agree():
    case = random_scene(n=200, cameras=1, width=30, height=22, seed=8)
    cpu = get_renderer("cpu")
    o64 = cpu.render(case.gaussians, case.K, case.viewmats, 30, 22, render_depth=True)
    c32 = case.to(torch.float32)
    o32 = cpu.render(c32.gaussians, c32.K, c32.viewmats, 30, 22, render_depth=True)
    assert o64.image.dtype == torch.float64 and o32.image.dtype == torch.float32
    assert (o64.image - o32.image.double()).abs().max() < 1e-4
    assert o64.alpha.mean() > 0.1
