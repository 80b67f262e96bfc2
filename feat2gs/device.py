"""Device resolution (a low-level module: it imports nothing else of feat2gs but its errors)."""

from __future__ import annotations

import torch

from .errors import InputError


def resolve_device(name: str, where: str = "device") -> str:
    """``auto`` -> ``cuda`` when a CUDA device is present, else ``cpu``; ``cpu``, ``cuda``, ``cuda:N`` and
    ``mps`` are checked against this machine (``InputError`` naming ``where`` otherwise)."""
    name = str(name).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(where, f"{name} requested but no CUDA device is available")
        index = name[5:]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise InputError(where, f"{name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return name
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(where, "mps requested but the Metal backend is not available")
        return name
    raise InputError(where, f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps")
