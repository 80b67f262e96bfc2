"""SAM ViT-B image encoder (timm port of the official ``sam_vit_b_01ec64.pth`` image encoder, SA-1B).

Features: output of the last block (block 11) *before* the neck, 768 channels, as the Feat2GS reference.
SAM normalises with pixel mean (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375) on a 0..255 scale,
i.e. exactly the ImageNet mean/std on [0, 1] inputs. The image is resized to multiples of 16 at its own long
side (no padding to SAM's 1024x1024 square, as the reference); the 64x64 absolute position embedding is
resized by timm to the input grid (bicubic, antialiased when shrinking) and the relative position tables of
the global-attention blocks are interpolated by SAM's own rule; windowed blocks pad internally and crop back,
so the returned grid covers exactly the input.
"""

from __future__ import annotations

from .common import IMAGENET_MEAN, IMAGENET_STD
from .timm_common import TimmBackbone, Variant, register_variants
from .weights import WeightsSpec

SAM_VARIANTS = {
    "b": Variant("samvit_base_patch16.sa1b",
                 WeightsSpec("sam", "timm/samvit_base_patch16.sa1b", ("model.safetensors",),
                             "c6db726d87cbba7788e026776b46c5db3aa1594b"), 768),
}


class SAM(TimmBackbone):
    """SAM image encoder: block tokens before the neck (``forward_intermediates(norm=False)``)."""

    variants = SAM_VARIANTS
    final_norm = False  # in timm's SAM, norm=True would run the neck (256 channels)
    mean = IMAGENET_MEAN
    std = IMAGENET_STD


register_variants(SAM, "sam", {"b": "sam"}, SAM_VARIANTS, patch=16,
                  description="SAM ViT-B image encoder, last block before the neck, SAM (=ImageNet) norm")
