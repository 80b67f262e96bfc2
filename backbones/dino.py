"""DINO ViT-B/16 (timm port of the official ``dino_vitb16`` weights).

Features: tokens of the last block (block 11) without the final norm, as the Feat2GS reference; CLS dropped.
ImageNet mean/std on [0, 1] inputs; the 14x14 position embedding of the 224x224 pre-training grid is
resized by timm to the input grid (bicubic).
"""

from __future__ import annotations

from .common import IMAGENET_MEAN, IMAGENET_STD
from .timm_common import TimmBackbone, Variant, register_variants
from .weights import WeightsSpec

DINO_VARIANTS = {
    "b": Variant("vit_base_patch16_224.dino",
                 WeightsSpec("dino", "timm/vit_base_patch16_224.dino", ("model.safetensors",),
                             "3ca4284a1d2db6ac0fc1a7e24e71ee0643260ec2"), 768),
}


class DINO(TimmBackbone):
    """DINO ViT-B/16: block tokens without the final norm."""

    variants = DINO_VARIANTS
    timm_kwargs = {"dynamic_img_size": True}
    mean = IMAGENET_MEAN
    std = IMAGENET_STD


register_variants(DINO, "dino", {"b": "dino"}, DINO_VARIANTS, patch=16,
                  description="DINO ViT-B/16 (ImageNet-1k), last block without final norm, ImageNet norm")
