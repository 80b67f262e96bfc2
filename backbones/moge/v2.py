"""MoGe-2: DINOv2 encoder + shared ConvStack neck + ConvStack heads (points, mask, normal) + metric-scale MLP.

State-dict layout: ``encoder.backbone.*`` (DINOv2), ``encoder.output_projections.{k}``,
``encoder.image_mean/std``, ``neck.{input_blocks, res_blocks, resamplers, output_blocks}.*``,
``{points,mask,normal}_head.*`` (same layout), ``scale_head.{0,2,4}`` (Linear layers).

Forward (image (B, 3, H, W) in [0, 1], ``num_tokens``):
1. token grid (base_h, base_w) = (round(sqrt(n / a)), round(sqrt(n a))), a = W / H (Python ``round``:
   half to even, as the official code since 2025-10-16; earlier releases of the code floored);
2. encoder: bilinear (antialiased) resize to 14 x grid, normalise, taps -> projected and summed, class token;
3. neck inputs: level 0 = [fused, UV], levels 1..4 = UV alone, UV at (base * 2^l) with the image's aspect;
4. neck -> 5 maps; each head reads them and its last level (16 x grid) is the output; scale MLP on the class
   token;
5. bilinear resize to (H, W); points remapped, normals normalised, mask sigmoid, scale exp.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from .inference import MoGeBase, MoGeRaw
from .modules import MLP, REMAPS, ConvStack, DINOv2Encoder, fuse_taps, remap_points, uv_channels

HEADS = ("points_head", "mask_head", "normal_head")


class MoGeV2(MoGeBase):
    """MoGe-2 built from a checkpoint's ``model_config`` (sub-dicts are the sub-modules' arguments)."""

    version = "v2"

    def __init__(self, encoder: dict, neck: dict, points_head: Optional[dict] = None,
                 mask_head: Optional[dict] = None, normal_head: Optional[dict] = None,
                 scale_head: Optional[dict] = None, remap_output: str = "linear",
                 num_tokens_range: Sequence[int] = (1200, 3600), **deprecated: Any):
        super().__init__()
        if deprecated:
            warnings.warn(f"MoGe v2: ignoring unknown model_config keys {sorted(deprecated)}")
        if remap_output not in REMAPS:
            raise ValueError(f"MoGe v2: remap_output {remap_output!r} is not one of {', '.join(REMAPS)}")
        self.remap_output = remap_output
        self.num_tokens_range = list(num_tokens_range)
        self.encoder = DINOv2Encoder(**encoder)
        self.neck = ConvStack(**neck)
        for name, cfg in (("points_head", points_head), ("mask_head", mask_head), ("normal_head", normal_head)):
            if cfg is not None:
                setattr(self, name, ConvStack(**cfg))
        if scale_head is not None:
            self.scale_head = MLP(**scale_head)

    @property
    def num_levels(self) -> int:
        return len(self.neck.res_blocks)

    @staticmethod
    def token_grid(height: int, width: int, num_tokens: int) -> tuple[int, int]:
        a = width / height
        return max(1, round((num_tokens / a) ** 0.5)), max(1, round((num_tokens * a) ** 0.5))

    def neck_inputs(self, fused: torch.Tensor, aspect: float) -> list[torch.Tensor]:
        """[fused ++ UV, UV, UV, ...]: UV maps at 2^l x the token grid, with the image's aspect ratio."""
        B, _, rows, cols = fused.shape
        feats = []
        for level in range(self.num_levels):
            uv = uv_channels(B, rows * 2 ** level, cols * 2 ** level, aspect, fused.dtype, fused.device)
            feats.append(torch.cat([fused, uv], dim=1) if level == 0 else uv)
        return feats

    def forward(self, image: torch.Tensor, num_tokens: int) -> MoGeRaw:
        H, W = image.shape[-2:]
        rows, cols = self.token_grid(H, W, num_tokens)
        fused, cls = self.encoder(image, rows, cols, return_class_token=True)
        # UV in the image's dtype (fp32 under autocast), as the official code builds it
        levels = self.neck(self.neck_inputs(fused.to(image.dtype), W / H))

        def head(name: str) -> Optional[torch.Tensor]:
            if not hasattr(self, name):
                return None
            y = getattr(self, name)(levels)[-1]
            return F.interpolate(y.float(), (H, W), mode="bilinear", align_corners=False)

        points, mask, normal = (head(n) for n in HEADS)
        if points is None:
            raise ValueError("MoGe v2: this model has no points_head")
        return MoGeRaw(
            points=remap_points(points.permute(0, 2, 3, 1), self.remap_output),
            mask=None if mask is None else mask.squeeze(1).sigmoid(),
            normal=None if normal is None else F.normalize(normal.permute(0, 2, 3, 1), dim=-1),
            metric_scale=self.scale_head(cls).float().squeeze(1).exp() if hasattr(self, "scale_head") else None,
        )

    def binarize_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return mask > 0.5

    def feature_maps(self, image: torch.Tensor, num_tokens: int, levels: Sequence[int] = (),
                     vit_blocks: Sequence[int] = (), encoder: bool = False) -> dict[str, torch.Tensor]:
        """Intermediate maps for probing: ``encoder`` (summed projected taps, (B, dim_out, rows, cols)),
        ``neck{l}`` (neck level l at 2^l x the token grid) and ``vit{i}`` (LayerNorm-ed block i tokens)."""
        H, W = image.shape[-2:]
        rows, cols = self.token_grid(H, W, num_tokens)
        x = self.encoder.preprocess(image, rows, cols)
        taps_idx = self.encoder.backbone.block_indices(self.encoder.intermediate_layers)
        need = sorted(set(vit_blocks) | (set(taps_idx) if (levels or encoder) else set()))
        outs = dict(zip(need, self.encoder.backbone.get_intermediate_layers(x, n=need))) if need else {}
        maps = {f"vit{i}": outs[i].transpose(1, 2).unflatten(2, (rows, cols)) for i in set(vit_blocks)}
        if levels or encoder:
            fused = fuse_taps([outs[i] for i in taps_idx], self.encoder.output_projections, rows, cols)
            if encoder:
                maps["encoder"] = fused
            if levels:
                pyramid = self.neck(self.neck_inputs(fused.to(image.dtype), W / H), upto=max(levels))
                maps.update({f"neck{l}": pyramid[l] for l in levels})
        return maps
