"""The Feat2GS benchmark layout: ``<root>/dataset_split.json`` + ``<root>/<Dataset>/<scene>/images/`` (+
``<scene>/<N>_views/images/``, the train views; DTU scenes add MVSNet's ``cams/``, ``depths/``, ``binary_masks/``).

``dataset_split.json`` = ``{dataset: {scene: {"train": [stems], "test": [stems], ...}}}``. A scene folder is in
this layout when the json one or two levels up lists it (``[<parent folder name>][<scene folder name>]``, or
any dataset holding that scene name when the parent does not match).

The Feat2GS release estimates cameras with DUSt3R and ships images only, so the cameras come from another format
in the scene folder -- MVSNet's ``cams/`` for DTU, or a COLMAP model / ``transforms.json`` put there (``inner=``
picks one; otherwise the best detected). The json's split is mapped to view indices by image stem and stored as
``meta['splits']['feat2gs'] = {"train": [...], "test": [...]}`` (``split.name=feat2gs`` selects it); a stem with no
view is an InputError naming the json field. When ``<N>_views/images`` exists and does not hold exactly the
train stems, a warning says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

from ..errors import InputError
from ..io.images import list_images
from .catalogue import SceneCatalogue
from .formats import SCENE_FORMATS, SceneFormat, get_format, register_format

SPLIT_FILE = "dataset_split.json"


def find_split_entry(root: Path, split_file: Optional[Union[str, Path]] = None) -> Optional[tuple[Path, str, dict]]:
    """(json path, dataset name, the scene's entry) for a scene folder, or None."""
    root = root.resolve()
    candidates = [Path(split_file)] if split_file else [root.parent / SPLIT_FILE, root.parent.parent / SPLIT_FILE]
    for jf in candidates:
        if not jf.is_file():
            continue
        try:
            data = json.loads(jf.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(str(jf), f"cannot read JSON ({type(e).__name__}: {e})") from None
        if not isinstance(data, dict):
            raise InputError(str(jf), "expected {dataset: {scene: {train: [...], test: [...]}}}")
        order = [root.parent.name] + [d for d in data if d != root.parent.name]
        for ds in order:
            scenes = data.get(ds)
            if isinstance(scenes, dict) and root.name in scenes:
                return jf, ds, scenes[root.name]
    return None


@register_format
class Feat2GSFormat(SceneFormat):
    name = "feat2gs"
    markers = (f"../{SPLIT_FILE}", f"../../{SPLIT_FILE}")
    description = "Feat2GS benchmark: dataset_split.json above <Dataset>/<scene>/images (+ cams/ for DTU)"

    def detect(self, root: Path) -> int:
        try:
            return 3 if find_split_entry(root) is not None else 0
        except InputError:
            return 1  # a broken json: let the loader report it

    def load(self, root: Path, inner: Optional[str] = None, inner_options: Optional[dict] = None,
             split_file: Optional[str] = None, name: Optional[str] = None) -> SceneCatalogue:
        return catalogue_feat2gs(root, inner, inner_options, split_file, name)


def catalogue_feat2gs(root: Union[str, Path], inner: Optional[str] = None, inner_options: Optional[dict] = None,
                      split_file: Optional[str] = None, name: Optional[str] = None) -> SceneCatalogue:
    root = Path(root)
    found = find_split_entry(root, split_file)
    if found is None:
        raise InputError(str(root.parent / SPLIT_FILE), f"not found, or it does not list the scene {root.name!r}")
    jf, dataset, entry = found
    field = f"{jf}:[{dataset}][{root.name}]"
    if inner is None:
        scores = {e.name: e.factory().detect(root) for e in SCENE_FORMATS if e.name not in ("feat2gs", "synthetic")}
        best = max(scores.values(), default=0)
        if best == 0:
            raise InputError(str(root), "Feat2GS scenes ship images only (the paper estimates cameras with DUSt3R); "
                                        "put the cameras in the scene folder (MVSNet cams/, a COLMAP sparse/0 or a "
                                        "transforms.json) to probe it with known poses")
        inner = sorted(n for n, s in scores.items() if s == best)[0]
    fmt = get_format(inner)
    cat = fmt.load(root, **(inner_options or {}))
    stems = {Path(n).stem: i for i, n in enumerate(cat.image_names)}
    split = {}
    for key in ("train", "test"):
        items = entry.get(key, []) if isinstance(entry, dict) else None
        if not isinstance(items, list):
            raise InputError(f"{field}.{key}", "expected a list of image stems")
        idx = []
        for s in items:
            st = Path(str(s)).stem
            if st not in stems:
                raise InputError(f"{field}.{key}", f"image {s!r} is not a view of the scene (views: "
                                                   f"{', '.join(list(stems)[:5])}{' ...' if len(stems) > 5 else ''})")
            idx.append(stems[st])
        split[key] = sorted(idx)
    if not split["train"]:
        raise InputError(f"{field}.train", "no train views")
    warnings = list(cat.warnings)
    nv = root / f"{len(split['train'])}_views" / "images"
    if nv.is_dir():
        have = sorted(p.stem for p in list_images(nv))
        want = sorted(Path(cat.image_names[i]).stem for i in split["train"])
        if have != want:
            warnings.append(f"{nv} does not hold exactly the train views of {jf.name}")
    meta = dict(cat.meta)
    meta.update({"format": "feat2gs", "inner_format": inner, "split_file": str(jf), "dataset": dataset,
                 "splits": {**meta.get("splits", {}), "feat2gs": split}})
    cat.format, cat.meta, cat.warnings = "feat2gs", meta, warnings
    cat.source = f"feat2gs:{root} ({cat.source})"
    if name:
        cat.name = name
    return cat
