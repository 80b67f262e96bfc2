"""16-bit PNG depth: a linear encoding between each image's valid depth range (``feat2gs moge`` writes it,
``decode_depth_png`` reads it back). ``q = 0`` marks an invalid pixel, otherwise
``depth = min + (q - 1) * (max - min) / 65534`` with ``min``/``max`` stored beside the image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

DEPTH_LEVELS = 65534  # q in [1, 65535] encodes depth; 0 = invalid


@dataclass
class DepthEncoding:
    """Linear 16-bit depth encoding of one image: ``depth = min + (q - 1) * (max - min) / 65534``, q = 0 invalid."""

    min: Optional[float]
    max: Optional[float]

    def as_dict(self, units: str) -> dict[str, Any]:
        return {"encoding": "linear", "invalid": 0, "min": self.min, "max": self.max, "units": units,
                "formula": "depth = min + (q - 1) * (max - min) / 65534 for q >= 1"}


def encode_depth_png(depth: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, DepthEncoding]:
    """(H, W) float depth and bool validity -> (H, W) uint16 codes and the encoding (see ``DepthEncoding``)."""
    q = np.zeros(depth.shape, dtype=np.uint16)
    if not valid.any():
        return q, DepthEncoding(None, None)
    d = depth[valid].astype(np.float64)
    lo, hi = float(d.min()), float(d.max())
    span = hi - lo
    codes = np.ones_like(d) if span <= 0 else 1 + np.round((d - lo) / span * DEPTH_LEVELS)
    q[valid] = codes.astype(np.uint16)
    return q, DepthEncoding(lo, hi)


def decode_depth_png(q: np.ndarray, encoding: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """uint16 codes (H, W) and the ``depth_png`` entry of ``camera.json`` -> (depth float64 (0 where invalid),
    valid bool)."""
    q = np.asarray(q)
    valid = q > 0
    depth = np.zeros(q.shape, dtype=np.float64)
    if valid.any():
        lo, hi = float(encoding["min"]), float(encoding["max"])
        depth[valid] = lo + (q[valid].astype(np.float64) - 1) * (hi - lo) / DEPTH_LEVELS
    return depth, valid
