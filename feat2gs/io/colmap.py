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
from typing import Optional, Sequence, Union

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


# ---------------------------------------------------------------------------------------------- text files
# cameras.txt: "CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]"; images.txt: two lines per image,
# "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME" then "X Y POINT3D_ID ..." (possibly empty);
# points3D.txt: "POINT3D_ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)...". Lines starting with # are comments.
def _text_lines(path: PathLike) -> list[tuple[int, str]]:
    """(1-based line number, text) of the non-comment lines of a COLMAP text file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(str(p), "file not found")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(str(p), f"cannot read ({type(e).__name__}: {e})") from None
    return [(i + 1, ln.rstrip("\r")) for i, ln in enumerate(text.split("\n")) if not ln.lstrip().startswith("#")]


def _numbers(fields: Sequence[str], where: str, what: str, cast=float) -> list:
    try:
        out = [cast(v) for v in fields]
    except ValueError:
        raise InputError(where, f"{what}: not a number in {' '.join(fields)!r}") from None
    if cast is float and not np.isfinite(out).all():
        raise InputError(where, f"{what} contains NaN or inf")
    return out


def read_cameras_text(path: PathLike) -> dict[int, ColmapCamera]:
    cams: dict[int, ColmapCamera] = {}
    for no, line in _text_lines(path):
        f = line.split()
        if not f:
            continue
        where = f"{path}:{no}"
        if len(f) < 4:
            raise InputError(where, "expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]")
        cid, w, h = _numbers([f[0], f[2], f[3]], where, "camera id / width / height", int)
        model = f[1]
        if model not in CAMERA_MODEL_IDS:
            raise InputError(f"{where} (camera {cid}).model", f"unknown camera model {model}")
        n = CAMERA_MODELS[CAMERA_MODEL_IDS[model]].num_params
        params = np.asarray(_numbers(f[4:], f"{where} (camera {cid}).params", "parameters"), np.float64)
        if params.shape != (n,):
            raise InputError(f"{where} (camera {cid}).params", f"{model} takes {n} parameters, got {params.size}")
        cams[cid] = ColmapCamera(cid, model, w, h, params)
    return cams


def read_images_text(path: PathLike) -> dict[int, ColmapImage]:
    lines = _text_lines(path)  # after an image line the next line is its 2D points, even when empty
    images: dict[int, ColmapImage] = {}
    k = 0
    while k < len(lines):
        no, line = lines[k]
        f = line.split()
        if not f:
            k += 1
            continue
        where = f"{path}:{no}"
        if len(f) < 10:
            raise InputError(where, "expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
        iid = _numbers([f[0]], where, "image id", int)[0]
        pose = np.asarray(_numbers(f[1:8], f"{where} (image {iid}).pose", "qvec/tvec"), np.float64)
        cam_id = _numbers([f[8]], where, "camera id", int)[0]
        name = " ".join(f[9:])
        pts = lines[k + 1][1].split() if k + 1 < len(lines) else []
        if len(pts) % 3:
            raise InputError(f"{path}:{lines[k + 1][0]}", "expected X Y POINT3D_ID triples")
        arr = np.asarray(_numbers(pts, f"{path}:{lines[k + 1][0] if pts else no}", "2D points"),
                         np.float64).reshape(-1, 3)
        images[iid] = ColmapImage(iid, pose[:4], pose[4:], cam_id, name, arr[:, :2].copy(),
                                  arr[:, 2].astype(np.int64))
        k += 2
    return images


def read_points3d_text(path: PathLike) -> ColmapPoints:
    ids, xyz, rgb, err, offsets, timg, tpt = [], [], [], [], [0], [], []
    for no, line in _text_lines(path):
        f = line.split()
        if not f:
            continue
        where = f"{path}:{no}"
        if len(f) < 8 or (len(f) - 8) % 2:
            raise InputError(where, "expected POINT3D_ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)...")
        ids.append(int(f[0]))
        xyz.append(_numbers(f[1:4], f"{where}.xyz", "coordinates"))
        rgb.append(_numbers(f[4:7], f"{where}.rgb", "colour", int))
        err.append(_numbers(f[7:8], f"{where}.error", "error")[0])
        track = _numbers(f[8:], f"{where}.track", "track", int)
        timg += track[0::2]
        tpt += track[1::2]
        offsets.append(offsets[-1] + len(track) // 2)
    return ColmapPoints(np.asarray(ids, np.uint64), np.asarray(xyz, np.float64).reshape(-1, 3),
                        np.asarray(rgb, np.uint8).reshape(-1, 3), np.asarray(err, np.float64),
                        np.asarray(offsets, np.int64), np.asarray(timg, np.int32), np.asarray(tpt, np.int32))


def _fmt(x: float) -> str:
    return repr(float(x))  # shortest round-trip representation: text files keep float64 exactly


def write_cameras_text(path: PathLike, cameras: Sequence[ColmapCamera]) -> None:
    out = ["# Camera list with one line of data per camera:",
           "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]", f"# Number of cameras: {len(cameras)}"]
    for c in cameras:
        out.append(" ".join([str(c.id), c.model, str(c.width), str(c.height)] + [_fmt(v) for v in c.params]))
    Path(path).write_text("\n".join(out) + "\n")


def write_images_text(path: PathLike, images: Sequence[ColmapImage]) -> None:
    out = ["# Image list with two lines of data per image:",
           "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
           "#   POINTS2D[] as (X, Y, POINT3D_ID)", f"# Number of images: {len(images)}"]
    for im in images:
        out.append(" ".join([str(im.id)] + [_fmt(v) for v in im.qvec] + [_fmt(v) for v in im.tvec]
                            + [str(im.camera_id), im.name]))
        out.append(" ".join(f"{_fmt(x)} {_fmt(y)} {int(i)}" for (x, y), i in zip(im.xys, im.point3D_ids)))
    Path(path).write_text("\n".join(out) + "\n")


def write_points3d_text(path: PathLike, points: ColmapPoints) -> None:
    out = ["# 3D point list with one line of data per point:",
           "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
           f"# Number of points: {len(points)}"]
    for k in range(len(points)):
        a, b = points.track_offsets[k], points.track_offsets[k + 1]
        track = " ".join(f"{int(i)} {int(j)}"
                         for i, j in zip(points.track_image_ids[a:b], points.track_point2D_idx[a:b]))
        head = " ".join([str(int(points.ids[k]))] + [_fmt(v) for v in points.xyz[k]]
                        + [str(int(v)) for v in points.rgb[k]] + [_fmt(points.error[k])])
        out.append(head + (" " + track if track else ""))
    Path(path).write_text("\n".join(out) + "\n")


def read_model(folder: PathLike) -> tuple[dict[int, ColmapCamera], dict[int, ColmapImage], Optional[ColmapPoints]]:
    """cameras, images and (when present) points of a sparse model folder, ``.bin`` preferred over ``.txt``
    per file; a missing cameras or images file is an InputError naming the file looked for."""
    folder = Path(folder)

    def pick(stem: str, required: bool) -> Optional[Path]:
        for ext in (".bin", ".txt"):
            if (folder / (stem + ext)).is_file():
                return folder / (stem + ext)
        if required:
            raise InputError(str(folder / (stem + ".bin")), f"not found (nor {stem}.txt): a COLMAP model needs "
                                                            "cameras, images and optionally points3D")
        return None

    cp, ip, pp = pick("cameras", True), pick("images", True), pick("points3D", False)
    cams = read_cameras_bin(cp) if cp.suffix == ".bin" else read_cameras_text(cp)
    imgs = read_images_bin(ip) if ip.suffix == ".bin" else read_images_text(ip)
    pts = None if pp is None else (read_points3d_bin(pp) if pp.suffix == ".bin" else read_points3d_text(pp))
    return cams, imgs, pts
