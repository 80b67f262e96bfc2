"""Colour maps for pictures of geometry: a perceptual map built in Oklab, inverse depth and normal maps."""

from __future__ import annotations

import numpy as np

# Oklab -> linear sRGB (Ottosson's definition of the Oklab space)
_OKLAB_LMS = np.array([[1.0, 0.3963377774, 0.2158037573],
                       [1.0, -0.1055613458, -0.0638541728],
                       [1.0, -0.0894841775, -1.2914855480]])
_LMS_RGB = np.array([[4.0767416621, -3.3077115913, 0.2309699292],
                     [-1.2684380046, 2.6097574011, -0.3413193965],
                     [-0.0041960863, -0.7034186147, 1.7076147010]])


def oklab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) Oklab (L, a, b) -> (..., 3) gamma-encoded sRGB in [0, 1] (out-of-gamut values clipped)."""
    lms = (lab @ _OKLAB_LMS.T) ** 3
    rgb = np.clip(lms @ _LMS_RGB.T, 0.0, 1.0)
    return np.where(rgb <= 0.0031308, 12.92 * rgb, 1.055 * np.power(rgb, 1 / 2.4) - 0.055)


def colormap(t: np.ndarray) -> np.ndarray:
    """A perceptually ordered colour map: values t in [0, 1] -> sRGB (..., 3) in [0, 1].

    Oklab lightness rises linearly from 0.25 (dark purple) to 0.93 (pale yellow) while the hue turns through
    blue, teal and green, so equal steps of t are roughly equal steps of perceived lightness and the order
    survives greyscale printing."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    L = 0.25 + 0.68 * t
    hue = np.deg2rad(300.0 - 195.0 * t)
    chroma = 0.09 + 0.05 * np.sin(np.pi * t)
    lab = np.stack([L, chroma * np.cos(hue), chroma * np.sin(hue)], axis=-1)
    return oklab_to_srgb(lab)


def colorize_depth(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W, 3) colour-mapped inverse depth (1st-99th percentile of the valid pixels); invalid pixels black."""
    out = np.zeros(depth.shape + (3,), dtype=np.float64)
    if not valid.any():
        return out
    disp = 1.0 / depth[valid].astype(np.float64)
    lo, hi = np.percentile(disp, [1.0, 99.0])
    t = (disp - lo) / (hi - lo) if hi > lo else np.full_like(disp, 0.5)
    out[valid] = colormap(t)
    return out


def colorize_normal(normal: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W, 3) OpenCV camera-frame normals -> normal-map colours ``(n_x, -n_y, -n_z) / 2 + 0.5``."""
    rgb = normal.astype(np.float64) * np.array([0.5, -0.5, -0.5]) + 0.5
    return np.where(valid[..., None], np.clip(rgb, 0.0, 1.0), 0.0)
