"""``feat2gs moge IMAGE_OR_FOLDER --out DIR``: monocular geometry of images with MoGe, written to files.

One sub-folder of ``DIR`` per image, named after the image's stem (``<name>_<ext>`` when two inputs share a
stem), holding:

* ``depth.png`` -- 16-bit z-depth, linear between the image's valid depth range: ``q = 0`` marks an invalid
  pixel, otherwise ``depth = min + (q - 1) * (max - min) / 65534`` with ``min``/``max`` in ``camera.json``
  (``depth_png``); so the quantisation step is (max - min) / 65534 whatever the scene's scale. Units: metres for
  MoGe-2 (metric), arbitrary (scale-invariant) for MoGe-1 (``depth_units``). ``decode_depth_png`` reads it back.
* ``depth_vis.png`` -- colour-mapped inverse depth (near bright yellow, far dark purple; a perceptual map with
  monotonic lightness, built in Oklab), normalised between the 1st and 99th percentile; invalid pixels black.
* ``mask.png`` -- 8-bit, 255 where the prediction is valid (MoGe's mask and a positive finite depth).
* ``normal.png`` -- (models with a normal head) camera-frame unit normals as ``RGB = (n_x, -n_y, -n_z) / 2 +
  0.5`` (the usual OpenGL-style normal-map colours: a surface facing the camera is blue); invalid pixels black.
* ``points.ply`` -- the valid pixels' 3D points (float32 ``x, y, z``) with their colours (``red, green, blue``
  uchar), in the **OpenCV camera frame** (x right, y down, z forward; MoGe's own CLI flips to OpenGL axes).
* ``camera.json`` -- image size, model, ``intrinsics_normalized`` (image spans [0, 1]) and ``intrinsics_pixel``
  (pixel (i, j) has its centre at (j + 0.5, i + 0.5)), ``fov_x_deg`` / ``fov_y_deg``, ``metric_scale`` (MoGe-2)
  and the depth encoding.

A folder is processed non-recursively in file-name order with a progress bar; files that are not images (by
extension, or undecodable) are skipped with a warning. A file given explicitly must be an image
(``InputError`` naming it otherwise). Weights: ``--weights`` (a ``model.pt`` or a folder holding one; checked
strictly against its ``model_config``) or the released ``--variant`` from the Hugging Face cache.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import InputError

log = logging.getLogger("feat2gs.moge")

DEPTH_LEVELS = 65534  # q in [1, 65535] encodes depth; 0 = invalid


# ------------------------------------------------------------------------------------------- depth encoding
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


# ------------------------------------------------------------------------------------------- colour map
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


def write_point_ply(path: Path, points: np.ndarray, colors: np.ndarray) -> None:
    """A coloured point cloud: float32 x, y, z and uchar red, green, blue (colours in [0, 1])."""
    from plyfile import PlyData, PlyElement

    arr = np.empty(len(points), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, k in enumerate("xyz"):
        arr[k] = points[:, i]
    rgb = np.round(np.clip(colors, 0.0, 1.0) * 255).astype(np.uint8)
    for i, k in enumerate(("red", "green", "blue")):
        arr[k] = rgb[:, i]
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))


# ------------------------------------------------------------------------------------------- inputs
def collect_inputs(path: Path) -> tuple[list[Path], list[Path]]:
    """(image candidates, skipped non-image files) of a file or a folder (non-recursive, by name)."""
    from ..io.images import IMAGE_EXTENSIONS

    if path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise InputError(str(path), f"not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)})")
        return [path], []
    if not path.is_dir():
        raise InputError(str(path), "no such image file or folder")
    files = sorted((p for p in path.iterdir() if p.is_file()), key=lambda p: p.name)
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    return images, [p for p in files if p not in images]


def output_names(files: list[Path]) -> list[str]:
    """One output folder name per input: the stem, or ``<stem>_<ext>`` when stems collide."""
    stems = [p.stem for p in files]
    return [p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix.lstrip('.')}" for p in files]


# ------------------------------------------------------------------------------------------- one image
def write_result(out: Path, image: torch.Tensor, result, source: Path, model_desc: dict) -> dict[str, Any]:
    """Write every output file of one image's ``MoGeResult`` (unbatched, unmasked) into ``out``; returns the
    camera.json content."""
    from ..geometry.focal import intrinsics_to_fov
    from ..io.images import write_png

    out.mkdir(parents=True, exist_ok=True)
    depth = result.depth.float().cpu().numpy()
    valid = np.isfinite(depth) & (depth > 0)
    if result.mask is not None:
        valid &= result.mask.cpu().numpy()
    depth = np.where(valid, depth, 0.0)
    metric = result.metric_scale is not None
    units = "metres" if metric else "relative (scale-invariant)"

    q, enc = encode_depth_png(depth, valid)
    write_png(out / "depth.png", q[..., None], bit_depth=16)
    write_png(out / "depth_vis.png", colorize_depth(depth, valid))
    write_png(out / "mask.png", valid)
    if result.normal is not None:
        write_png(out / "normal.png", colorize_normal(result.normal.float().cpu().numpy(), valid))
    pts = result.points.float().cpu().numpy()[valid]
    cols = image.permute(1, 2, 0).cpu().numpy()[valid]
    write_point_ply(out / "points.ply", pts, cols)

    H, W = depth.shape
    K = result.intrinsics.double().cpu()
    fx, fy = intrinsics_to_fov(K)
    camera = {
        "image": str(source), "width": W, "height": H, **model_desc,
        "intrinsics_normalized": K.tolist(), "intrinsics_pixel": result.pixel_intrinsics().double().cpu().tolist(),
        "pixel_convention": "pixel (i, j) has its centre at (j + 0.5, i + 0.5); normalised K: image spans [0, 1]",
        "axes": "OpenCV camera frame: x right, y down, z forward",
        "fov_x_deg": math.degrees(float(fx)), "fov_y_deg": math.degrees(float(fy)),
        "metric_scale": float(result.metric_scale) if metric else None,
        "depth_units": units, "depth_png": enc.as_dict(units),
        "valid_fraction": float(valid.mean()), "num_points": int(valid.sum()),
    }
    (out / "camera.json").write_text(json.dumps(camera, indent=2))
    return camera


# ------------------------------------------------------------------------------------------- command
def run_moge(input_path: str, out: str, variant: Optional[str] = None, weights: Optional[str] = None,
             fov_x: Optional[float] = None, resolution_level: int = 9, num_tokens: Optional[int] = None,
             device: str = "auto", use_fp16: bool = True, progress: Optional[bool] = None) -> list[Path]:
    """Process an image or a folder of images (see the module docstring); returns the output folders."""
    from tqdm.auto import tqdm

    from ..init.moge import load_moge_model
    from ..device import resolve_device
    from ..io.atomic import ensure_writable_dir
    from ..io.images import read_image

    src = Path(input_path).expanduser()
    if not 0 <= int(resolution_level) <= 9:
        raise InputError("--resolution-level", f"must be in 0..9, got {resolution_level}")
    if num_tokens is not None and int(num_tokens) < 1:
        raise InputError("--num-tokens", f"must be positive, got {num_tokens}")
    if fov_x is not None and not 0 < float(fov_x) < 180:
        raise InputError("--fov-x", f"must be in (0, 180) degrees, got {fov_x}")
    root = ensure_writable_dir(out, "--out")  # before any work
    files, skipped = collect_inputs(src)
    for p in skipped:
        log.warning("skipping %s: not an image file", p)
    if not files:
        raise InputError(str(src), "no image files in this folder")
    folder_mode = src.is_dir()
    model, desc = load_moge_model(variant, weights, resolve_device(device, "--device"), variant_field="--variant",
                                  weights_field="--weights")
    written = []
    for path, name in tqdm(list(zip(files, output_names(files))), desc="moge", unit="image",
                           disable=(not folder_mode) if progress is None else not progress):
        try:
            image = read_image(path)
        except InputError as e:
            if not folder_mode:
                raise
            log.warning("skipping %s: %s", path, e.detail)
            continue
        result = model.infer(image, num_tokens=num_tokens, resolution_level=int(resolution_level), apply_mask=False,
                             fov_x=fov_x, use_fp16=use_fp16)
        write_result(root / name, image, result, path, desc)
        written.append(root / name)
    if not written:
        raise InputError(str(src), "none of the files could be read as an image")
    return written


def cmd_moge(args) -> int:
    written = run_moge(args.input, args.out, variant=args.variant, weights=args.weights, fov_x=args.fov_x,
                       resolution_level=args.resolution_level, num_tokens=args.num_tokens, device=args.device,
                       use_fp16=not args.fp32)
    print(f"wrote {len(written)} result folder(s) under {args.out}")
    return 0


def register(sub) -> None:
    help_ = "monocular geometry with MoGe: depth, mask, normals, point cloud and camera per image"
    p = sub.add_parser("moge", help=help_, description=help_)
    p.add_argument("input", help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder (one sub-folder per image)")
    p.add_argument("--variant", default=None,
                   help="released variant: v2-vitl-normal (default), v2-vitl, v2-vitb-normal, v2-vits-normal, v1-vitl")
    p.add_argument("--weights", default=None, help="a MoGe model.pt (or a folder holding one); default: HF cache")
    p.add_argument("--fov-x", type=float, default=None, help="known horizontal field of view in degrees")
    p.add_argument("--resolution-level", type=int, default=9, help="0..9: token budget (9 = trained maximum)")
    p.add_argument("--num-tokens", type=int, default=None, help="ViT token budget (overrides --resolution-level)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--fp32", action="store_true", help="no fp16 autocast on CUDA")
    p.set_defaults(func=cmd_moge)
