"""Scene and camera containers: the typed input of every stage.

Conventions (see README "Conventions"):

* images are float32 in [0, 1], shape (V, 3, H, W);
* cameras follow OpenCV (x right, y down, z forward); extrinsics are world-to-camera 4x4 matrices
  (``viewmats``, as gsplat takes them);
* intrinsics ``K`` are in pixels of the image they belong to, with the pixel (row i, column j) covering
  [j, j+1) x [i, i+1), so its centre is at (j + 0.5, i + 0.5) -- gsplat's and COLMAP's convention. Under
  this convention resizing an image by (sx, sy) scales the first two rows of K by (sx, sy) exactly;
* depth maps hold z-depth along the optical axis, 0 where unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .errors import InputError


def _check_finite(t: torch.Tensor, where: str) -> None:
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).nonzero()[0].tolist()
        raise InputError(where, f"contains NaN or inf (first at index {bad})")


@dataclass
class Cameras:
    """V pinhole cameras sharing one image size."""

    K: torch.Tensor  # (V, 3, 3)
    viewmats: torch.Tensor  # (V, 4, 4) world-to-camera
    width: int
    height: int

    def __post_init__(self) -> None:
        self.K = torch.as_tensor(self.K, dtype=torch.float32)
        self.viewmats = torch.as_tensor(self.viewmats, dtype=torch.float32)
        self.validate()

    def validate(self, where: str = "cameras") -> None:
        K, W = self.K, self.viewmats
        if K.ndim != 3 or K.shape[1:] != (3, 3):
            raise InputError(f"{where}.K", f"expected shape (V, 3, 3), got {tuple(K.shape)}")
        if W.ndim != 3 or W.shape[1:] != (4, 4):
            raise InputError(f"{where}.viewmats", f"expected shape (V, 4, 4), got {tuple(W.shape)}")
        if K.shape[0] != W.shape[0]:
            raise InputError(where, f"{K.shape[0]} intrinsics but {W.shape[0]} extrinsics")
        _check_finite(K, f"{where}.K")
        _check_finite(W, f"{where}.viewmats")
        if (K[:, 0, 0] <= 0).any() or (K[:, 1, 1] <= 0).any():
            raise InputError(f"{where}.K", "focal lengths must be positive")
        if not torch.allclose(W[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand_as(W[:, 3]), atol=1e-5):
            raise InputError(f"{where}.viewmats", "last row must be [0, 0, 0, 1]")
        R = W[:, :3, :3].double()
        eye = torch.eye(3, dtype=R.dtype).expand_as(R)
        if not torch.allclose(R @ R.transpose(1, 2), eye, atol=1e-3):
            raise InputError(f"{where}.viewmats", "rotation part is not orthonormal")
        if (torch.linalg.det(R) < 0).any():
            raise InputError(f"{where}.viewmats", "rotation part has determinant -1 (a reflection)")
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"{where}.size", f"bad image size {self.width}x{self.height}")

    def __len__(self) -> int:
        return int(self.K.shape[0])

    @property
    def camtoworlds(self) -> torch.Tensor:
        return torch.linalg.inv(self.viewmats)

    @property
    def centers(self) -> torch.Tensor:
        """Camera centres in world coordinates, (V, 3)."""
        R, t = self.viewmats[:, :3, :3], self.viewmats[:, :3, 3]
        return -(R.transpose(1, 2) @ t.unsqueeze(-1)).squeeze(-1)

    def subset(self, indices: Sequence[int]) -> "Cameras":
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return Cameras(self.K[idx].clone(), self.viewmats[idx].clone(), self.width, self.height)

    def resized(self, width: int, height: int) -> "Cameras":
        """Cameras of the same views for images resized to (width, height)."""
        K = self.K.clone()
        K[:, 0] *= width / self.width
        K[:, 1] *= height / self.height
        return Cameras(K, self.viewmats.clone(), width, height)

    def with_viewmats(self, viewmats: torch.Tensor) -> "Cameras":
        return Cameras(self.K.clone(), viewmats, self.width, self.height)

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points (P, 3) into every view: pixel coords (V, P, 2) and depths (V, P)."""
        R, t = self.viewmats[:, :3, :3], self.viewmats[:, :3, 3]
        cam = torch.einsum("vij,pj->vpi", R, points.to(R)) + t[:, None]
        z = cam[..., 2]
        uv = torch.einsum("vij,vpj->vpi", self.K, cam)[..., :2] / z.unsqueeze(-1)
        return uv, z

    def unproject(self, depth: torch.Tensor) -> torch.Tensor:
        """World points (V, H, W, 3) of z-depth maps (V, H, W) sampled at pixel centres."""
        V, H, W = depth.shape
        ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32) + 0.5,
                                torch.arange(W, dtype=torch.float32) + 0.5, indexing="ij")
        pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, -1, 3)  # (1, HW, 3)
        rays = torch.einsum("vij,vpj->vpi", torch.linalg.inv(self.K), pix.expand(V, -1, -1))
        cam = rays * depth.reshape(V, -1, 1)
        c2w = self.camtoworlds
        world = torch.einsum("vij,vpj->vpi", c2w[:, :3, :3], cam) + c2w[:, None, :3, 3]
        return world.reshape(V, H, W, 3)


@dataclass
class Split:
    """Indices of the train and test views of a scene (disjoint, into ``Scene`` order)."""

    train: tuple[int, ...]
    test: tuple[int, ...]
    rule: str = ""

    def __post_init__(self) -> None:
        self.train, self.test = tuple(int(i) for i in self.train), tuple(int(i) for i in self.test)
        if set(self.train) & set(self.test):
            raise InputError("split", f"train and test views overlap: {sorted(set(self.train) & set(self.test))}")
        if not self.train:
            raise InputError("split.train", "no train views")


@dataclass
class Scene:
    """A set of posed views with optional ground truth.

    ``masks`` (V, H, W) bool marks pixels belonging to the scene's subject (e.g. DTU object masks);
    ``depths`` (V, H, W) are GT z-depths (0 = unknown); ``points`` (M, 3) is a GT point cloud in world
    coordinates; ``sparse_points`` (M, 3) are SfM points (e.g. COLMAP's) when the dataset ships them;
    ``depth_range`` (V, 2) gives per-view near/far bounds when known (LLFF bounds, a bounding sphere).
    """

    name: str
    images: torch.Tensor
    cameras: Cameras
    image_names: list[str]
    masks: Optional[torch.Tensor] = None
    depths: Optional[torch.Tensor] = None
    points: Optional[torch.Tensor] = None
    sparse_points: Optional[torch.Tensor] = None
    depth_range: Optional[torch.Tensor] = None
    units: str = "scene units"
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = torch.as_tensor(self.images, dtype=torch.float32)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        im = self.images
        if im.ndim != 4 or im.shape[1] != 3:
            raise InputError(f"{self.name}.images", f"expected (V, 3, H, W), got {tuple(im.shape)}")
        V, _, H, W = im.shape
        _check_finite(im, f"{self.name}.images")
        if len(self.cameras) != V:
            raise InputError(f"{self.name}.cameras", f"{len(self.cameras)} cameras for {V} images")
        if (self.cameras.width, self.cameras.height) != (W, H):
            raise InputError(f"{self.name}.cameras",
                             f"cameras are for {self.cameras.width}x{self.cameras.height} images, images are {W}x{H}")
        if len(self.image_names) != V:
            raise InputError(f"{self.name}.image_names", f"{len(self.image_names)} names for {V} images")
        for fname, shape in (("masks", (V, H, W)), ("depths", (V, H, W)), ("depth_range", (V, 2))):
            t = getattr(self, fname)
            if t is not None and tuple(t.shape) != shape:
                raise InputError(f"{self.name}.{fname}", f"expected shape {shape}, got {tuple(t.shape)}")
        for fname in ("points", "sparse_points"):
            t = getattr(self, fname)
            if t is not None and (t.ndim != 2 or t.shape[1] != 3):
                raise InputError(f"{self.name}.{fname}", f"expected shape (M, 3), got {tuple(t.shape)}")
        for fname in ("depths", "points", "sparse_points", "depth_range"):
            t = getattr(self, fname)
            if t is not None:
                _check_finite(t, f"{self.name}.{fname}")
        if self.masks is not None:
            self.masks = self.masks.bool()

    # ------------------------------------------------------------------ views
    @property
    def num_views(self) -> int:
        return int(self.images.shape[0])

    @property
    def height(self) -> int:
        return int(self.images.shape[2])

    @property
    def width(self) -> int:
        return int(self.images.shape[3])

    def subset(self, indices: Sequence[int]) -> "Scene":
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        pick = lambda t: None if t is None else t[idx].clone()  # noqa: E731
        return replace(
            self,
            images=self.images[idx].clone(),
            cameras=self.cameras.subset(indices),
            image_names=[self.image_names[i] for i in indices],
            masks=pick(self.masks),
            depths=pick(self.depths),
            depth_range=pick(self.depth_range),
            meta=dict(self.meta),
        )

    def resized(self, width: int, height: int) -> "Scene":
        """The same scene at another resolution: area-averaged images, nearest masks and depths, rescaled K."""
        if (width, height) == (self.width, self.height):
            return self
        if width <= 0 or height <= 0:
            raise InputError("resolution", f"bad target size {width}x{height}")
        images = F.interpolate(self.images, size=(height, width), mode="bilinear", antialias=True,
                               align_corners=False).clamp(0, 1)
        near = lambda t: None if t is None else F.interpolate(  # noqa: E731
            t[:, None].float(), size=(height, width), mode="nearest-exact")[:, 0]
        masks = near(self.masks)
        return replace(
            self,
            images=images,
            cameras=self.cameras.resized(width, height),
            masks=None if masks is None else masks > 0.5,
            depths=near(self.depths),
            meta=dict(self.meta),
        )

    def resized_long_side(self, long_side: int, multiple: int = 1) -> "Scene":
        """Resize so that the longer side is ``long_side`` and both sides are multiples of ``multiple``."""
        w, h = working_size(self.width, self.height, long_side, multiple)
        return self.resized(w, h)


def working_size(width: int, height: int, long_side: int, multiple: int = 1) -> tuple[int, int]:
    """(w, h) with the long side ``long_side`` (aspect kept) and both sides rounded to ``multiple``."""
    s = long_side / max(width, height)
    w = max(multiple, int(round(width * s / multiple)) * multiple)
    h = max(multiple, int(round(height * s / multiple)) * multiple)
    return w, h
