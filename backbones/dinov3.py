"""DINOv3 ViT-B/16 (``facebook/dinov3-vitb16-pretrain-lvd1689m``, transformers ``DINOv3ViTModel``).

Features: patch tokens of the last layer after the model's final LayerNorm -- the model's
``last_hidden_state``, i.e. DINOv3's ``x_norm_patchtokens`` used by its dense evaluations -- with the CLS
and the 4 register tokens dropped; other layers via ``backbone.layer`` get the same norm. Position
information is 2D RoPE on patch-centre coordinates normalised to [-1, 1] per input grid, so any size
multiple of 16 works without resizing anything. ImageNet mean/std on [0, 1] inputs.

Weights: the repository is gated (accept the licence on huggingface.co before ``feat2gs weights fetch``).
"""

from __future__ import annotations

import torch

from .common import IMAGENET_MEAN, IMAGENET_STD
from .hf import HFTokenBackbone, run_blocks, tokens_to_map
from .registry import BackboneInfo, register_backbone
from .weights import WeightsSpec

#: config.json of facebook/dinov3-vitb16-pretrain-lvd1689m
DINOV3_B_CONFIG = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                       hidden_act="gelu", layer_norm_eps=1e-5, image_size=224, patch_size=16, num_channels=3,
                       num_register_tokens=4, layerscale_value=1.0, rope_theta=100.0, query_bias=True,
                       key_bias=False, value_bias=True, proj_bias=True, mlp_bias=True, use_gated_mlp=False,
                       pos_embed_rescale=2.0, pos_embed_shift=None, pos_embed_jitter=None, drop_path_rate=0.0)

DINOV3_WEIGHTS = WeightsSpec("dinov3", "facebook/dinov3-vitb16-pretrain-lvd1689m", ("model.safetensors",))


@register_backbone("dinov3", BackboneInfo(family="dinov3", channels=768, patch=16, default_layer=-1,
                                          weights=DINOV3_WEIGHTS,
                                          description="DINOv3 ViT-B/16 (LVD-1689M), last layer + final norm, "
                                                      "CLS/registers dropped, ImageNet norm"))
class DINOv3(HFTokenBackbone):
    """DINOv3 ViT: normalised patch tokens of the selected layers."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    hf_config_class = "DINOv3ViTConfig"
    hf_model_class = "DINOv3ViTModel"
    hf_official_config = DINOV3_B_CONFIG

    def build_model(self, pretrained_path):
        model = super().build_model(pretrained_path)
        self.num_prefix = 1 + int(model.config.num_register_tokens)
        return model

    def forward_layers(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        m = self.model
        h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        hidden = m.embeddings(x)  # CLS, registers, patches
        rope = m.rope_embeddings(x)  # (cos, sin) for this grid
        outs = run_blocks(m.model.layer, hidden, layers, lambda blk, t: blk(t, position_embeddings=rope))
        return [tokens_to_map(m.norm(o)[:, self.num_prefix:], h, w) for o in outs]
