"""Plain supervised ViT-B/16 (timm); its ``random-vit`` control is the chance level of issue #2."""

from __future__ import annotations

import torch

from .common import TokenBackbone
from .registry import BackboneInfo, register_backbone
from .weights import WeightsSpec

VIT_WEIGHTS = WeightsSpec("vit", "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k", ("model.safetensors",))


@register_backbone("vit", BackboneInfo(family="vit", channels=768, patch=16, default_layer=-1,
                                       weights=VIT_WEIGHTS,
                                       description="supervised ViT-B/16 (timm, augreg in21k -> in1k)"))
class TimmViT(TokenBackbone):
    """A timm VisionTransformer; tokens of the selected blocks (no final norm), prefix tokens dropped."""

    timm_name = "vit_base_patch16_224"
    mean = (0.5, 0.5, 0.5)  # augreg weights are trained on [-1, 1] inputs
    std = (0.5, 0.5, 0.5)

    def build_model(self, pretrained_path):
        import timm

        kw = dict(pretrained=False, num_classes=0, dynamic_img_size=True, **self.opts.arch_overrides)
        model = timm.create_model(self.timm_name, **kw)
        self.patch = model.patch_embed.patch_size[0]
        self.num_layers = len(model.blocks)
        if pretrained_path is not None:
            from safetensors.torch import load_file

            state = load_file(str(pretrained_path))
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise RuntimeError(f"{pretrained_path}: missing keys {missing[:5]}, unexpected {unexpected[:5]}")
        return model

    def forward_layers(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, indices=layers, norm=False, intermediates_only=True,
                                                output_fmt="NCHW")


