"""Where pretrained weights come from: an explicit path, or the Hugging Face cache (never a hub pull
at run time). ``feat2gs weights fetch NAME`` downloads them on a networked machine."""

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

    def fetch_hint(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return (f"Run `feat2gs weights fetch {self.name}` on a machine with internet access (it downloads "
                f"{', '.join(self.filenames)} from huggingface.co/{self.repo_id}{rev} into the Hugging Face "
                f"cache, HF_HOME), or pass backbone.weights=PATH to a local copy.")


def resolve_weights(spec: WeightsSpec, override: Optional[str] = None) -> Path:
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
                             f"expected {spec.filenames[0]} from {spec.repo_id})")
        return p
    from huggingface_hub import hf_hub_download

    paths = []
    for fn in spec.filenames:
        try:
            paths.append(Path(hf_hub_download(spec.repo_id, fn, revision=spec.revision, local_files_only=True)))
        except Exception:  # LocalEntryNotFoundError, offline errors, missing revision
            raise WeightsNotFoundError(f"{spec.name} ({spec.repo_id}/{fn})", spec.fetch_hint()) from None
    return paths[0]


def file_fingerprint(path: Optional[Path]) -> Optional[dict]:
    """What identifies a weights file's content cheaply: its resolved path (a Hugging Face snapshot path holds
    the commit hash), size and modification time (ns). None for None (random weights)."""
    if path is None:
        return None
    p = Path(path).resolve()
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def weights_present(spec: WeightsSpec) -> bool:
    try:
        resolve_weights(spec)
        return True
    except WeightsNotFoundError:
        return False


def fetch_weights(spec: WeightsSpec) -> Path:
    """Download the spec's files into the HF cache (needs network). Returns the first file's path."""
    from huggingface_hub import hf_hub_download

    paths = [Path(hf_hub_download(spec.repo_id, fn, revision=spec.revision)) for fn in spec.filenames]
    return paths[0]
