"""Content-addressed cache of backbone features (float16 safetensors files).

Key. An entry is addressed by the SHA-256 of

* the backbone's ``cache_key()`` -- model id, revision, weights file (resolved path, size, mtime), random
  seed, layers, input size, variant, architecture overrides, preprocessing version -- as canonical JSON, and
* the digest of the images handed to the backbone: the float32 tensor of each view (shape and bytes), i.e.
  after resizing to the working resolution. Any change of pixels, resolution, layer or model is a new key.

Granularity. Views are cached **one file per view**: a backbone that sees each view alone gives a view the
same features whatever split it is in, so a sweep over train splits (or a later run with more views)
reuses every view already extracted, and only the missing views are extracted (in one batched call).
Multi-view backbones (``joint_views``, e.g. VGGT's aggregator, whose global attention mixes the views)
get **one file for the whole ordered set of views**, keyed by all of their digests. The PCA is fitted after
the cache (it depends on the train set), so the cache holds raw backbone features.

Files. ``<root>/<backbone name>/<key[:2]>/<key>.safetensors`` with one tensor ``features`` (V, C, h, w) --
float16, or float32 if a value does not fit in float16 -- and JSON metadata (format, the key's JSON, image
size, pixel extent, the FeatureMap's meta, and a SHA-256 of the tensor bytes). Writes go to a temporary file
in the same folder, then ``os.replace``: a reader never sees half a file. A file that cannot be read, whose
checksum or key does not match, is reported with a ``FeatureCacheWarning`` and recomputed.

Recipes (skipping the model build). Building a network (random init or loading a checkpoint) can cost more
than extracting a few views, so ``extract_cached`` first tries without building: a small JSON "recipe"
per set of backbone options (name, ``BackboneOptions`` without the device, the weights file's fingerprint)
remembers the ``cache_key()`` and view layout that those options produced. It is keyed also by a digest of
the ``backbones`` package's source files and the model libraries' versions, so any code or library change
falls back to building the backbone (whose own ``cache_key()`` then decides whether the entries still hold).

Features are rounded to the storage precision on every path (hit, miss, cache disabled), so a run gives the
same numbers whether or not its features came from the cache. Features do not depend on the device beyond
float rounding (float32 everywhere), so the device is not part of the key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from backbones.base import Backbone, FeatureMap
from backbones.registry import BackboneOptions

from .io.atomic import atomic_write, atomic_write_text
from .paths import cache_root

#: bump when the file layout or the key changes
CACHE_FORMAT = 1
FP16_MAX = float(torch.finfo(torch.float16).max)
#: packages whose versions are part of every key (a model library upgrade may change features)
MODEL_LIBRARIES = ("torch", "timm", "transformers", "open_clip_torch", "diffusers")
_META_KEY = "feat2gs_feature_cache"


class FeatureCacheWarning(UserWarning):
    """A cache entry was unreadable or inconsistent (it is recomputed), or the cache cannot be written."""


def default_cache_dir() -> Path:
    """``features/`` under feat2gs's cache root (``feat2gs.paths.cache_root``: ``$FEAT2GS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/feat2gs``, else ``~/.cache/feat2gs``)."""
    return cache_root() / "features"


def image_digest(image: torch.Tensor) -> str:
    """SHA-256 of one image (or a stack) as float32: its shape, then its bytes in C order."""
    x = image.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256(json.dumps(list(x.shape)).encode())
    h.update(x.numpy().tobytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, Optional[str]]:
    """Versions of torch and of the model libraries the backbones are built on (part of every key)."""
    from .run import package_versions

    return package_versions(MODEL_LIBRARIES)


@functools.lru_cache(maxsize=1)
def backbones_source_digest() -> str:
    """SHA-256 of the ``backbones`` package's Python sources (relative paths and bytes)."""
    import backbones

    root = Path(backbones.__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def options_key(name: str, opts: BackboneOptions) -> Optional[str]:
    """Canonical JSON identifying what ``build_backbone(name, opts)`` would build, without building it; None
    when it cannot be known cheaply (pretrained weights that are not on this machine)."""
    from backbones.registry import RANDOM_PREFIX, backbone_info
    from backbones.weights import file_fingerprint, resolve_weights

    info = backbone_info(name)
    weights = None
    if not name.startswith(RANDOM_PREFIX) and info.weights is not None:
        try:
            weights = file_fingerprint(resolve_weights(info.weights, opts.weights))
        except Exception:  # missing weights: building reports it properly
            return None
    fields = {k: getattr(opts, k) for k in ("layer", "weights", "input_size", "variant", "seed", "arch_overrides")}
    return canonical_json({"format": CACHE_FORMAT, "name": name, "options": fields, "weights_file": weights,
                           "source": backbones_source_digest(), "libraries": library_versions()})


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace; tuples become lists, unknown objects their ``str``."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def to_storage(features: torch.Tensor) -> torch.Tensor:
    """The stored tensor: float16 when every value is finite and fits, else float32 (CPU, contiguous)."""
    f = features.detach().to("cpu", torch.float32).contiguous()
    fits = f.numel() == 0 or (bool(torch.isfinite(f).all()) and f.abs().max().item() <= FP16_MAX)
    return f.half() if fits else f


def storage_rounded(fmap: FeatureMap) -> FeatureMap:
    """``fmap`` with its features rounded to the storage precision (what a cache hit would return)."""
    return FeatureMap(to_storage(fmap.features).float(), fmap.image_size, fmap.extent, _json_meta(fmap.meta))


def _json_meta(meta: dict) -> dict:
    """The meta as it reads back from a file (tuples become lists), so hit and miss give equal meta."""
    return json.loads(canonical_json(meta or {}))


@dataclass
class CacheStats:
    """What one extraction did: views served from the cache, views extracted, entries recomputed because
    they were corrupt, and the files involved."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt, "files": list(self.files)}


class CorruptEntry(Exception):
    """A cache file that cannot be used (the message says why)."""


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name) or "backbone"


class FeatureCache:
    """A folder of cached feature maps (see the module docstring)."""

    def __init__(self, root: Union[str, Path, None] = None):
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self._write_failed = False

    # ------------------------------------------------------------------------------------------ keys
    @staticmethod
    def entry_key(backbone_key: dict, digests: Sequence[str]) -> tuple[str, str]:
        """(hex SHA-256 address, the canonical JSON it hashes) of an entry."""
        text = canonical_json({"format": CACHE_FORMAT, "backbone": backbone_key, "libraries": library_versions(),
                               "images": list(digests)})
        return hashlib.sha256(text.encode()).hexdigest(), text

    def path_for(self, name: str, address: str) -> Path:
        return self.root / _safe_name(name) / address[:2] / f"{address}.safetensors"

    # ------------------------------------------------------------------------------------------ files
    def read(self, path: Path, key_text: str) -> FeatureMap:
        """The FeatureMap stored at ``path``; ``CorruptEntry`` if it is unreadable or not this key's."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {})[_META_KEY])
                feats = f.get_tensor("features")
        except Exception as e:  # truncated file, bad header, missing metadata or tensor
            raise CorruptEntry(f"unreadable ({type(e).__name__}: {e})") from None
        if meta.get("format") != CACHE_FORMAT:
            raise CorruptEntry(f"cache format {meta.get('format')!r}, expected {CACHE_FORMAT}")
        if meta.get("key") != key_text:
            raise CorruptEntry("the stored key differs from the requested one")
        if hashlib.sha256(feats.contiguous().numpy().tobytes()).hexdigest() != meta.get("sha256"):
            raise CorruptEntry("checksum mismatch")
        if feats.ndim != 4:
            raise CorruptEntry(f"features of shape {tuple(feats.shape)}")
        return FeatureMap(feats.float(), tuple(meta["image_size"]), tuple(meta["extent"]), meta["meta"])

    def write(self, path: Path, key_text: str, fmap: FeatureMap) -> None:
        """Store ``fmap`` atomically (temporary file + rename). A failure to write (read-only or full disk)
        is a warning, not an error: the run goes on without caching."""
        from safetensors.torch import save_file

        stored = to_storage(fmap.features)
        meta = {"format": CACHE_FORMAT, "key": key_text, "image_size": list(fmap.image_size),
                "extent": [float(v) for v in fmap.extent], "meta": _json_meta(fmap.meta),
                "dtype": str(stored.dtype).replace("torch.", ""),
                "sha256": hashlib.sha256(stored.numpy().tobytes()).hexdigest()}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: save_file({"features": stored}, str(tmp),
                                                     metadata={_META_KEY: canonical_json(meta)}))
        except OSError as e:
            if not self._write_failed:
                warnings.warn(f"feature cache: cannot write {path} ({e}); continuing without caching",
                              FeatureCacheWarning, stacklevel=3)
            self._write_failed = True

    def lookup(self, path: Path, key_text: str, stats: CacheStats) -> Optional[FeatureMap]:
        """The entry at ``path``, or None when absent or corrupt (corrupt: warned, counted, recomputed)."""
        if not path.is_file():
            return None
        try:
            return self.read(path, key_text)
        except CorruptEntry as e:
            warnings.warn(f"feature cache: {path}: {e}; recomputing", FeatureCacheWarning, stacklevel=3)
            stats.corrupt += 1
            return None

    # ------------------------------------------------------------------------------------------ recipes
    def _recipe_path(self, options_text: str) -> Path:
        return self.root / "recipes" / f"{hashlib.sha256(options_text.encode()).hexdigest()}.json"

    def remember(self, options_text: str, backbone: Backbone) -> None:
        """Record what ``options_text`` built: the backbone's name, ``cache_key()`` and view layout."""
        recipe = {"options": options_text, "name": backbone.name, "cache_key": backbone.cache_key(),
                  "joint_views": bool(getattr(backbone, "joint_views", False))}
        path = self._recipe_path(options_text)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, canonical_json(recipe))
        except OSError:  # the entries themselves warn about an unwritable cache
            pass

    def recall(self, options_text: str) -> Optional[dict]:
        """The recipe of ``options_text``, or None (absent, unreadable or for other options)."""
        try:
            recipe = json.loads(self._recipe_path(options_text).read_text())
        except (OSError, ValueError):
            return None
        return recipe if isinstance(recipe, dict) and recipe.get("options") == options_text else None

    # ------------------------------------------------------------------------------------------ extract
    def layout(self, name: str, key: dict, joint: bool, images: torch.Tensor) -> list[tuple[Path, str]]:
        """(file, key JSON) of every entry holding ``images``: one per view, or one for the ordered set."""
        digests = [image_digest(im) for im in images]
        groups = [digests] if joint else [[d] for d in digests]
        out = []
        for group in groups:
            address, text = self.entry_key(key, group)
            out.append((self.path_for(name, address), text))
        return out

    def extract_cached(self, name: str, opts: BackboneOptions, images: torch.Tensor
                       ) -> Optional[tuple[FeatureMap, CacheStats, str]]:
        """(features, stats, backbone name) when every view of ``images`` is in the cache for what
        ``build_backbone(name, opts)`` would build, found without building it; else None."""
        text = options_key(name, opts)
        recipe = None if text is None else self.recall(text)
        if recipe is None:
            return None
        folder = str(recipe["cache_key"].get("name") or recipe["name"])
        entries = self.layout(folder, recipe["cache_key"], recipe["joint_views"], images)
        if not all(path.is_file() for path, _ in entries):
            return None
        try:
            maps = [self.read(path, key_text) for path, key_text in entries]
        except CorruptEntry:  # ``extract`` (after building) reports and recomputes it
            return None
        stats = CacheStats(hits=len(images), files=[str(p) for p, _ in entries])
        return stack_views(maps), stats, recipe["name"]

    def extract(self, backbone: Backbone, images: torch.Tensor, options_text: Optional[str] = None
                ) -> tuple[FeatureMap, CacheStats]:
        """``backbone.extract(images)`` through the cache (rounded to the storage precision); only the views
        not in the cache are extracted. ``options_text`` (``options_key`` of the options that built
        ``backbone``): also record the recipe, so that the next call can skip building."""
        key = backbone.cache_key()
        name = str(key.get("name") or backbone.name)
        joint = bool(getattr(backbone, "joint_views", False))
        entries = self.layout(name, key, joint, images)
        stats = CacheStats(files=[str(p) for p, _ in entries])
        found: list[Optional[FeatureMap]] = [self.lookup(p, text, stats) for p, text in entries]
        if joint:
            if found[0] is None:
                found[0] = storage_rounded(backbone.extract(images))
                self.write(entries[0][0], entries[0][1], found[0])
                stats.misses = len(images)
            else:
                stats.hits = len(images)
        else:
            missing = [i for i, v in enumerate(found) if v is None]
            if missing:
                fresh = backbone.extract(images[missing])
                for j, i in enumerate(missing):
                    one = storage_rounded(FeatureMap(fresh.features[j:j + 1], fresh.image_size, fresh.extent,
                                                     fresh.meta))
                    self.write(entries[i][0], entries[i][1], one)
                    found[i] = one
            stats.hits, stats.misses = len(images) - len(missing), len(missing)
        if options_text is not None:
            self.remember(options_text, backbone)
        return stack_views(found), stats


def stack_views(views: Sequence[FeatureMap]) -> FeatureMap:
    """One FeatureMap of several single-view maps of the same geometry (image size, grid, extent)."""
    first = views[0]
    for v in views[1:]:
        if (v.image_size, v.grid, v.channels) != (first.image_size, first.grid, first.channels) or \
                tuple(v.extent) != tuple(first.extent):
            raise ValueError(f"cannot stack feature maps of different geometry: {first.image_size} "
                             f"{first.grid} {first.extent} vs {v.image_size} {v.grid} {v.extent}")
    return FeatureMap(torch.cat([v.features for v in views], dim=0), first.image_size, first.extent, first.meta)


def extract_features(backbone: Backbone, images: torch.Tensor, cache: Optional[FeatureCache],
                     options_text: Optional[str] = None) -> tuple[FeatureMap, Optional[CacheStats]]:
    """Features of ``images`` through ``cache`` (None: no cache). Per-pixel backbones (IUVRGB: cheap, and
    a view's features depend on its index in the set) are never cached nor rounded."""
    if backbone.per_pixel:
        return backbone.extract(images), None
    if cache is None:
        return storage_rounded(backbone.extract(images)), None
    return cache.extract(backbone, images, options_text)
