"""Tiny architectures of every backbone family, as ``backbone.arch_overrides`` (random weights only).

Each family's network is shrunk to about two 32-64-wide blocks, so that every code path of a family -- its
preprocessing, layer reading, token-grid geometry and the probe pipeline behind it -- runs in well under a
second on a CPU. Used by the end-to-end tests of the feature stage and by ``benchmarks/perf/extract.py``;
never for results.
"""

from __future__ import annotations

import copy
from typing import Any

from .registry import backbone_info

#: family -> arch_overrides (absent: the family has no architecture to shrink, e.g. iuvrgb)
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "vit": dict(embed_dim=64, depth=2, num_heads=2, img_size=64),
    "dinov2": dict(embed_dim=64, depth=2, num_heads=2, img_size=56),
    "dino": dict(embed_dim=64, depth=2, num_heads=2, img_size=64),
    "sam": dict(embed_dim=64, depth=2, num_heads=2, img_size=64, window_size=2, global_attn_indexes=(1,),
                neck_chans=16),
    "radio": dict(embed_dim=64, depth=2, num_heads=2),
    "clip": dict(width=64, layers=2, head_width=32, image_size=64, embed_dim=32),
    "mae": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=64),
    "midas": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                  image_size=64),
    "dinov3": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128),
    "croco": dict(embed_dim=32, depth=2, num_heads=2),
    "vggt": dict(embed_dim=32, depth=2, num_heads=2, dino_depth=2, dino_heads=2, pos_grid=4),
    "sd": dict(
        unet=dict(block_out_channels=(32, 32, 64, 64), layers_per_block=1, attention_head_dim=(2, 2, 4, 4),
                  norm_num_groups=8, cross_attention_dim=32, sample_size=16),
        vae=dict(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4, sample_size=64,
                 scaling_factor=4.0),
        text_encoder=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          projection_dim=32)),
}


def _moge_tiny() -> dict[str, Any]:
    from .moge.load import tiny_config

    return {"model_config": tiny_config("v2")}


def tiny_overrides(name: str) -> dict[str, Any]:
    """A fresh copy of the tiny ``arch_overrides`` for a backbone name (``random-`` prefix allowed); ``{}``
    for families without an architecture (iuvrgb)."""
    family = backbone_info(name).family
    if family == "moge":
        return _moge_tiny()
    return copy.deepcopy(TINY_OVERRIDES.get(family, {}))
