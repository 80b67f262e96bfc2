"""DINOv2 (timm port of the official ``dinov2_vit{s,b,l,g}14`` LVD-142M weights).

Features: tokens of the last block (block 11 for ViT-B/14) *without* the final norm, as the Feat2GS
reference reads them; ``backbone.layer`` selects other blocks. Patch 14. The image is resized (not padded,
unlike the reference's centre padding to 518x392) to multiples of 14 at its own long side, so the token grid
covers the whole image. ImageNet mean/std on [0, 1] inputs. The 37x37 position embedding of the 518x518
pre-training grid is resized by timm to the input grid (bicubic, antialiased when shrinking; the official
code uses bicubic without antialias and a +0.1 scale offset -- a slight difference for non-518 inputs).

Sizes: ``dinov2`` = ViT-B/14 (default), ``dinov2_s``/``dinov2_l``/``dinov2_g`` or ``backbone.variant=s|b|l|g``.
"""

from __future__ import annotations

from .common import IMAGENET_MEAN, IMAGENET_STD
from .timm_common import TimmBackbone, Variant, register_variants
from .weights import WeightsSpec


def _spec(name: str, arch: str, revision: str | None = None) -> WeightsSpec:
    return WeightsSpec(name, f"timm/{arch}.lvd142m", ("model.safetensors",), revision)


DINOV2_VARIANTS = {
    "s": Variant("vit_small_patch14_dinov2.lvd142m", _spec("dinov2_s", "vit_small_patch14_dinov2"), 384),
    "b": Variant("vit_base_patch14_dinov2.lvd142m",
                 _spec("dinov2", "vit_base_patch14_dinov2", "1dc7cda4727a9f4baa37f3ef407928dd642d0149"), 768),
    "l": Variant("vit_large_patch14_dinov2.lvd142m", _spec("dinov2_l", "vit_large_patch14_dinov2"), 1024),
    "g": Variant("vit_giant_patch14_dinov2.lvd142m", _spec("dinov2_g", "vit_giant_patch14_dinov2"), 1536),
}


class DINOv2(TimmBackbone):
    """DINOv2 ViT/14: block tokens without the final norm, CLS dropped."""

    variants = DINOV2_VARIANTS
    timm_kwargs = {"dynamic_img_size": True}
    mean = IMAGENET_MEAN
    std = IMAGENET_STD


register_variants(DINOv2, "dinov2", {"b": "dinov2", "s": "dinov2_s", "l": "dinov2_l", "g": "dinov2_g"},
                  DINOV2_VARIANTS, patch=14,
                  description="DINOv2 (LVD-142M), last block without final norm, patch 14, ImageNet norm")
