"""``feat2gs moge IMAGE_OR_FOLDER --out DIR``: monocular geometry of images with MoGe, written to files.

One sub-folder of ``DIR`` per image, named after the image's stem (``<name>_<ext>`` when two inputs share a
stem), holding:

* ``depth.png`` -- 16-bit z-depth, linear between the image's valid depth range: ``q = 0`` marks an invalid
  pixel, otherwise ``depth = min + (q - 1) * (max - min) / 65534`` with ``min``/``max`` in ``camera.json``
  (``depth_png``); so the quantisation step is (max - min) / 65534 whatever the scene's scale. Units: metres for
  MoGe-2 (metric), arbitrary (scale-invariant) for MoGe-1 (``depth_units``).
  ``feat2gs.io.depth_png.decode_depth_png`` reads it back.
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
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import InputError
from ..io.colormap import colorize_depth, colorize_normal
from ..io.depth_png import encode_depth_png
from ..io.ply import write_point_ply

log = logging.getLogger("feat2gs.moge")

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
