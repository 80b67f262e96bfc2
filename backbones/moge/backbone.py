"""MoGe as a frozen probe backbone (``moge`` / ``random-moge``).

Options (``BackboneOptions``):

* ``variant``: ``v2-vitl-normal`` (default), ``v2-vitl``, ``v2-vitb-normal``, ``v2-vits-normal``, ``v1-vitl``.
* ``layer`` -- which map(s):
  - ``-1`` (the options default) or ``"encoder"``: the fused encoder map, the sum of the 1x1-projected,
    LayerNorm-ed ViT taps at the token grid (v2: (V, dim_out, rows, cols), 1024 channels for ViT-L; v1: the
    head's summed projections, 512 channels, identical to decoder level 0);
  - an int l >= 0, ``"neck{l}"`` (v2) or ``"head{l}"`` (v1): decoder level l at 2^l x the token grid
    (v2 ViT-L neck: 1024, 256, 128, 64, 32 channels for l = 0..4; v1 head: 512, 256, 128, 64 for l = 0..3);
  - ``"vit{i}"``: the LayerNorm-ed output of ViT block i (negative i counts from the end);
  - a list of the above: a hypercolumn, every map bilinearly resized (align_corners=False) to the finest
    selected grid and concatenated along channels, in the order given.
* ``input_size``: long side of the ViT input in pixels; the token budget is then
  round((input_size / 14)^2 * short / long) for an image of that aspect. ``None`` uses the model's trained
  maximum (``num_tokens_range[1]``: 3600 for v2, 2500 for v1, i.e. resolution level 9).
  The number of tokens -- hence the grid -- depends only on the image size and these options.
* ``weights``: a ``model.pt`` (or a folder holding one); otherwise the Hugging Face cache.
* ``arch_overrides``: ``{"model_config": {...}}`` replaces the architecture (random weights only; tiny
  test models).

Pixel extent: MoGe resizes the whole image (no crop, no padding) to 14 x the token grid, so every level tiles
the full image: extent = (0, 0, W, H). Features are computed in float32 (also on CUDA) so CPU and GPU caches
agree.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F

from feat2gs.errors import InputError

from ..base import Backbone, FeatureMap
from ..common import PREPROCESS_VERSION, seeded_init
from ..registry import BackboneInfo, BackboneOptions, register_backbone
from .dinov2 import PATCH
from ..weights import file_fingerprint, resolve_weights
from .load import DEFAULT_VARIANT, VARIANTS, build_model, get_variant, load_checkpoint, released_config

#: bump when MoGe feature extraction changes (on top of the shared PREPROCESS_VERSION)
MOGE_FEATURE_VERSION = 1

MOGE_INFO = BackboneInfo(
    family="moge", channels=1024, patch=PATCH, default_layer="encoder", weights=VARIANTS[DEFAULT_VARIANT].weights,
    description="MoGe-2 ViT-L (normal) fused encoder map; variants v1-vitl, v2-vitl, v2-vit{l,b,s}-normal")

_LEVEL = re.compile(r"^(neck|head)(\d+)$")
_VIT = re.compile(r"^vit(-?\d+)$")


def parse_layers(layer: Any, version: str, num_levels: int, depth: int) -> list[str]:
    """Canonical map names (``encoder``, ``neck{l}``/``head{l}``, ``vit{i}``) for a ``backbone.layer`` value."""
    level_prefix = "neck" if version == "v2" else "head"
    items = list(layer) if isinstance(layer, (list, tuple)) else [layer]
    if not items:
        raise InputError("backbone.layer", "empty layer list")
    names = []
    for item in items:
        if item is None or item == -1 or item == "encoder":
            names.append("encoder")
            continue
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            level, prefix = int(item), level_prefix
        elif isinstance(item, str) and _LEVEL.match(item):
            prefix, level = _LEVEL.match(item).group(1), int(_LEVEL.match(item).group(2))
        elif isinstance(item, str) and _VIT.match(item):
            i = int(_VIT.match(item).group(1))
            j = i + depth if i < 0 else i
            if not 0 <= j < depth:
                raise InputError("backbone.layer", f"{item!r}: the ViT has {depth} blocks")
            names.append(f"vit{j}")
            continue
        else:
            raise InputError("backbone.layer", f"{item!r} is not a MoGe layer (-1/'encoder', a level 0..{num_levels - 1}"
                                               f" or '{level_prefix}<l>', 'vit<i>', or a list of these)")
        if prefix != level_prefix:
            raise InputError("backbone.layer", f"{item!r}: MoGe {version} decoder levels are named "
                                               f"'{level_prefix}<l>'")
        if not 0 <= level < num_levels:
            raise InputError("backbone.layer", f"{item!r}: MoGe {version} has decoder levels 0..{num_levels - 1}")
        names.append(f"{prefix}{level}")
    return names


@register_backbone("moge", MOGE_INFO)
class MoGeBackbone(Backbone):
    """Frozen MoGe encoder/decoder maps; see the module docstring for the options."""

    batch_size = 4

    def __init__(self, opts: BackboneOptions, info: BackboneInfo):
        self.opts, self.info = opts, info
        self.name = opts.name or "moge"
        self.variant = get_variant(opts.variant)
        overrides = dict(opts.arch_overrides or {})
        config = overrides.pop("model_config", None)
        if overrides:
            raise InputError("backbone.arch_overrides", f"MoGe takes only 'model_config', got {sorted(overrides)}")
        self.weights_file = None  # the checkpoint file (None: random weights)
        if opts.random_init:
            with seeded_init(opts.seed):
                self.model = build_model(config or released_config(self.variant.name), self.variant.version,
                                         where="backbone.arch_overrides.model_config")
        else:
            if config is not None:
                raise InputError("backbone.arch_overrides", "model_config can only replace the architecture of "
                                                            "random weights; a checkpoint carries its own")
            self.weights_file = resolve_weights(self.variant.weights, opts.weights)
            self.model = load_checkpoint(self.weights_file, version=self.variant.version)
        self.model.eval().requires_grad_(False).to(opts.device)
        depth = len(self._vit().blocks)
        self.layers = parse_layers(opts.layer if opts.layer is not None else -1, self.model.version,
                                   self.model.num_levels, depth)

    def _vit(self):
        return self.model.encoder.backbone if self.model.version == "v2" else self.model.backbone

    def num_tokens(self, height: int, width: int) -> int:
        """Token budget for an image of this size (see ``input_size`` in the module docstring)."""
        if self.opts.input_size is None:
            return int(max(self.model.num_tokens_range))
        side = self.opts.input_size / PATCH
        return max(1, round(side * side * min(height, width) / max(height, width)))

    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        """(rows, cols) of the ViT token grid for an image of this size."""
        return self.model.token_grid(height, width, self.num_tokens(height, width))

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> FeatureMap:
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError("images", f"expected (V, 3, H, W) in [0, 1], got {tuple(images.shape)}")
        V, _, H, W = images.shape
        n = self.num_tokens(H, W)
        prefix = "neck" if self.model.version == "v2" else "head"
        levels = sorted({int(s[len(prefix):]) for s in self.layers if s.startswith(prefix)})
        vit_blocks = sorted({int(s[3:]) for s in self.layers if s.startswith("vit")})
        outs = []
        for i in range(0, V, self.batch_size):
            x = images[i:i + self.batch_size].to(self.opts.device, torch.float32)
            maps = self.model.feature_maps(x, n, levels=levels, vit_blocks=vit_blocks,
                                           encoder="encoder" in self.layers)
            sel = [maps[name].float() for name in self.layers]
            size = max((tuple(m.shape[-2:]) for m in sel), key=lambda s: s[0] * s[1])
            sel = [m if tuple(m.shape[-2:]) == size else
                   F.interpolate(m, size, mode="bilinear", align_corners=False) for m in sel]
            outs.append(torch.cat(sel, dim=1).cpu())
        rows, cols = self.token_grid(H, W)
        return FeatureMap(torch.cat(outs, 0), image_size=(H, W), extent=(0.0, 0.0, float(W), float(H)),
                          meta={"backbone": self.name, "variant": self.variant.name, "layers": list(self.layers),
                                "num_tokens": n, "token_grid": (rows, cols),
                                "input_size": (rows * PATCH, cols * PATCH)})

    def cache_key(self) -> dict[str, Any]:
        w = self.variant.weights
        rnd = self.opts.random_init
        return {
            "name": self.name,
            "family": self.info.family,
            "variant": self.variant.name,
            "model": w.repo_id,
            "revision": w.revision,
            "weights_path": None if rnd else self.opts.weights,
            "weights_file": file_fingerprint(self.weights_file),
            "random_seed": self.opts.seed if rnd else None,
            "layers": list(self.layers),
            "input_size": self.opts.input_size,
            "arch_overrides": dict(sorted((self.opts.arch_overrides or {}).items())),
            "preprocess_version": (PREPROCESS_VERSION, MOGE_FEATURE_VERSION),
        }
