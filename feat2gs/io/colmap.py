"""COLMAP sparse-model binary files: ``cameras.bin``, ``images.bin``, ``points3D.bin`` (read and write).

Layout (little-endian, as COLMAP writes it):

* ``cameras.bin``: uint64 count; per camera int32 id, int32 model id, uint64 width, uint64 height, then the
  model's float64 parameters.
* ``images.bin``: uint64 count; per image int32 id, float64 qvec (w, x, y, z), float64 tvec (3), int32 camera
  id, the name as a NUL-terminated string, uint64 number of 2D points, then per point float64 x, float64 y,
  int64 3D point id (-1 when unmatched).
* ``points3D.bin``: uint64 count; per point uint64 id, float64 xyz, uint8 rgb, float64 reprojection error,
  uint64 track length, then per track element int32 image id, int32 2D point index.

COLMAP poses (qvec, tvec) are world-to-camera in the OpenCV camera convention, and its pixel centres are at
(j + 0.5, i + 0.5) -- the convention of :mod:`feat2gs.scene`, so intrinsics carry over unchanged.
Truncated or malformed files raise :class:`~feat2gs.errors.InputError` naming the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from ..errors import InputError

PathLike = Union[str, Path]


@dataclass(frozen=True)
class CameraModel:
    id: int
    name: str
    num_params: int
    single_focal: bool  # params start (f, cx, cy) rather than (fx, fy, cx, cy)


CAMERA_MODELS: dict[int, CameraModel] = {
    m.id: m
    for m in (
        CameraModel(0, "SIMPLE_PINHOLE", 3, True),
        CameraModel(1, "PINHOLE", 4, False),
        CameraModel(2, "SIMPLE_RADIAL", 4, True),
        CameraModel(3, "RADIAL", 5, True),
        CameraModel(4, "OPENCV", 8, False),
        CameraModel(5, "OPENCV_FISHEYE", 8, False),
        CameraModel(6, "FULL_OPENCV", 12, False),
        CameraModel(7, "FOV", 5, False),
        CameraModel(8, "SIMPLE_RADIAL_FISHEYE", 4, True),
        CameraModel(9, "RADIAL_FISHEYE", 5, True),
        CameraModel(10, "THIN_PRISM_FISHEYE", 12, False),
        CameraModel(11, "RAD_TAN_THIN_PRISM_FISHEYE", 16, False),
    )
}
CAMERA_MODEL_IDS = {m.name: m.id for m in CAMERA_MODELS.values()}


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # float64, the model's parameter vector

    @property
    def model_info(self) -> CameraModel:
        return CAMERA_MODELS[CAMERA_MODEL_IDS[self.model]]

    @property
    def K(self) -> np.ndarray:
        """3x3 pinhole intrinsics (distortion parameters are not part of it)."""
        p = self.params
        if self.model_info.single_focal:
            fx = fy = p[0]
            cx, cy = p[1], p[2]
        else:
            fx, fy, cx, cy = p[:4]
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    @property
    def distortion(self) -> np.ndarray:
        """The parameters after the pinhole ones (empty for SIMPLE_PINHOLE / PINHOLE)."""
        return self.params[3 if self.model_info.single_focal else 4 :]


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray  # (4,) w, x, y, z; world-to-camera rotation
    tvec: np.ndarray  # (3,) world-to-camera translation
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (N, 2) keypoints in pixels
    point3D_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))  # (N,), -1 unmatched

    def world_to_camera(self) -> np.ndarray:
        """4x4 world-to-camera matrix (OpenCV camera axes)."""
        m = np.eye(4)
        m[:3, :3] = qvec_to_rotmat(self.qvec)
        m[:3, 3] = self.tvec
        return m


@dataclass
class ColmapPoints:
    """All points of a ``points3D.bin``; tracks are flattened: point k owns elements
    ``track_offsets[k]:track_offsets[k+1]`` of ``track_image_ids`` / ``track_point2D_idx``."""

    ids: np.ndarray  # (M,) uint64
    xyz: np.ndarray  # (M, 3) float64
    rgb: np.ndarray  # (M, 3) uint8
    error: np.ndarray  # (M,) float64
    track_offsets: np.ndarray  # (M + 1,) int64
    track_image_ids: np.ndarray  # (T,) int32
    track_point2D_idx: np.ndarray  # (T,) int32

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def track_lengths(self) -> np.ndarray:
        return np.diff(self.track_offsets)


# ---------------------------------------------------------------------------------------------- rotations
def qvec_to_rotmat(q: Sequence[float]) -> np.ndarray:
    """Rotation matrix of a quaternion (w, x, y, z); the quaternion is normalised first."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z), w >= 0, of a rotation matrix (Shepperd's method: divide by the largest
    of 4w^2, 4x^2, 4y^2, 4z^2 for stability)."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [s / 4, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, s / 4, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, s / 4, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, s / 4]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


# ---------------------------------------------------------------------------------------------- reading
class _Reader:
    """Sequential little-endian reader that reports truncation as InputError naming the file."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(str(self.path), "file not found")
        self.data = self.path.read_bytes()
        self.pos = 0

    def fail(self, message: str) -> InputError:
        return InputError(str(self.path), message)

    def take(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise self.fail(f"truncated while reading {what} (byte {self.pos} of {len(self.data)})")
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if self.pos + size > len(self.data):
            raise self.fail(f"truncated while reading {what} (byte {self.pos} of {len(self.data)})")
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos).copy()
        self.pos += size
        return out

    def cstring(self, what: str) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise self.fail(f"truncated while reading {what}")
        out = self.data[self.pos : end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return out

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} unexpected trailing bytes")


def read_cameras_bin(path: PathLike) -> dict[int, ColmapCamera]:
    """Cameras of a COLMAP ``cameras.bin``, keyed by camera id."""
    r = _Reader(path)
    (count,) = r.take("Q", "the camera count")
    cams: dict[int, ColmapCamera] = {}
    for k in range(count):
        cid, model_id, width, height = r.take("iiQQ", f"camera {k}")
        if model_id not in CAMERA_MODELS:
            raise r.fail(f"camera {cid}: unknown camera model id {model_id}")
        model = CAMERA_MODELS[model_id]
        params = r.array("<f8", model.num_params, f"the parameters of camera {cid}")
        if not np.isfinite(params).all():
            raise r.fail(f"camera {cid}: parameters contain NaN or inf")
        cams[cid] = ColmapCamera(cid, model.name, int(width), int(height), params)
    r.finish()
    return cams


def read_images_bin(path: PathLike) -> dict[int, ColmapImage]:
    """Registered images of a COLMAP ``images.bin``, keyed by image id."""
    r = _Reader(path)
    (count,) = r.take("Q", "the image count")
    images: dict[int, ColmapImage] = {}
    for k in range(count):
        iid, *pose, cam_id = r.take("i7di", f"image {k}")
        name = r.cstring(f"the name of image {iid}")
        (n2d,) = r.take("Q", f"the 2D point count of image {iid}")
        rec = r.array(np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]), n2d, f"the 2D points of image {iid}")
        pose = np.asarray(pose)
        if not np.isfinite(pose).all():
            raise r.fail(f"image {iid} ({name}): pose contains NaN or inf")
        images[iid] = ColmapImage(iid, pose[:4], pose[4:], cam_id, name,
                                  np.stack([rec["x"], rec["y"]], 1), rec["id"].astype(np.int64))
    r.finish()
    return images


def read_points3d_bin(path: PathLike) -> ColmapPoints:
    """All points of a COLMAP ``points3D.bin`` (see :class:`ColmapPoints`)."""
    r = _Reader(path)
    (count,) = r.take("Q", "the point count")
    head = np.dtype([("id", "<u8"), ("xyz", "<f8", 3), ("rgb", "u1", 3), ("error", "<f8"), ("n", "<u8")])
    starts = np.empty(count, np.int64)
    lengths = np.empty(count, np.int64)
    pos, data = r.pos, r.data
    for k in range(count):  # records have variable length: one cheap pass to find them
        if pos + head.itemsize > len(data):
            raise r.fail(f"truncated in point {k} of {count}")
        starts[k] = pos
        (n,) = struct.unpack_from("<Q", data, pos + head.itemsize - 8)
        lengths[k] = n
        pos += head.itemsize + 8 * n
    if pos > len(data):
        raise r.fail(f"truncated in the track of point {count - 1}")
    r.pos = pos
    r.finish()
    buf = np.frombuffer(data, np.uint8)
    heads = buf[starts[:, None] + np.arange(head.itemsize)].copy().view(head).reshape(count) if count else \
        np.zeros(0, head)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    # byte positions of every track element: record start + header + 8 * element index within the track
    within = np.arange(total) - np.repeat(offsets[:-1], lengths)
    elem_pos = np.repeat(starts + head.itemsize, lengths) + 8 * within
    tracks = buf[elem_pos[:, None] + np.arange(8)].copy().view("<i4").reshape(total, 2) if total else \
        np.zeros((0, 2), np.int32)
    xyz = heads["xyz"].astype(np.float64)
    if not np.isfinite(xyz).all():
        bad = int(np.nonzero(~np.isfinite(xyz).all(1))[0][0])
        raise r.fail(f"point {int(heads['id'][bad])} has a NaN or inf coordinate")
    return ColmapPoints(heads["id"].copy(), xyz, heads["rgb"].copy(), heads["error"].astype(np.float64), offsets,
                        tracks[:, 0].astype(np.int32), tracks[:, 1].astype(np.int32))


# ---------------------------------------------------------------------------------------------- writing
def write_cameras_bin(path: PathLike, cameras: Sequence[ColmapCamera]) -> None:
    out = [struct.pack("<Q", len(cameras))]
    for c in cameras:
        model = CAMERA_MODELS[CAMERA_MODEL_IDS[c.model]]
        params = np.asarray(c.params, dtype="<f8")
        if params.shape != (model.num_params,):
            raise InputError(f"camera {c.id}", f"{c.model} takes {model.num_params} parameters, got {params.shape}")
        out.append(struct.pack("<iiQQ", c.id, model.id, c.width, c.height) + params.tobytes())
    Path(path).write_bytes(b"".join(out))


def write_images_bin(path: PathLike, images: Sequence[ColmapImage]) -> None:
    out = [struct.pack("<Q", len(images))]
    rec = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
    for im in images:
        pts = np.zeros(len(im.xys), rec)
        pts["x"], pts["y"], pts["id"] = im.xys[:, 0], im.xys[:, 1], im.point3D_ids
        out.append(struct.pack("<i7di", im.id, *np.asarray(im.qvec, float), *np.asarray(im.tvec, float), im.camera_id))
        out.append(im.name.encode("utf-8") + b"\x00" + struct.pack("<Q", len(pts)) + pts.tobytes())
    Path(path).write_bytes(b"".join(out))


def write_points3d_bin(path: PathLike, points: ColmapPoints) -> None:
    out = [struct.pack("<Q", len(points))]
    for k in range(len(points)):
        a, b = points.track_offsets[k], points.track_offsets[k + 1]
        track = np.stack([points.track_image_ids[a:b], points.track_point2D_idx[a:b]], 1).astype("<i4")
        out.append(struct.pack("<Q3d3BdQ", int(points.ids[k]), *points.xyz[k], *points.rgb[k],
                               float(points.error[k]), int(b - a)) + track.tobytes())
    Path(path).write_bytes(b"".join(out))
