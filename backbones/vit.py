"""Plain supervised ViT-B/16 (timm, AugReg in21k -> in1k); its ``random-vit`` control is the chance level of
issue #2. Tokens of the selected blocks without the final norm, prefix tokens dropped; [-1, 1] inputs (the
AugReg weights were trained so). The classifier head of the checkpoint is not built and its keys are
ignored by name; everything else loads strictly (``TimmBackbone``)."""

from __future__ import annotations

from .common import HALF
from .timm_common import TimmBackbone, Variant, register_variants
from .weights import WeightsSpec

VIT_WEIGHTS = WeightsSpec("vit", "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k", ("model.safetensors",))
VIT_VARIANTS = {"b": Variant("vit_base_patch16_224.augreg2_in21k_ft_in1k", VIT_WEIGHTS, 768)}


class TimmViT(TimmBackbone):
    """A timm VisionTransformer read with ``forward_intermediates`` (no final norm)."""

    variants = VIT_VARIANTS
    timm_kwargs = {"dynamic_img_size": True, "num_classes": 0}
    ignore_keys = ("head.",)  # the ImageNet classifier
    mean = HALF
    std = HALF


register_variants(TimmViT, "vit", {"b": "vit"}, VIT_VARIANTS, patch=16,
                  description="supervised ViT-B/16 (timm, augreg in21k -> in1k), last block without final norm")
