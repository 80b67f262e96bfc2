"""Reading pickled numpy parameter trees without executing pickled code.

``load_array_tree`` unpickles with an allow-list: the only globals a pickle may name are numpy's array
reconstructor, ``ndarray`` and ``dtype``; anything else (``os.system``, ``builtins.eval``, any class) stops the
load with an ``UnpicklingError``, as does a persistent id. The result must be nested dicts with string keys
and numeric numpy arrays as leaves -- lists, tuples, object arrays and other values are rejected too.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Union

import numpy as np

from feat2gs.errors import InputError

try:  # numpy >= 2 keeps the reconstructor in numpy._core; pickles written by numpy 1 name numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class AllowListUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` resolving only the globals of ``_ALLOWED``."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed (only numpy arrays, dtypes "
                                         "and dicts may be unpickled)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def _check_tree(node: Any, path: str) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if not isinstance(k, str):
                raise pickle.UnpicklingError(f"{path or '<root>'}: key {k!r} is not a string")
            _check_tree(v, f"{path}/{k}" if path else k)
    elif isinstance(node, np.ndarray):
        if node.dtype.hasobject or node.dtype.kind not in "biuf":
            raise pickle.UnpicklingError(f"{path}: array of dtype {node.dtype} is not allowed")
    else:
        raise pickle.UnpicklingError(f"{path or '<root>'}: a {type(node).__name__} is not allowed "
                                     "(only dicts of numpy arrays)")


def load_array_tree(source: Union[str, Path, bytes]) -> dict:
    """A nested ``dict`` of numpy arrays from a pickle file (or its bytes), read with the allow-list.
    Raises ``InputError`` naming the file when it holds anything else."""
    where = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        tree = AllowListUnpickler(io.BytesIO(data)).load()
        if not isinstance(tree, dict):
            raise pickle.UnpicklingError(f"the top level is a {type(tree).__name__}, not a dict")
        _check_tree(tree, "")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, OSError) as e:
        raise InputError(where, f"not a pickled tree of numpy arrays ({type(e).__name__}: {e})") from None
    return tree
