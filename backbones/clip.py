"""CLIP ViT-B/16, OpenAI weights, through open_clip (``ViT-B-16`` / ``openai``).

Library choice: open_clip's ``openai`` tag for ViT-B-16 is served from ``timm/vit_base_patch16_clip_224.openai``
as ``open_clip_model.safetensors`` in open_clip's own key layout, so open_clip's vision tower (built from its
``ViT-B-16`` config with QuickGELU, as OpenAI trained it) loads it strictly with no key conversion; timm would
need its conversion filter and transformers a different repository (openai/clip-vit-base-patch16).
Only the ``visual.`` part is loaded; the text tower's keys are ignored by name.

Features: patch tokens of the last block through ``ln_post`` and ``@ proj`` (512 channels), as the Feat2GS
reference; other blocks via ``backbone.layer`` get the same ``ln_post``/``proj``. CLIP's own mean/std on
[0, 1] inputs (the reference used ImageNet's). The 14x14 position embedding of the 224x224 training grid is
resized to the input grid (bicubic, antialiased when shrinking, as open_clip resizes it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from feat2gs.errors import InputError

from .common import CLIP_MEAN, CLIP_STD, TokenBackbone
from .checkpoint import load_strict, read_checkpoint
from .hf import in_requested_order, tokens_to_map
from .registry import BackboneInfo, register_backbone
from .weights import WeightsSpec

CLIP_WEIGHTS = WeightsSpec("clip", "timm/vit_base_patch16_clip_224.openai", ("open_clip_model.safetensors",))
OPEN_CLIP_NAME = "ViT-B-16"
#: top-level keys of the full CLIP checkpoint that belong to the text tower (ignored)
TEXT_KEYS = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection",
             "logit_scale", "logit_bias", "attn_mask")


def resize_grid_embedding(pos: torch.Tensor, old_hw: tuple[int, int], new_hw: tuple[int, int]) -> torch.Tensor:
    """(old_h*old_w, C) row-major grid embedding -> (new_h*new_w, C), bicubic (antialiased when shrinking)."""
    if tuple(old_hw) == tuple(new_hw):
        return pos
    C = pos.shape[-1]
    grid = pos.reshape(1, old_hw[0], old_hw[1], C).permute(0, 3, 1, 2).float()
    shrink = new_hw[0] < old_hw[0] or new_hw[1] < old_hw[1]
    grid = F.interpolate(grid, size=tuple(new_hw), mode="bicubic", align_corners=False, antialias=shrink)
    return grid.permute(0, 2, 3, 1).reshape(new_hw[0] * new_hw[1], C).to(pos.dtype)


@register_backbone("clip", BackboneInfo(family="clip", channels=512, patch=16, default_layer=-1, weights=CLIP_WEIGHTS,
                                        description="CLIP ViT-B/16 OpenAI (open_clip), last block -> ln_post -> "
                                                    "proj, CLIP norm"))
class CLIP(TokenBackbone):
    """open_clip vision tower; patch tokens -> ln_post -> proj for each selected block."""

    mean = CLIP_MEAN
    std = CLIP_STD

    def build_model(self, pretrained_path):
        import open_clip
        from open_clip.model import _build_vision_tower

        cfg = open_clip.get_model_config(OPEN_CLIP_NAME)
        overrides = dict(self.opts.arch_overrides)
        embed_dim = int(overrides.pop("embed_dim", cfg["embed_dim"]))
        try:
            visual = _build_vision_tower(embed_dim, {**cfg["vision_cfg"], **overrides}, quick_gelu=True)
        except TypeError as e:
            raise InputError("backbone.arch_overrides", f"{self.opts.arch_overrides} rejected by open_clip: {e}") \
                from None
        if pretrained_path is not None:  # match the checkpoint's own names: the tower sits under "visual."
            holder = torch.nn.Module()
            holder.visual = visual
            load_strict(holder, read_checkpoint(pretrained_path), keep=("visual.",), ignore=TEXT_KEYS,
                        source=str(pretrained_path))
        self.patch = int(visual.patch_size[0])
        self.num_layers = len(visual.transformer.resblocks)
        return visual

    def forward_layers(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        v = self.model
        patches = v.conv1(x)  # (B, width, h, w)
        B, _, h, w = patches.shape
        pos = resize_grid_embedding(v.positional_embedding[1:], v.grid_size, (h, w))
        tokens = patches.flatten(2).transpose(1, 2) + pos.to(patches.dtype)
        cls = (v.class_embedding + v.positional_embedding[0]).to(patches.dtype).expand(B, 1, -1)
        seq = v.ln_pre(v.patch_dropout(torch.cat([cls, tokens], dim=1)))
        _, outs = v.transformer.forward_intermediates(seq, indices=sorted(set(layers)), stop_early=True)
        return [tokens_to_map(v.ln_post(o[:, 1:]) @ v.proj, h, w) for o in in_requested_order(layers, outs)]
