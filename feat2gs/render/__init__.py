"""Renderers behind one interface (``base.Renderer``), all with gsplat 1.5.3's classic conventions.

``RENDERERS`` maps names to factories taking an optional ``RenderSettings``:

* ``gsplat``    -- gsplat's CUDA kernels (``gsplat_backend``), CUDA tensors;
* ``cpu``       -- torch projection/SH + a compiled C++/OpenMP tile rasteriser (``cpu_backend``);
* ``reference`` -- the same projection/SH + a dense pure-torch rasteriser (``torch_reference``), the oracle.

``get_renderer("auto")`` picks ``gsplat`` when CUDA is available and gsplat's extension loads, else ``cpu``.
"""

from __future__ import annotations

from typing import Optional

from ..registry import Registry
from .base import Renderer, RenderOutput, RenderSettings
from .cpu_backend import CPURenderer
from .gsplat_backend import GsplatRenderer, gsplat_cuda_available
from .torch_reference import ReferenceRenderer

RENDERERS: Registry[Renderer] = Registry("renderer")
RENDERERS.add("gsplat", GsplatRenderer)
RENDERERS.add("cpu", CPURenderer)
RENDERERS.add("reference", ReferenceRenderer)


def auto_renderer_name() -> str:
    return "gsplat" if gsplat_cuda_available() else "cpu"


def get_renderer(name: str = "auto", settings: Optional[RenderSettings] = None) -> Renderer:
    """The renderer registered as ``name`` ("auto": gsplat on CUDA, else cpu); unknown names raise."""
    if name == "auto":
        name = auto_renderer_name()
    return RENDERERS.build(name, settings)


__all__ = [
    "RENDERERS", "Renderer", "RenderOutput", "RenderSettings", "get_renderer", "auto_renderer_name",
    "CPURenderer", "GsplatRenderer", "ReferenceRenderer", "gsplat_cuda_available",
]
