"""Image and mask files: reading to float tensors, writing 8- and 16-bit PNGs.

Conventions
-----------
* :func:`read_image` returns float32 ``(3, H, W)`` in [0, 1]. Grey images are repeated to RGB; palette and
  CMYK images are converted to RGB; 16-bit files keep their precision (divided by 65535). An alpha channel is
  dropped (``background=None``, the default) or composited over ``background`` (an RGB triple in [0, 1]):
  ``rgb * a + background * (1 - a)``.
* :func:`read_mask` returns bool ``(H, W)``: the alpha channel when the file has one, otherwise the mean of
  the colour channels, compared with ``threshold`` (in [0, 1]) -- soft, anti-aliased masks become binary.
* Pixel data is read as stored: EXIF orientation tags are not applied (SfM tools calibrate the stored
  pixel grid).
* Every missing, unreadable or corrupt file raises :class:`~feat2gs.errors.InputError` naming the file.

Pillow cannot decode or encode 16-bit *colour* PNGs without truncating them to 8 bits, so 16-bit PNGs are
read and written with pypng; everything else is Pillow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import InputError

PathLike = Union[str, Path]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------- listing
def list_images(folder: PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly inside ``folder``, sorted by file name (plain lexicographic order, as LLFF and
    COLMAP sort them). Raises InputError when the folder is missing or holds no image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(str(folder), "image folder not found")
    exts = tuple(e.lower() for e in extensions)
    named = [p for p in folder.iterdir() if p.suffix.lower() in exts]
    dangling = sorted(p.name for p in named if p.is_symlink() and not p.exists())
    if dangling:
        raise InputError(str(folder / dangling[0]), "broken symbolic link (its target does not exist)"
                         + (f"; also {', '.join(dangling[1:4])}" if len(dangling) > 1 else ""))
    files = sorted((p for p in named if p.is_file()), key=lambda p: p.name)
    if not files:
        raise InputError(str(folder), f"no image files ({', '.join(exts)}) in this folder")
    return files


# ---------------------------------------------------------------------------------------------- reading
def read_image_array(path: PathLike) -> np.ndarray:
    """The stored pixels of an image file as float32 ``(H, W, C)`` in [0, 1], C in {1, 2, 3, 4}
    (grey, grey+alpha, RGB, RGBA)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "image file not found")
    try:
        with open(path, "rb") as f:
            head = f.read(33)
    except OSError as e:
        raise InputError(str(path), f"cannot read file: {e}") from None
    if head[:8] == _PNG_SIGNATURE and len(head) == 33 and head[24] == 16:
        return _read_png16(path).astype(np.float32) / 65535.0
    return _read_with_pillow(path)


def _read_png16(path: Path) -> np.ndarray:
    import png

    try:
        w, h, rows, info = png.Reader(filename=str(path)).asDirect()
        arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    except Exception as e:  # pypng raises FormatError/ChunkError/ValueError for corrupt data
        raise InputError(str(path), f"cannot decode 16-bit PNG ({type(e).__name__}: {e})") from None
    if arr.shape != (h, w * info["planes"]):
        raise InputError(str(path), f"corrupt PNG: {arr.shape} samples for a {w}x{h} image")
    return arr.reshape(h, w, info["planes"])


def _read_with_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("P", "PA"):
                im = im.convert("RGBA" if ("transparency" in im.info or mode == "PA") else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            elif mode == "1":
                im = im.convert("L")
            mode = im.mode
            arr = np.asarray(im)
    except InputError:
        raise
    except Exception as e:  # Pillow raises many types for corrupt data (OSError, SyntaxError, ValueError...)
        raise InputError(str(path), f"cannot decode image ({type(e).__name__}: {e})") from None
    if mode in ("L", "LA", "RGB", "RGBA"):
        out = arr.astype(np.float32) / 255.0
    elif mode.startswith("I;16") or mode == "I":
        out = arr.astype(np.float32) / 65535.0  # 16-bit grey PNGs open as I;16 (or I in older Pillow)
    elif mode == "F":
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise InputError(str(path), "image contains NaN or inf")
        out = np.clip(out, 0.0, 1.0)
    else:
        raise InputError(str(path), f"unsupported image mode {mode!r}")
    if out.ndim == 2:
        out = out[..., None]
    if out.ndim != 3 or out.shape[2] not in (1, 2, 3, 4):
        raise InputError(str(path), f"unsupported pixel layout {arr.shape}")
    return out


def read_image(path: PathLike, background: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Read an image file as float32 ``(3, H, W)`` in [0, 1] (see the module docstring for the rules)."""
    arr = read_image_array(path)
    c = arr.shape[2]
    has_alpha = c in (2, 4)
    colour = arr[..., : c - 1] if has_alpha else arr
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    if has_alpha and background is not None:
        bg = np.asarray(background, dtype=np.float32).reshape(1, 1, -1)
        if bg.shape[2] != 3:
            raise InputError("background", f"expected an RGB triple, got {background!r}")
        a = arr[..., c - 1 : c]
        colour = colour * a + bg * (1.0 - a)
    return torch.from_numpy(np.ascontiguousarray(colour.transpose(2, 0, 1)))


def read_mask(path: PathLike, threshold: float = 0.5) -> torch.Tensor:
    """Read a mask file as bool ``(H, W)``: alpha (when present) or mean colour, ``>= threshold``."""
    arr = read_image_array(path)
    c = arr.shape[2]
    value = arr[..., c - 1] if c in (2, 4) else arr.mean(axis=2)
    return torch.from_numpy(value >= threshold)


def image_size(path: PathLike) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "image file not found")
    try:
        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except Exception as e:
        raise InputError(str(path), f"cannot decode image ({type(e).__name__}: {e})") from None


def read_images(paths: Sequence[PathLike], background: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Read several images of one size into ``(V, 3, H, W)``; a file of another size raises InputError
    naming it and the size of the first file."""
    if not paths:
        raise InputError("images", "no image files given")
    first = read_image(paths[0], background)
    out = torch.empty((len(paths),) + tuple(first.shape), dtype=torch.float32)
    out[0] = first
    for i, p in enumerate(paths[1:], start=1):
        im = read_image(p, background)
        if im.shape != first.shape:
            raise InputError(str(p), f"image is {im.shape[2]}x{im.shape[1]} but {Path(paths[0]).name} is "
                                     f"{first.shape[2]}x{first.shape[1]}; all views must have one size")
        out[i] = im
    return out


def read_masks(paths: Sequence[PathLike], size: tuple[int, int], threshold: float = 0.5) -> torch.Tensor:
    """Read masks into bool ``(V, H, W)``; each must be ``size`` = (width, height) (InputError otherwise)."""
    w, h = size
    out = torch.empty((len(paths), h, w), dtype=torch.bool)
    for i, p in enumerate(paths):
        m = read_mask(p, threshold)
        if tuple(m.shape) != (h, w):
            raise InputError(str(p), f"mask is {m.shape[1]}x{m.shape[0]} but the images are {w}x{h}")
        out[i] = m
    return out


# ---------------------------------------------------------------------------------------------- writing
def to_hwc_array(image: Union[torch.Tensor, np.ndarray]) -> np.ndarray:
    """Image data as ``(H, W, C)`` numpy: accepts (H, W), (C, H, W) with C <= 4, or (H, W, C)."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.ndim == 3 and arr.shape[0] in (1, 2, 3, 4):
        # channel-first unless the last axis also looks like channels and the input is numpy (HWC by habit)
        if isinstance(image, torch.Tensor) or arr.shape[2] not in (1, 2, 3, 4):
            arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise InputError("image", f"cannot write an image of shape {tuple(np.shape(image))}")
    return arr


def quantize(arr: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float data in [0, 1] (clipped) or bool to unsigned integers of ``bit_depth`` bits (round to nearest);
    integer data is passed through after a range check."""
    if bit_depth not in (8, 16):
        raise InputError("bit_depth", f"must be 8 or 16, got {bit_depth}")
    top = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    if arr.dtype == np.bool_:
        return arr.astype(dtype) * dtype(top)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > top):
            raise InputError("image", f"integer values outside [0, {top}] for a {bit_depth}-bit PNG")
        return arr.astype(dtype)
    if not np.isfinite(arr).all():
        raise InputError("image", "contains NaN or inf")
    return np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * top).astype(dtype)


def write_png(path: PathLike, image: Union[torch.Tensor, np.ndarray], bit_depth: int = 8) -> Path:
    """Write an image (float in [0, 1], bool, or unsigned integers) as an 8- or 16-bit PNG.

    Accepts ``(H, W)``, ``(C, H, W)`` or ``(H, W, C)`` with C = 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA).
    Parent folders are created. Returns the path.
    """
    path = Path(path)
    data = quantize(to_hwc_array(image), bit_depth)
    path.parent.mkdir(parents=True, exist_ok=True)
    if bit_depth == 8:
        from PIL import Image

        c = data.shape[2]
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
        Image.fromarray(data[..., 0] if c == 1 else data, mode=mode).save(path, format="PNG")
    else:
        import png

        h, w, c = data.shape
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c] + ";16"
        png.from_array(data.reshape(h, w * c), mode).save(str(path))
    return path


def write_image(path: PathLike, image: Union[torch.Tensor, np.ndarray], bit_depth: int = 8,
                quality: int = 95) -> Path:
    """Write an image file, the format chosen by the extension: ``.png`` (8- or 16-bit, see
    :func:`write_png`) or ``.jpg``/``.jpeg`` (8-bit, ``quality``; no alpha). Same inputs as :func:`write_png`."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".png":
        return write_png(path, image, bit_depth)
    if ext not in (".jpg", ".jpeg"):
        raise InputError(str(path), f"cannot write {ext or 'extension-less'} images; use .png, .jpg or .jpeg")
    if bit_depth != 8:
        raise InputError("bit_depth", f"JPEG files are 8-bit, got bit_depth={bit_depth}")
    from PIL import Image

    data = quantize(to_hwc_array(image), 8)
    if data.shape[2] in (2, 4):
        raise InputError(str(path), "JPEG cannot store an alpha channel; write a PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data[..., 0] if data.shape[2] == 1 else data).save(path, format="JPEG", quality=quality)
    return path
