"""MiDaS DPT-Large backbone: the ViT-L/16-384 of ``Intel/dpt-large`` (transformers ``DPTModel``).

Features: tokens of block 23 (the last of 24) without a final norm, CLS dropped, 1024 channels, as the
Feat2GS reference (which took ``pretrained.model`` of torch.hub ``DPT_Large``). Input normalisation
mean = std = 0.5 ([0, 1] -> [-1, 1]), as MiDaS/DPT. The 24x24 position embedding of the 384x384 training
grid is resized to the input grid by DPT's own embedding code (bilinear, as MiDaS does at inference; the
reference's Probe3D wrapper resized bicubically -- a small difference, we keep the model's own behaviour).

Weights: the checkpoint holds ``DPTForDepthEstimation``; we load its ``dpt.`` backbone strictly and ignore the
neck and depth head (and DPT's final ``layernorm``, which the depth model never applies).
"""

from __future__ import annotations

import torch

from .common import HALF
from .hf import HFTokenBackbone, run_blocks, tokens_to_map
from .registry import BackboneInfo, register_backbone
from .weights import WeightsSpec

#: config.json of Intel/dpt-large (backbone fields)
DPT_LARGE_CONFIG = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                        hidden_act="gelu", layer_norm_eps=1e-12, image_size=384, patch_size=16, num_channels=3,
                        qkv_bias=True, is_hybrid=False, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        backbone_out_indices=[5, 11, 17, 23], readout_type="project",
                        neck_hidden_sizes=[256, 512, 1024, 1024], reassemble_factors=[4, 2, 1, 0.5],
                        fusion_hidden_size=256)

MIDAS_WEIGHTS = WeightsSpec("midas", "Intel/dpt-large", ("model.safetensors",),
                            "bc15f29aa3a80d532f2ed650b5e16ac48d8958f9")


@register_backbone("midas", BackboneInfo(family="midas", channels=1024, patch=16, default_layer=-1,
                                         weights=MIDAS_WEIGHTS,
                                         description="MiDaS DPT-Large ViT-L/16-384 backbone, block 23, "
                                                     "input norm 0.5/0.5"))
class MiDaS(HFTokenBackbone):
    """DPT-Large ViT backbone; tokens of the selected blocks, CLS (readout) token dropped."""

    mean = HALF
    std = HALF

    hf_config_class = "DPTConfig"
    hf_model_class = "DPTModel"
    hf_official_config = DPT_LARGE_CONFIG
    hf_unused = ("neck.", "head.", "layernorm.")
    hf_model_kwargs = {"add_pooling_layer": False}

    def forward_layers(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        hidden = self.model.embeddings(x).last_hidden_states  # CLS + patches, position embedding resized
        outs = run_blocks(self.model.encoder.layer, hidden, layers)
        return [tokens_to_map(o[:, 1:], h, w) for o in outs]
