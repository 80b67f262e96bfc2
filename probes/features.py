"""Per-Gaussian features: PCA'd backbone tokens bilinearly interpolated at each Gaussian's pixel.

Bilinear upsampling is linear, and so is the first layer of every readout head; they commute. Instead of
materialising an (N, 256) feature per Gaussian and multiplying it by each head's first weight matrix
(N x 256 x 256 multiply-adds per head), we apply the first layer to the T tokens (T << N) and interpolate
its output -- four weighted rows per Gaussian (``embedding_bag``). The result is the reference's
"upsample, then MLP" to float rounding, 10-60x cheaper for token backbones. Per-pixel features (IUVRGB)
go the direct way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from backbones.base import FeatureMap


@dataclass
class GaussianFeatures:
    """Features of N Gaussians as ``interp @ tokens``.

    tokens (T, D): token features of all train views, flattened view-major; index (N, 4) and weight
    (N, 4): the bilinear taps of each Gaussian (weights sum to 1).
    """

    tokens: torch.Tensor
    index: torch.Tensor
    weight: torch.Tensor
    _dense: Optional[torch.Tensor] = field(default=None, init=False, repr=False)
    _transposed: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def dim(self) -> int:
        return int(self.tokens.shape[1])

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def token_first(self) -> bool:
        """Apply linear maps to tokens before interpolating (cheaper unless per-pixel or very low-D)."""
        return self.tokens.shape[0] < len(self) and self.dim > 8

    def interpolate(self, values: torch.Tensor) -> torch.Tensor:
        """Interpolate per-token values (T, K) to the Gaussians (N, K)."""
        return F.embedding_bag(self.index, values, per_sample_weights=self.weight, mode="sum")

    def dense(self) -> torch.Tensor:
        """The (N, D) feature matrix (the reference's upsampled features); computed once."""
        if self._dense is None:
            self._dense = self.interpolate(self.tokens)
        return self._dense

    def transposed_chunks(self, chunk: int) -> list[torch.Tensor]:
        """The interpolation's transpose in CSR chunks (see ``probes.fused_heads``); computed once."""
        if chunk not in self._transposed:
            from .fused_heads import transposed_chunks

            self._transposed[chunk] = transposed_chunks(self.index, self.weight, self.tokens.shape[0], chunk)
        return self._transposed[chunk]

    def linear(self, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``dense() @ weight.T + bias`` computed in the cheaper order."""
        if self.token_first:
            return self.interpolate(F.linear(self.tokens, weight, bias))
        return F.linear(self.dense(), weight, bias)

    @classmethod
    def from_feature_map(cls, fmap: FeatureMap, valid: torch.Tensor) -> "GaussianFeatures":
        """Taps of the Gaussians of a grid over the same images as ``fmap``.

        ``valid`` (V, Hg, Wg) marks the Gaussians; Gaussian (v, i, j) sits at the centre of grid cell (i, j),
        i.e. at image pixel ((j + 0.5) W / Wg, (i + 0.5) H / Hg). Bilinear weights follow
        ``F.grid_sample(align_corners=False, padding_mode='border')`` (= ``FeatureMap.sample``).
        """
        V, C, h, w = fmap.features.shape
        Vg, Hg, Wg = valid.shape
        if Vg != V:
            raise ValueError(f"{V} feature maps for {Vg} views")
        H, W = fmap.image_size
        px = (torch.arange(Wg, dtype=torch.float64) + 0.5) * (W / Wg)
        py = (torch.arange(Hg, dtype=torch.float64) + 0.5) * (H / Hg)
        tx, ty = fmap.token_coords(px, py)
        tx, ty = tx.clamp(0, w - 1), ty.clamp(0, h - 1)
        x0, y0 = tx.floor().long(), ty.floor().long()
        x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
        fx, fy = (tx - x0).float(), (ty - y0).float()
        vv, ii, jj = valid.nonzero(as_tuple=True)
        base = vv * (h * w)
        index = torch.stack([
            base + y0[ii] * w + x0[jj], base + y0[ii] * w + x1[jj],
            base + y1[ii] * w + x0[jj], base + y1[ii] * w + x1[jj],
        ], dim=1)
        ax, ay = fx[jj], fy[ii]
        weight = torch.stack([(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay], dim=1)
        tokens = fmap.features.float().permute(0, 2, 3, 1).reshape(V * h * w, C).contiguous()
        return cls(tokens, index, weight.contiguous())
