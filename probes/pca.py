"""PCA of backbone tokens, fitted on the train views (as the reference does), exact and deterministic.

The reference uses ``torch.pca_lowrank`` (randomised, unseeded). We compute the exact principal axes
(eigen-decomposition of the covariance in float64, or an SVD when there are fewer samples than channels)
and fix each axis' sign so that its largest-magnitude loading is positive: the same input always gives
the same projection. Mean-centred, no whitening -- as the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PCA:
    mean: torch.Tensor  # (C,)
    components: torch.Tensor  # (k, C), rows are unit principal axes, by decreasing variance
    explained_variance: torch.Tensor  # (k,)

    @classmethod
    def fit(cls, x: torch.Tensor, k: int) -> "PCA":
        """Fit on samples x (n, C); keeps k' = min(k, C, n) components."""
        if x.ndim != 2 or x.shape[0] < 1:
            raise ValueError(f"PCA.fit expects (n, C) samples, got {tuple(x.shape)}")
        n, c = x.shape
        xd = x.double()
        mean = xd.mean(0)
        xc = xd - mean
        k = min(k, c, n)
        if n >= c:
            cov = xc.T @ xc / max(n - 1, 1)
            evals, evecs = torch.linalg.eigh(cov)  # ascending
            order = torch.argsort(evals, descending=True)[:k]
            var, comps = evals[order].clamp_min(0), evecs[:, order].T
        else:
            _, s, vh = torch.linalg.svd(xc, full_matrices=False)
            var, comps = (s[:k] ** 2) / max(n - 1, 1), vh[:k]
        idx = comps.abs().argmax(dim=1)
        signs = torch.sign(comps.gather(1, idx[:, None]))
        signs[signs == 0] = 1
        comps = comps * signs
        return cls(mean.float(), comps.float(), var.float())

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Project samples (..., C) to (..., k)."""
        return (x - self.mean.to(x)) @ self.components.T.to(x)

    def transform_map(self, fmap: torch.Tensor) -> torch.Tensor:
        """Project a feature map (V, C, h, w) to (V, k, h, w)."""
        return self.transform(fmap.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()
