"""PFM (portable float map) files, as MVSNet stores depth maps: read and write.

Layout: a text header of three whitespace-separated tokens -- ``Pf`` (one channel) or ``PF`` (three), then
``width height``, then a scale whose sign gives the byte order (negative: little-endian) -- followed by the
float32 samples row by row from the *bottom* row up. :func:`read_pfm` returns ``(H, W)`` or ``(H, W, 3)`` float32
top row first; malformed or truncated files raise InputError naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from ..errors import InputError


def read_pfm(path: Union[str, Path]) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "file not found")
    data = path.read_bytes()
    tokens, pos = [], 0
    while len(tokens) < 4:  # magic, width, height, scale: each ends with one whitespace byte
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace():
            pos += 1
        if start == pos:
            raise InputError(str(path), "truncated PFM header")
        tokens.append(data[start:pos])
        pos += 1 if len(tokens) == 4 else 0
    magic = tokens[0].decode("ascii", "replace")
    if magic not in ("Pf", "PF"):
        raise InputError(str(path), f"not a PFM file (magic {magic!r})")
    try:
        w, h, scale = int(tokens[1]), int(tokens[2]), float(tokens[3])
    except ValueError:
        raise InputError(str(path), "malformed PFM header") from None
    c = 3 if magic == "PF" else 1
    n = w * h * c
    dtype = "<f4" if scale < 0 else ">f4"
    if len(data) - pos < 4 * n or w <= 0 or h <= 0:
        raise InputError(str(path), f"truncated: {len(data) - pos} bytes of samples for a {w}x{h}x{c} map")
    arr = np.frombuffer(data, dtype=dtype, count=n, offset=pos).astype(np.float32)
    arr = arr.reshape(h, w, c)[::-1]
    return np.ascontiguousarray(arr[..., 0] if c == 1 else arr)


def write_pfm(path: Union[str, Path], arr: np.ndarray) -> Path:
    arr = np.asarray(arr, dtype="<f4")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise InputError(str(path), f"PFM holds (H, W) or (H, W, 3) maps, got {arr.shape}")
    h, w = arr.shape[:2]
    head = f"{'PF' if arr.ndim == 3 else 'Pf'}\n{w} {h}\n-1.0\n".encode("ascii")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + np.ascontiguousarray(arr[::-1]).tobytes())
    return path
