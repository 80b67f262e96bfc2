"""Test helpers for tests/data: write a Scene in each on-disk format (so loaders can be checked against known
cameras), and epipolar checks from feature matches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from feat2gs.io.images import write_png
from feat2gs.scene import Cameras, Scene


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def write_llff(root: Path, scene: Scene, factors: dict[int, Scene], full_size: tuple[int, int],
               bounds: np.ndarray | None = None) -> Path:
    """LLFF folder: poses_bounds.npy for ``full_size`` = (w0, h0) images, and ``images_N`` for each
    ``factors[N]`` (a scene of the same cameras at that resolution). Requires fx = fy and a centred
    principal point (LLFF cannot store anything else)."""
    root.mkdir(parents=True, exist_ok=True)
    w0, h0 = full_size
    K = _np(scene.cameras.K)
    c2w = np.linalg.inv(_np(scene.cameras.viewmats))
    rows = []
    for v in range(scene.num_views):
        f0 = K[v, 0, 0] * w0 / scene.width
        R = c2w[v, :3, :3]
        llff_R = np.stack([R[:, 1], R[:, 0], -R[:, 2]], 1)  # [down, right, back]
        m = np.concatenate([llff_R, c2w[v, :3, 3:4], np.array([[h0], [w0], [f0]])], 1)
        b = bounds[v] if bounds is not None else _np(scene.depth_range[v])
        rows.append(np.concatenate([m.reshape(-1), b]))
    np.save(root / "poses_bounds.npy", np.stack(rows))
    for n, sc in factors.items():
        for v in range(sc.num_views):
            write_png(root / f"images_{n}" / f"image{v:03d}.png", sc.images[v])
    return root


def write_idr(root: Path, scene: Scene, scale: float = 1.0, scale_mat: np.ndarray | None = None,
              masks: bool = True) -> Path:
    """NeuS folder: cameras_sphere.npz with world_mat_i = scale * K [R | t] (any non-zero scale), image/
    (6-digit names) and mask/ (3-digit names)."""
    root.mkdir(parents=True, exist_ok=True)
    K, vm = _np(scene.cameras.K), _np(scene.cameras.viewmats)
    S = np.eye(4) if scale_mat is None else scale_mat
    arrays = {}
    for v in range(scene.num_views):
        wm = np.eye(4)
        wm[:3] = scale * (K[v] @ vm[v, :3])
        arrays[f"world_mat_{v}"] = wm
        arrays[f"scale_mat_{v}"] = S
    np.savez(root / "cameras_sphere.npz", **arrays)
    for v in range(scene.num_views):
        write_png(root / "image" / f"{v:06d}.png", scene.images[v])
        if masks and scene.masks is not None:
            write_png(root / "mask" / f"{v:03d}.png", scene.masks[v])
    return root


def write_middlebury(root: Path, scene: Scene, prefix: str = "toyS") -> Path:
    """Middlebury folder: <prefix>_par.txt and <prefix>0001.png ..."""
    root.mkdir(parents=True, exist_ok=True)
    K, vm = _np(scene.cameras.K), _np(scene.cameras.viewmats)
    lines = [str(scene.num_views)]
    for v in range(scene.num_views):
        name = f"{prefix}{v + 1:04d}.png"
        write_png(root / name, scene.images[v])
        nums = list(K[v].reshape(-1)) + list(vm[v, :3, :3].reshape(-1)) + list(vm[v, :3, 3])
        lines.append(name + " " + " ".join(f"{x:.17g}" for x in nums))
    (root / f"{prefix}_par.txt").write_text("\n".join(lines) + "\n")
    return root


# ---------------------------------------------------------------------------------------------- epipolar
def fundamental(cameras: Cameras, i: int, j: int) -> np.ndarray:
    """F with x_j^T F x_i = 0 for homogeneous pixel coordinates of views i and j."""
    K, vm = _np(cameras.K), _np(cameras.viewmats)
    R = vm[j, :3, :3] @ vm[i, :3, :3].T
    t = vm[j, :3, 3] - R @ vm[i, :3, 3]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(K[j]).T @ tx @ R @ np.linalg.inv(K[i])


def symmetric_epipolar_distance(F: np.ndarray, xi: np.ndarray, xj: np.ndarray) -> np.ndarray:
    """Per match, the mean of the distances of x_j to the line F x_i and of x_i to the line F^T x_j (pixels)."""
    hi = np.concatenate([xi, np.ones((len(xi), 1))], 1)
    hj = np.concatenate([xj, np.ones((len(xj), 1))], 1)
    li, lj = hi @ F.T, hj @ F  # lines in view j, in view i
    r = np.abs((hj * li).sum(1))
    return 0.5 * (r / np.linalg.norm(li[:, :2], axis=1) + r / np.linalg.norm(lj[:, :2], axis=1))


class OrbMatcher:
    """ORB features per view (cached), matched with a cross check and Lowe's ratio. Keypoints are returned in
    our pixel convention: skimage gives (row, col) with pixel centres at integers, so (u, v) = (col + 0.5,
    row + 0.5)."""

    def __init__(self, scene: Scene, n_keypoints: int = 1500, mask: bool = True):
        self.scene, self.n, self.mask = scene, n_keypoints, mask
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def features(self, v: int):
        if v not in self.cache:
            from skimage.color import rgb2gray
            from skimage.feature import ORB

            grey = rgb2gray(self.scene.images[v].permute(1, 2, 0).numpy())
            orb = ORB(n_keypoints=self.n, fast_threshold=0.05)
            orb.detect_and_extract(grey)
            kp, desc = orb.keypoints, orb.descriptors
            if self.mask and self.scene.masks is not None:
                keep = self.scene.masks[v].numpy()[kp[:, 0].astype(int), kp[:, 1].astype(int)]
                kp, desc = kp[keep], desc[keep]
            self.cache[v] = (kp[:, ::-1] + 0.5, desc)
        return self.cache[v]

    def match(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Matches that are inliers of a RANSAC-fitted fundamental matrix (1 px threshold): the data's own
        epipolar geometry, found without the loaded poses."""
        from skimage.feature import match_descriptors
        from skimage.measure import ransac
        from skimage.transform import FundamentalMatrixTransform

        (xi, di), (xj, dj) = self.features(i), self.features(j)
        m = match_descriptors(di, dj, cross_check=True, max_ratio=0.9)
        xi, xj = xi[m[:, 0]], xj[m[:, 1]]
        if len(xi) < 8:
            return xi[:0], xj[:0]
        _, inliers = ransac((xi, xj), FundamentalMatrixTransform, min_samples=8, residual_threshold=1.0,
                            max_trials=1000, rng=0)
        return xi[inliers], xj[inliers]


def rotate_view(cameras: Cameras, view: int, degrees: float, axis: int = 0) -> Cameras:
    """The same cameras with view ``view`` turned by ``degrees`` about its camera x (axis=0) or y (axis=1) axis:
    image points move by about f * angle, vertically or horizontally."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    R = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) if axis == 0 else np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    vm = _np(cameras.viewmats).copy()
    vm[view, :3] = R @ vm[view, :3]
    return cameras.with_viewmats(torch.from_numpy(vm).float())
