"""MoGe-1: DINOv2 + a convolutional upsampling head; affine-invariant point map and a validity mask.

State-dict layout: ``backbone.*`` (DINOv2), ``image_mean``, ``image_std``, ``head.projects.{k}`` (1x1 conv per
tap), ``head.upsample_blocks.{s}.0.{0,1}`` (transposed conv, 3x3 conv), ``head.upsample_blocks.{s}.{r+1}.*``
(residual blocks), ``head.output_block.{0 points, 1 mask}.*``.

Forward (image (B, 3, H, W) in [0, 1], ``num_tokens``):
1. resize bicubically (antialiased) by f = sqrt(num_tokens * 14^2 / (H W)) to (int(H f), int(W f));
2. normalise (ImageNet), then resize bilinearly (antialiased) down to the multiple of 14 (normalise first,
   then resize -- the opposite order to MoGe-2);
3. ViT taps (default: the last 4 blocks, LayerNorm-ed) -> 1x1 projections, summed (level 0);
4. 3 upsampling stages (x2 each), the view-plane UV (2 channels, aspect of the resized image) concatenated
   before each; bilinear resize to the resized-image size, UV again, two output blocks (points 3, mask 1);
5. bilinear resize to (H, W), output remap. The mask is a raw score (threshold ``mask_threshold``).
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dinov2 import PATCH, DinoVisionTransformer
from .inference import MoGeBase, MoGeRaw
from .modules import REMAPS, ResidualConvBlock, _conv3x3, _nearest_init_, fuse_taps, register_imagenet_buffers, \
    remap_points, uv_channels


class Head(nn.Module):
    """MoGe-1 head. ``levels`` gives the decoder pyramid (level 0: summed projections at the token grid, level
    s: output of upsampling stage s at 2^s x the grid); ``forward`` the (points, mask) maps."""

    def __init__(self, num_features: int, dim_in: int, dim_out: Sequence[int], dim_proj: int = 512,
                 dim_upsample: Sequence[int] = (256, 128, 128), dim_times_res_block_hidden: int = 1,
                 num_res_blocks: int = 1, res_block_norm: str = "group_norm", last_res_blocks: int = 0,
                 last_conv_channels: int = 32, last_conv_size: int = 1):
        super().__init__()
        dim_upsample = list(dim_upsample)
        self.projects = nn.ModuleList([nn.Conv2d(dim_in, dim_proj, kernel_size=1) for _ in range(num_features)])

        def block(c: int) -> ResidualConvBlock:
            return ResidualConvBlock(c, c, dim_times_res_block_hidden * c, in_norm="layer_norm",
                                     hidden_norm=res_block_norm)

        stages = []
        for cin, cout in zip([dim_proj] + dim_upsample[:-1], dim_upsample):
            up = nn.ConvTranspose2d(cin + 2, cout, kernel_size=2, stride=2)
            _nearest_init_(up)
            stages.append(nn.Sequential(nn.Sequential(up, _conv3x3(cout, cout)),
                                        *[block(cout) for _ in range(num_res_blocks)]))
        self.upsample_blocks = nn.ModuleList(stages)
        self.output_block = nn.ModuleList([
            nn.Sequential(
                _conv3x3(dim_upsample[-1] + 2, last_conv_channels),
                *[block(last_conv_channels) for _ in range(last_res_blocks)],
                nn.ReLU(),
                nn.Conv2d(last_conv_channels, d, kernel_size=last_conv_size, padding=last_conv_size // 2,
                          padding_mode="replicate"),
            ) for d in dim_out])

    def levels(self, taps: Sequence[torch.Tensor], rows: int, cols: int, aspect: float,
               upto: Optional[int] = None) -> list[torch.Tensor]:
        """[level 0, ..., level ``upto``] feature maps (default: all ``len(upsample_blocks) + 1`` levels)."""
        last = len(self.upsample_blocks) if upto is None else upto
        x = fuse_taps(taps, self.projects, rows, cols)
        out = [x]
        for blk in self.upsample_blocks[:last]:
            x = blk(torch.cat([x, uv_channels(x.shape[0], *x.shape[-2:], aspect, x.dtype, x.device)], dim=1))
            out.append(x)
        return out

    def forward(self, taps: Sequence[torch.Tensor], rows: int, cols: int, size: tuple[int, int]) -> list[torch.Tensor]:
        """Output maps [(B, d, *size) for d in dim_out] at ``size`` = the resized image (h, w)."""
        aspect = size[1] / size[0]
        x = self.levels(taps, rows, cols, aspect)[-1]
        x = F.interpolate(x, size, mode="bilinear", align_corners=False)
        x = torch.cat([x, uv_channels(x.shape[0], *size, aspect, x.dtype, x.device)], dim=1)
        return [blk(x) for blk in self.output_block]


class MoGeV1(MoGeBase):
    """MoGe-1, built from a checkpoint's ``model_config`` (defaults are the official class defaults; the
    release overrides several, so always build from the checkpoint's config). ``trained_area_range`` (legacy)
    becomes ``num_tokens_range`` (area // 14^2); other unknown keys are ignored with a warning."""

    version = "v1"

    def __init__(self, encoder="dinov2_vitb14", intermediate_layers: Union[int, Sequence[int]] = 4,
                 dim_proj: int = 512, dim_upsample: Sequence[int] = (256, 128, 128),
                 dim_times_res_block_hidden: int = 1, num_res_blocks: int = 1, remap_output: str = "linear",
                 res_block_norm: str = "group_norm", num_tokens_range: Sequence[int] = (1200, 2500),
                 last_res_blocks: int = 0, last_conv_channels: int = 32, last_conv_size: int = 1,
                 mask_threshold: float = 0.5, **deprecated):
        super().__init__()
        if "trained_area_range" in deprecated:
            area = deprecated.pop("trained_area_range")
            num_tokens_range = [area[0] // PATCH ** 2, area[1] // PATCH ** 2]
        if deprecated:
            warnings.warn(f"MoGe v1: ignoring unknown model_config keys {sorted(deprecated)}")
        if remap_output not in REMAPS:
            raise ValueError(f"MoGe v1: remap_output {remap_output!r} is not one of {', '.join(REMAPS)}")
        self.remap_output = remap_output
        self.num_tokens_range = list(num_tokens_range)
        self.mask_threshold = float(mask_threshold)
        self.intermediate_layers = (intermediate_layers if isinstance(intermediate_layers, int)
                                    else [int(i) for i in intermediate_layers])
        self.backbone = DinoVisionTransformer(encoder)
        n = intermediate_layers if isinstance(intermediate_layers, int) else len(intermediate_layers)
        self.head = Head(n, self.backbone.embed_dim, [3, 1], dim_proj=dim_proj, dim_upsample=dim_upsample,
                         dim_times_res_block_hidden=dim_times_res_block_hidden, num_res_blocks=num_res_blocks,
                         res_block_norm=res_block_norm, last_res_blocks=last_res_blocks,
                         last_conv_channels=last_conv_channels, last_conv_size=last_conv_size)
        register_imagenet_buffers(self)

    @property
    def num_levels(self) -> int:
        return len(self.head.upsample_blocks) + 1

    @staticmethod
    def resized_size(height: int, width: int, num_tokens: int) -> tuple[int, int]:
        """Size (h, w) the image is resized to for ``num_tokens`` tokens (floored, as the official code)."""
        f = (num_tokens * PATCH ** 2 / (height * width)) ** 0.5
        return max(PATCH, int(height * f)), max(PATCH, int(width * f))

    @classmethod
    def token_grid(cls, height: int, width: int, num_tokens: int) -> tuple[int, int]:
        h, w = cls.resized_size(height, width, num_tokens)
        return h // PATCH, w // PATCH

    def preprocess(self, image: torch.Tensor, num_tokens: int) -> tuple[torch.Tensor, tuple[int, int]]:
        """Image in [0, 1] -> (normalised ViT input (B, 3, 14 rows, 14 cols), resized size (h, w))."""
        h, w = self.resized_size(*image.shape[-2:], num_tokens)
        x = F.interpolate(image, (h, w), mode="bicubic", align_corners=False, antialias=True)
        x = (x - self.image_mean) / self.image_std
        x = F.interpolate(x, (h // PATCH * PATCH, w // PATCH * PATCH), mode="bilinear", align_corners=False,
                          antialias=True)
        return x, (h, w)

    def taps(self, image: torch.Tensor, num_tokens: int, layers=None):
        x, size = self.preprocess(image, num_tokens)
        n = self.intermediate_layers if layers is None else layers
        return self.backbone.get_intermediate_layers(x, n=n, return_class_token=True), size

    def forward(self, image: torch.Tensor, num_tokens: int) -> MoGeRaw:
        H, W = image.shape[-2:]
        taps, size = self.taps(image, num_tokens)
        rows, cols = size[0] // PATCH, size[1] // PATCH
        points, mask = self.head([t for t, _ in taps], rows, cols, size)
        points = F.interpolate(points.float(), (H, W), mode="bilinear", align_corners=False)
        mask = F.interpolate(mask.float(), (H, W), mode="bilinear", align_corners=False)
        points = remap_points(points.permute(0, 2, 3, 1), self.remap_output)
        return MoGeRaw(points=points, mask=mask.squeeze(1))

    def binarize_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return mask > self.mask_threshold

    def feature_maps(self, image: torch.Tensor, num_tokens: int, levels: Sequence[int] = (),
                     vit_blocks: Sequence[int] = (), encoder: bool = False) -> dict[str, torch.Tensor]:
        """Intermediate maps for probing: ``encoder`` (summed projected taps = decoder level 0), ``head{l}``
        (decoder level l, 2^l x the token grid) and ``vit{i}`` (LayerNorm-ed block i tokens, (B, D, rows, cols))."""
        x, size = self.preprocess(image, num_tokens)
        rows, cols = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        taps_idx = self.backbone.block_indices(self.intermediate_layers)
        need = sorted(set(vit_blocks) | (set(taps_idx) if (levels or encoder) else set()))
        outs = dict(zip(need, self.backbone.get_intermediate_layers(x, n=need))) if need else {}
        maps = {f"vit{i}": outs[i].transpose(1, 2).unflatten(2, (rows, cols)) for i in set(vit_blocks)}
        if levels or encoder:
            pyramid = self.head.levels([outs[i] for i in taps_idx], rows, cols, size[1] / size[0],
                                       upto=max(levels, default=0))
            if encoder:
                maps["encoder"] = pyramid[0]
            maps.update({f"head{l}": pyramid[l] for l in levels})
        return maps
