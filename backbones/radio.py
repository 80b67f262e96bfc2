"""RADIO: NVIDIA C-RADIOv3 (timm NaFlexViT port of ``nvidia/C-RADIOv3-{B,L,H}``).

The Feat2GS reference loads ``radio_v2`` (ViT-H/16) through ``torch.hub`` from the unpinned NVlabs repo.
Neither timm nor transformers ships a RADIO v2.x model; timm ships C-RADIOv3 (and v4) and transformers
ships C-RADIO as ``RadioModel``. We use timm's NaFlexViT variant because it keeps RADIO's full 128x128
position-embedding grid and reproduces RADIO's own resizing at any size and aspect ratio (bilinear resize to
a square of the longer grid side, then top-left crop -- "CPE"), loads strictly from a timm Hub checkpoint
and gives the same ``forward_intermediates`` as the other timm families.

Features: tokens of the last block followed by the model's final norm (C-RADIO has none: ``norm`` is an
identity), the summary (CLS) and register tokens dropped. Input conditioning as RADIO's own input
conditioner: [0, 1] images normalised with the OpenAI-CLIP mean/std (the reference used ImageNet's).

Sizes: ``radio`` = C-RADIOv3-B (768 channels, default), ``radio_l`` (1024), ``radio_h`` (1280, the size
the reference used), or ``backbone.variant=b|l|h``.
"""

from __future__ import annotations

from .common import CLIP_MEAN, CLIP_STD
from .timm_common import TimmBackbone, Variant, register_variants
from .weights import WeightsSpec


def _variant(name: str, size: str, channels: int) -> Variant:
    arch = f"naflexvit_{size}_patch16_radio_v3.c_radio"
    return Variant(arch, WeightsSpec(name, f"timm/{arch}", ("model.safetensors",)), channels)


RADIO_VARIANTS = {
    "b": _variant("radio", "base", 768),
    "l": _variant("radio_l", "large", 1024),
    "h": _variant("radio_h", "huge", 1280),
}


class RADIO(TimmBackbone):
    """C-RADIOv3: last block + the model's norm, summary/register tokens dropped, CLIP input conditioning."""

    variants = RADIO_VARIANTS
    final_norm = True
    mean = CLIP_MEAN
    std = CLIP_STD


register_variants(RADIO, "radio", {"b": "radio", "l": "radio_l", "h": "radio_h"}, RADIO_VARIANTS, patch=16,
                  description="C-RADIOv3 (NaFlexViT, RADIO's own CPE position embedding), last block + norm, "
                              "CLIP input conditioning")
