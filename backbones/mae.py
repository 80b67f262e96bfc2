"""MAE ViT-B/16 encoder (``facebook/vit-mae-base``, transformers ``ViTMAEModel``), read without masking.

The encoder is run on *all* patches in image order: we embed the patches ourselves and never call MAE's
random masking (whose argsort shuffles tokens even at mask ratio 0), so token i is patch i in row-major order.
The fixed 2D sin-cos position embedding is regenerated for the input grid (MAE's layout: the first half of
the channels encodes the column, the second half the row, each as [sin | cos] over D/4 frequencies
1/10000^(k/(D/4)); at the 14x14 pre-training grid it equals the checkpoint's table). The CLS token keeps its
(zero) position embedding. ImageNet mean/std on [0, 1] inputs.

Features: by default the last block (block 11) without the final LayerNorm. The Feat2GS reference took
``hidden_states[11]``, i.e. the output of block 10 (the penultimate block): select it with
``backbone.layer=-2``.

Weights: the official checkpoint holds ``ViTMAEForPreTraining`` (encoder under ``vit.`` and the pixel
decoder); transformers maps its layout onto the installed classes and we ignore only the decoder.
"""

from __future__ import annotations

import torch

from .common import IMAGENET_MEAN, IMAGENET_STD
from .hf import HFTokenBackbone, run_blocks, tokens_to_map
from .registry import BackboneInfo, register_backbone
from .weights import WeightsSpec

#: config.json of facebook/vit-mae-base (encoder fields; the decoder is not built)
MAE_BASE_CONFIG = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                       hidden_act="gelu", layer_norm_eps=1e-12, image_size=224, patch_size=16, num_channels=3,
                       qkv_bias=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

# pinned to the last commit before the safetensors conversion whose full hash we could verify; the weights
# (pytorch_model.bin, loaded with weights_only) are the same as main's model.safetensors
MAE_WEIGHTS = WeightsSpec("mae", "facebook/vit-mae-base", ("pytorch_model.bin",),
                          "f4bf8a536816f4f7d5c8b7fbd4621396c195001f")


def mae_sincos_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """MAE's fixed 2D sin-cos position embedding of an (h, w) grid: (h*w, dim), row-major tokens."""
    if dim % 4:
        raise ValueError(f"mae_sincos_2d: embedding width {dim} must be a multiple of 4")
    q = dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(q, dtype=torch.float64) / q)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    ax = xs.reshape(-1, 1) * omega  # column coordinate -> first half
    ay = ys.reshape(-1, 1) * omega  # row coordinate -> second half
    return torch.cat([ax.sin(), ax.cos(), ay.sin(), ay.cos()], dim=1).float()


@register_backbone("mae", BackboneInfo(family="mae", channels=768, patch=16, default_layer=-1, weights=MAE_WEIGHTS,
                                       description="MAE ViT-B/16 encoder, no masking, sin-cos for the input grid, "
                                                   "last block (reference: layer=-2), ImageNet norm"))
class MAE(HFTokenBackbone):
    """MAE encoder without masking; tokens of the selected blocks without the final LayerNorm."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    hf_config_class = "ViTMAEConfig"
    hf_model_class = "ViTMAEModel"
    hf_official_config = MAE_BASE_CONFIG
    hf_unused = ("decoder.",)

    def position_embedding(self, h: int, w: int, dim: int) -> torch.Tensor:
        """(h*w, dim) position embedding added to the patch tokens (regenerated sin-cos)."""
        return mae_sincos_2d(h, w, dim)

    def forward_layers(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        emb = self.model.embeddings
        patches = emb.patch_embeddings.projection(x)  # (B, C, h, w)
        B, C, h, w = patches.shape
        tokens = patches.flatten(2).transpose(1, 2) + self.position_embedding(h, w, C).to(patches)
        cls = (emb.cls_token + emb.position_embeddings[:, :1]).expand(B, -1, -1)
        outs = run_blocks(self.model.layers, torch.cat([cls, tokens], dim=1), layers)
        return [tokens_to_map(o[:, 1:], h, w) for o in outs]
