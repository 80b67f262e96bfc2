"""Undistortion of lens-distorted views to pinhole images, with the mask of the pixels it can fill.

The undistorted view keeps the image size and the pinhole part of the camera (fx, fy, cx, cy): output pixel
(j, i) shows the ray of the pinhole camera through its centre (j + 0.5, i + 0.5), sampled from the distorted
image where the distortion model sends that ray. OpenCV builds the map (``initUndistortRectifyMap``, and
``fisheye.initUndistortRectifyMap`` for the equidistant fisheye model) and resamples (``remap``, bilinear; masks
and depths nearest). OpenCV puts pixel centres at integer coordinates, COLMAP and this project at +0.5, so the
principal point is shifted by -0.5 px for OpenCV and back. A pixel is valid when its source position lies inside
the distorted image (between the first and last pixel centres, so every bilinear tap is real data); the others
are marked invalid in the scene's mask (their colour is the nearest border pixel's, never used for scoring).

Models (COLMAP's names and parameter orders; the distortion acts on normalised coordinates, so it is the same at
every image resolution):

* ``SIMPLE_RADIAL`` (f, cx, cy, k), ``RADIAL`` (f, cx, cy, k1, k2), ``OPENCV`` (fx, fy, cx, cy, k1, k2, p1, p2),
  ``FULL_OPENCV`` (fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, k5, k6: OpenCV's rational model) -> OpenCV's
  ``(k1, k2, p1, p2[, k3, k4, k5, k6])``;
* ``OPENCV_FISHEYE`` (fx, fy, cx, cy, k1, k2, k3, k4): OpenCV's fisheye model;
* ``SIMPLE_PINHOLE`` / ``PINHOLE``: no distortion, no undistortion.

Other COLMAP models (FOV, the radial fisheyes, thin-prism) are rejected with an InputError naming the camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..errors import InputError

PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")
SUPPORTED_MODELS = PINHOLE_MODELS + ("SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV", "OPENCV_FISHEYE")


def split_camera_params(model: str, params, where: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(K 3x3, OpenCV distortion coefficients, fisheye) of a COLMAP camera model's parameter vector."""
    p = np.asarray(params, dtype=np.float64)
    counts = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8, "FULL_OPENCV": 12,
              "OPENCV_FISHEYE": 8}
    if model not in counts:
        raise InputError(where, f"unsupported camera model {model}; supported: {', '.join(SUPPORTED_MODELS)}")
    if p.shape != (counts[model],):
        raise InputError(where, f"{model} takes {counts[model]} parameters, got {p.size}")
    if not np.isfinite(p).all():
        raise InputError(where, "camera parameters contain NaN or inf")
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        f, cx, cy = p[:3]
        K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
        rest = p[3:]
    else:
        fx, fy, cx, cy = p[:4]
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
        rest = p[4:]
    if model == "SIMPLE_RADIAL":
        coeffs = np.array([rest[0], 0, 0, 0])
    elif model == "RADIAL":
        coeffs = np.array([rest[0], rest[1], 0, 0])
    else:
        coeffs = rest.copy()
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError(where, f"focal lengths must be positive, got fx={K[0, 0]:g}, fy={K[1, 1]:g}")
    return K, coeffs, model == "OPENCV_FISHEYE"


@dataclass
class Undistorter:
    """Maps images of a distorted camera (K, OpenCV ``coeffs``, ``fisheye``) of ``size`` = (W, H) to the
    pinhole camera K of the same size (see the module docstring)."""

    K: np.ndarray
    coeffs: np.ndarray
    fisheye: bool
    size: tuple[int, int]
    _maps: Optional[tuple] = field(default=None, repr=False)

    @staticmethod
    def needed(coeffs: np.ndarray) -> bool:
        return bool(np.any(np.asarray(coeffs) != 0))

    def maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(map_x, map_y, valid): source positions (OpenCV pixel coordinates) of every output pixel."""
        if self._maps is None:
            import cv2

            W, H = self.size
            Kcv = self.K.astype(np.float64).copy()
            Kcv[0, 2] -= 0.5
            Kcv[1, 2] -= 0.5
            if self.fisheye:
                D = np.asarray(self.coeffs, np.float64).reshape(4, 1)
                mx, my = cv2.fisheye.initUndistortRectifyMap(Kcv, D, np.eye(3), Kcv, (W, H), cv2.CV_32FC1)
            else:
                D = np.asarray(self.coeffs, np.float64).reshape(1, -1)
                mx, my = cv2.initUndistortRectifyMap(Kcv, D, None, Kcv, (W, H), cv2.CV_32FC1)
            valid = np.isfinite(mx) & np.isfinite(my) & (mx >= 0) & (mx <= W - 1) & (my >= 0) & (my <= H - 1)
            self._maps = (mx, my, valid)
        return self._maps

    def _remap(self, arr: np.ndarray, nearest: bool) -> np.ndarray:
        import cv2

        mx, my, _ = self.maps()
        return cv2.remap(arr, mx, my, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)

    def apply(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Undistorted image (3, H, W) and its valid-pixel mask (H, W) bool."""
        C, H, W = image.shape
        if (W, H) != tuple(self.size):
            raise InputError("undistort", f"image is {W}x{H}, the camera {self.size[0]}x{self.size[1]}")
        arr = np.ascontiguousarray(image.permute(1, 2, 0).numpy(), dtype=np.float32)
        out = self._remap(arr, nearest=False)
        if out.ndim == 2:
            out = out[..., None]
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))).clamp(0, 1), \
            torch.from_numpy(self.maps()[2].copy())

    def apply_nearest(self, plane: torch.Tensor) -> torch.Tensor:
        """A mask or depth map (H, W) resampled by nearest neighbour (invalid pixels: 0 / False)."""
        arr = np.ascontiguousarray(plane.float().numpy(), dtype=np.float32)
        out = torch.from_numpy(self._remap(arr, nearest=True)) * torch.from_numpy(self.maps()[2])
        return out.to(plane.dtype)
