"""What MoGe-1 and MoGe-2 share: the output types and ``infer()`` (network -> metric/affine camera geometry)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, fields
from typing import Optional, Sequence

import torch
import torch.nn as nn

from feat2gs.geometry.focal import (focal_from_fov_x, intrinsics_from_focal, normalized_to_pixel_intrinsics,
                                    recover_focal_shift)

from .geometry import depth_map_to_point_map


@dataclass
class MoGeRaw:
    """Network outputs at the input resolution (B, H, W, ...), float32.

    ``points``: affine-invariant point map after the output remap (z up to scale and shift);
    ``mask``: v1 a raw score (trained toward {0, 1}, not a probability), v2 a sigmoid probability;
    ``normal``: unit normals (v2 ``*-normal`` models); ``metric_scale``: (B,) positive scale (v2).
    """

    points: torch.Tensor
    mask: Optional[torch.Tensor] = None
    normal: Optional[torch.Tensor] = None
    metric_scale: Optional[torch.Tensor] = None


@dataclass
class MoGeResult:
    """Output of ``infer``. Shapes are batched (B, ...) or unbatched when the input was (3, H, W).

    ``points`` (H, W, 3) camera frame (OpenCV: x right, y down, z forward), metric for v2, scale-invariant for
    v1; ``depth`` (H, W) z-depth; ``mask`` (H, W) bool; ``intrinsics`` (3, 3) normalised (``pixel_intrinsics``
    converts); ``normal`` (H, W, 3) or None; ``metric_scale`` () or None. With ``apply_mask`` points and depth
    are +inf and normals 0 outside the mask.
    """

    points: torch.Tensor
    depth: torch.Tensor
    mask: Optional[torch.Tensor]
    intrinsics: torch.Tensor
    normal: Optional[torch.Tensor] = None
    metric_scale: Optional[torch.Tensor] = None

    def pixel_intrinsics(self) -> torch.Tensor:
        """K in pixels of the input image (pixel centres at j + 0.5)."""
        H, W = self.depth.shape[-2:]
        return normalized_to_pixel_intrinsics(self.intrinsics, W, H)

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


class MoGeBase(nn.Module):
    """Shared ``infer`` on top of a version's ``forward(image, num_tokens) -> MoGeRaw``."""

    version: str = "?"
    num_tokens_range: Sequence[int] = (1200, 3600)
    remap_output: str = "linear"

    @abstractmethod
    def forward(self, image: torch.Tensor, num_tokens: int) -> MoGeRaw:
        """Image (B, 3, H, W) in [0, 1] -> outputs at (H, W)."""

    @abstractmethod
    def binarize_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Network mask -> bool validity."""

    def num_tokens_for(self, resolution_level: int = 9) -> int:
        """Token budget of a resolution level in [0, 9] (9 = the trained maximum)."""
        if not 0 <= resolution_level <= 9:
            raise ValueError(f"resolution_level must be in [0, 9], got {resolution_level}")
        lo, hi = self.num_tokens_range
        return int(lo + resolution_level / 9 * (hi - lo))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @torch.inference_mode()
    def infer(self, image: torch.Tensor, num_tokens: Optional[int] = None, resolution_level: int = 9,
              force_projection: bool = True, apply_mask: bool = True, fov_x=None,
              use_fp16: bool = True) -> MoGeResult:
        """Camera-space geometry of images (B, 3, H, W) or (3, H, W), RGB in [0, 1].

        ``num_tokens`` (default from ``resolution_level``) sets the ViT token budget; ``fov_x`` (degrees,
        scalar or (B,)) fixes the horizontal field of view, otherwise the focal is recovered from the point
        map; ``force_projection`` rebuilds x, y from depth and intrinsics (the network's x, y are dropped).
        """
        unbatched = image.ndim == 3
        if unbatched:
            image = image.unsqueeze(0)
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"MoGe.infer: expected an image (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
        image = image.to(device=self.device, dtype=self.dtype)
        H, W = image.shape[-2:]
        if num_tokens is None:
            num_tokens = self.num_tokens_for(resolution_level)

        # fp16 autocast only on CUDA. Most CPUs have no native float16 arithmetic, so CPU fp16 matmuls and
        # convolutions are much slower than fp32 and only lose precision: CPU runs stay fp32. (MoGe's own
        # infer also autocasts on CPU, a likely cause of the slow CPU runs users report.)
        fp16 = use_fp16 and image.device.type == "cuda" and self.dtype != torch.float16
        with torch.autocast(device_type=image.device.type, dtype=torch.float16, enabled=fp16):
            raw = self.forward(image, num_tokens)
        points = raw.points.float()
        mask = self.binarize_mask(raw.mask.float()) if raw.mask is not None else None

        # focal relative to half the image diagonal; the z-shift makes the point map projective
        if fov_x is None:
            fit = recover_focal_shift(points, mask)
        else:
            known = focal_from_fov_x(fov_x, W, H).to(points).expand(points.shape[0])
            fit = recover_focal_shift(points, mask, focal=known)
        shift = fit.shift.to(points)
        intrinsics = intrinsics_from_focal(fit.focal.to(points), W, H)  # normalised, principal point centred

        depth = points[..., 2] + shift[:, None, None]
        if mask is not None and self.version == "v2":
            mask = mask & (depth > 0)  # a negative depth can only be a failure
        if force_projection:
            points = depth_map_to_point_map(depth, intrinsics)
        else:
            points = torch.cat([points[..., :2], depth.unsqueeze(-1)], dim=-1)

        scale = raw.metric_scale.float() if raw.metric_scale is not None else None
        if scale is not None:
            points = points * scale[:, None, None, None]
            depth = depth * scale[:, None, None]
        normal = raw.normal.float() if raw.normal is not None else None
        if apply_mask and mask is not None:
            points = torch.where(mask[..., None], points, torch.inf)
            depth = torch.where(mask, depth, torch.inf)
            if normal is not None:
                normal = torch.where(mask[..., None], normal, 0.0)

        out = MoGeResult(points=points, depth=depth, mask=mask, intrinsics=intrinsics, normal=normal,
                         metric_scale=scale)
        if unbatched:
            out = MoGeResult(**{f.name: (None if getattr(out, f.name) is None else getattr(out, f.name)[0])
                                for f in fields(out)})
        return out
