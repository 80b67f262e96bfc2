"""Shared pieces of the timm-based families (DINOv2, DINO, SAM, RADIO): model sizes as variants, building a
timm model from its registered name plus test overrides, strict loading of the timm Hub checkpoint, and the
``forward_intermediates`` token maps.

The checkpoints are the ``model.safetensors`` of the ``timm/<model>.<tag>`` Hugging Face repositories, which
timm saves from the very architecture ``timm.create_model("<model>.<tag>")`` builds, so they load strictly
with no key conversion.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any, Mapping

import torch
import torch.nn as nn

from feat2gs.errors import InputError

from .common import TokenBackbone
from .checkpoint import load_strict, read_checkpoint
from .hf import in_requested_order
from .registry import BackboneInfo, BackboneOptions, register_backbone
from .weights import WeightsSpec


@dataclass(frozen=True)
class Variant:
    """One model size of a family: the library's architecture name, its weights and its channel count."""

    arch: str
    weights: WeightsSpec
    channels: int


def pick_variant(variants: Mapping[str, Variant], opts: BackboneOptions, info: BackboneInfo) -> tuple[str, Variant]:
    """The variant named by ``backbone.variant``; without one, the variant the registered name stands for
    (the one whose weights its BackboneInfo carries)."""
    if opts.variant is not None:
        key = str(opts.variant).lower()
        if key not in variants:
            raise InputError("backbone.variant", f"{opts.variant!r} is not a variant of {opts.name or info.family}; "
                                                 f"choose one of {sorted(variants)}")
        return key, variants[key]
    for key, v in variants.items():
        if info.weights is not None and v.weights.repo_id == info.weights.repo_id:
            return key, v
    return next(iter(variants.items()))


def register_variants(cls, family: str, names: Mapping[str, str], variants: Mapping[str, Variant], patch: int,
                      default_layer: Any = -1, description: str = "") -> None:
    """Register ``cls`` once per model size: ``names`` maps a variant key to the backbone name
    (e.g. ``{"b": "dinov2", "l": "dinov2_l"}``), so ``feat2gs weights fetch dinov2_l`` finds its weights."""
    for key, name in names.items():
        v = variants[key]
        register_backbone(name, BackboneInfo(family=family, channels=v.channels, patch=patch,
                                             default_layer=default_layer, weights=v.weights,
                                             description=f"{description} [{v.arch}]"))(cls)


def create_timm_model(arch: str, overrides: Mapping[str, Any], **kwargs: Any) -> nn.Module:
    """``timm.create_model(arch, pretrained=False, **kwargs)`` with ``backbone.arch_overrides`` applied last."""
    import timm

    try:
        return timm.create_model(arch, pretrained=False, **{**kwargs, **dict(overrides)})
    except TypeError as e:  # an override the architecture does not take
        raise InputError("backbone.arch_overrides", f"{dict(overrides)} rejected by timm {arch}: {e}") from None


def patch_size_of(model: nn.Module) -> int:
    """Pixel size of one token of a timm ViT (classic ``patch_embed`` or NaFlex ``embeds``)."""
    embed = getattr(model, "patch_embed", None) or getattr(model, "embeds")
    p = embed.patch_size
    return int(p[0] if isinstance(p, (tuple, list)) else p)


class TimmBackbone(TokenBackbone):
    """A timm ViT read with ``forward_intermediates`` (prefix tokens dropped, NCHW token maps).

    Subclasses set ``variants`` (and optionally ``timm_kwargs``, ``final_norm``, ``ignore_keys``); the variant
    is chosen by ``pick_variant``. ``final_norm`` applies the model's own final norm to every selected block.
    Pretrained weights load strictly (``checkpoint.load_strict``, errors name the file); ``ignore_keys`` are
    checkpoint key prefixes of parts that are deliberately not built (e.g. a classifier head).
    ``pos_embed_antialias``: timm resizes the position embedding to the token grid with antialiased bicubic
    (True, timm's behaviour); False uses plain bicubic, as Hugging Face's and the official DINOv2 code do
    (it matters when the grid shrinks: at 224 px, 37x37 -> 16x16, the two differ by ~4% of the token scale).
    """

    variants: Mapping[str, Variant] = {}
    timm_kwargs: Mapping[str, Any] = {}
    final_norm: bool = False
    ignore_keys: tuple[str, ...] = ()
    pos_embed_antialias: bool = True

    def __init__(self, opts: BackboneOptions, info: BackboneInfo):
        self.variant_key, self.variant = pick_variant(self.variants, opts, info)
        info = replace(info, weights=self.variant.weights, channels=self.variant.channels)
        super().__init__(opts, info)

    def build_model(self, pretrained_path) -> nn.Module:
        model = create_timm_model(self.variant.arch, self.opts.arch_overrides, **self.timm_kwargs)
        if pretrained_path is not None:
            load_strict(model, read_checkpoint(pretrained_path), keep=("",), ignore=self.ignore_keys,
                        source=str(pretrained_path))
        self.patch = patch_size_of(model)
        self.num_layers = len(model.blocks)
        return model

    def forward_layers(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        with pos_embed_resampling(antialias=self.pos_embed_antialias):
            outs = self.model.forward_intermediates(x, indices=sorted(set(layers)), norm=self.final_norm,
                                                    stop_early=True, intermediates_only=True, output_fmt="NCHW")
        return in_requested_order(layers, outs)


@contextlib.contextmanager
def pos_embed_resampling(antialias: bool):
    """Within the block, timm's ViT resizes its position embedding with ``antialias`` (timm itself always
    antialiases; its ``resample_abs_pos_embed`` takes the flag, its ViT does not pass it)."""
    if antialias:
        yield
        return
    import functools

    import timm.models.vision_transformer as tvt

    original = tvt.resample_abs_pos_embed
    tvt.resample_abs_pos_embed = functools.partial(original, antialias=False)
    try:
        yield
    finally:
        tvt.resample_abs_pos_embed = original
