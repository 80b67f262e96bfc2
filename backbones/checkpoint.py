"""Reading checkpoint files and loading them strictly -- shared by every backbone family.

* ``torch_load``: ``torch.load`` on CPU without executing pickled code (``weights_only``), memory-mapped
  when asked and the file allows it; an unreadable file is an InputError naming it.
* ``read_checkpoint``: a flat ``name -> tensor`` state dict from ``.safetensors`` or a torch checkpoint
  (``{"model": state_dict, ...}`` training checkpoints are unwrapped).
* ``compare_state`` / ``StateMismatch``: every missing key, unexpected key and shape mismatch between a
  module's state dict and a checkpoint's.
* ``load_strict``: load the part of a checkpoint a module holds, failing on anything that does not match.
* ``check_loading_info``: the same strictness for the ``output_loading_info`` report of transformers' and
  diffusers' ``from_pretrained``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import torch
import torch.nn as nn

from feat2gs.errors import InputError


def _head(xs: Sequence[str], n: int = 6) -> str:
    """The first ``n`` items of a list and its length, for error messages."""
    return f"{list(xs[:n])}{' ...' if len(xs) > n else ''} ({len(xs)})"


def torch_load(path: Union[str, Path], mmap: bool = False) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``; ``argparse.Namespace`` (stored by DUSt3R
    training checkpoints) is allowed. ``mmap``: memory-map the tensors when the file is a zip checkpoint
    (legacy files silently fall back to a normal load). Raises InputError naming the file when it cannot
    be read."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "checkpoint file does not exist")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:
                return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as e:
                if not mmap or "mmap" not in str(e):  # legacy (non-zip) files cannot be memory-mapped
                    raise
                return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip / EOF errors, disallowed pickled objects
        text = str(e)
        if "weights_only" in text:  # torch's advice to unpickle arbitrary code is not ours to give
            reason = "it holds pickled objects other than tensors (not loaded: unpickling could run code)"
        else:
            reason = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
        raise InputError(str(path), f"not a readable PyTorch checkpoint ({reason})") from None


def read_checkpoint(path: Union[str, Path]) -> dict[str, torch.Tensor]:
    """A flat ``name -> tensor`` dict from a ``.safetensors`` file or a torch checkpoint (``.pth``/``.pt``/
    ``.bin``; a ``{"model": state_dict, "args": ...}`` training checkpoint is unwrapped). Loaded on CPU,
    without executing pickled code."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # truncated / not a safetensors file
            raise InputError(str(path), f"not a readable safetensors file ({type(e).__name__}: {e})") from None
    ckpt = torch_load(path)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
        ckpt = ckpt["model"]
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise InputError(str(path), "expected a state dict (name -> tensor) or {'model': state_dict}")
    return ckpt


@dataclass
class StateMismatch:
    """Differences between the state dict a module expects and a checkpoint's (all empty: they match)."""

    missing: list[str] = field(default_factory=list)  # in the module, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the module
    shapes: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (key, checkpoint, module)
    not_tensors: list[str] = field(default_factory=list)  # checkpoint values that are not tensors

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes or self.not_tensors)

    def summary(self) -> str:
        """One line: the first few keys of each kind of problem and their counts."""
        parts = []
        if self.missing:
            parts.append(f"missing keys {_head(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected keys {_head(self.unexpected)}")
        if self.shapes:
            parts.append(f"shape mismatches {_head([f'{k}: checkpoint {c} vs model {m}' for k, c, m in self.shapes])}")
        if self.not_tensors:
            parts.append(f"values that are not tensors {_head(self.not_tensors)}")
        return "; ".join(parts)


def compare_state(expected: Mapping[str, Any], state: Mapping[str, Any]) -> StateMismatch:
    """Every difference between ``expected`` (a module's ``state_dict()``) and ``state`` (a checkpoint's)."""
    out = StateMismatch(missing=[k for k in expected if k not in state],
                        unexpected=sorted(k for k in state if k not in expected))
    for k, want in expected.items():
        v = state.get(k)
        if v is None:
            continue
        if not isinstance(v, torch.Tensor):
            out.not_tensors.append(k)
        elif tuple(v.shape) != tuple(want.shape):
            out.shapes.append((k, tuple(v.shape), tuple(want.shape)))
    return out


def select_keys(state: Mapping[str, torch.Tensor], keep: Sequence[str], ignore: Sequence[str]
                ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Split a checkpoint: (the keys starting with one of ``keep``, the keys matching neither ``keep`` nor
    ``ignore``). Keys starting with one of ``ignore`` are dropped first."""
    keep, ignore = tuple(keep), tuple(ignore)
    sub, other = {}, []
    for k, v in state.items():
        if ignore and k.startswith(ignore):
            continue
        if k.startswith(keep):
            sub[k] = v
        else:
            other.append(k)
    return sub, other


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], keep: Sequence[str],
                ignore: Sequence[str], source: str) -> None:
    """Load the keys of ``state`` that start with one of ``keep`` into ``module``, strictly.

    Keys starting with one of ``ignore`` (parts of the official model we do not use) are dropped first; any
    other key, any missing key and any shape mismatch is an InputError naming ``source``.
    """
    sub, unknown = select_keys(state, keep, ignore)
    mismatch = compare_state(module.state_dict(), sub)
    mismatch.unexpected = sorted(set(mismatch.unexpected) | set(unknown))
    if mismatch:
        raise InputError(source, "checkpoint does not match the architecture: " + mismatch.summary())
    module.load_state_dict(sub, strict=True)


def check_loading_info(info: Mapping[str, Any], source: str, unused: Sequence[str] = (),
                       harmless_suffixes: Sequence[str] = (), model_name: str = "the architecture") -> None:
    """Raise an InputError naming ``source`` when a ``from_pretrained(..., output_loading_info=True)`` report
    lists missing, unexpected or mismatched keys or load errors.

    ``unused``: key prefixes of modules our forward never runs (may be missing or unexpected);
    ``harmless_suffixes``: unexpected keys ending so are ignored (e.g. ``position_ids`` buffers that older
    checkpoints store and newer classes recompute).
    """
    skip, harmless = tuple(unused), tuple(harmless_suffixes)

    def bad(keys: Iterable) -> list[str]:
        return sorted(str(k) for k in keys if not (skip and str(k).startswith(skip)))

    missing = bad(info.get("missing_keys", ()))
    unexpected = [k for k in bad(info.get("unexpected_keys", ())) if not (harmless and k.endswith(harmless))]
    mismatched = [str(m) for m in info.get("mismatched_keys", ())]
    errors = [str(e) for e in info.get("error_msgs", ())]
    if missing or unexpected or mismatched or errors:
        raise InputError(source, f"checkpoint does not match {model_name}: missing keys {_head(missing)}, "
                                 f"unexpected keys {_head(unexpected)}, mismatched {_head(mismatched)}"
                                 + (f", errors {errors[:2]}" if errors else ""))
