"""Scene formats: one :class:`SceneFormat` (detect, load) per module, one registry, format detection.

Adding a format is adding one module in ``feat2gs/data/`` that subclasses :class:`SceneFormat`, decorates it with
:func:`register_format`, and is imported by ``feat2gs/data/__init__.py``:

* ``name``: the value of ``scene.format``; ``markers``: the files that identify the format (glob patterns relative
  to the scene folder, shown in error messages);
* ``detect(root) -> int``: 0 = not this format; 1 = some of its files (a partial or broken copy: chosen only when
  nothing else matches, so the loader can say what is missing); 2 = its identifying files are present; 3 = a
  layout that wraps another format (the Feat2GS benchmark layout around a COLMAP or MVSNet scene);
* ``load(root, **options) -> SceneCatalogue``: cameras and file lists, no pixels decoded (see ``catalogue.py``);
  the keyword arguments of ``load`` are the format's ``scene.options``.

Detection takes the formats with the highest score; a tie is an ambiguity error naming ``scene.format``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional, Sequence, Union

from ..errors import InputError, UnknownNameError
from ..registry import Registry
from ..scene import Scene
from .catalogue import SceneCatalogue

PathLike = Union[str, Path]
SYNTHETIC = "synthetic"
ADDING_A_FORMAT = "see feat2gs/data/formats.py and README 'Formats' on adding one"


class SceneFormat:
    """A dataset layout (see the module docstring)."""

    name: str = ""
    markers: tuple[str, ...] = ()
    description: str = ""

    def detect(self, root: Path) -> int:
        return 2 if any(any(root.glob(m)) for m in self.markers) else 0

    def load(self, root: Path, **options) -> SceneCatalogue:  # pragma: no cover - interface
        raise NotImplementedError

    def option_names(self) -> list[str]:
        return [p for p in inspect.signature(self.load).parameters if p != "root"]


SCENE_FORMATS: Registry[SceneFormat] = Registry("scene format")


def register_format(cls: type[SceneFormat]) -> type[SceneFormat]:
    SCENE_FORMATS.add(cls.name, cls)
    return cls


def get_format(name: str) -> SceneFormat:
    try:
        return SCENE_FORMATS.entry(str(name)).factory()
    except UnknownNameError:
        raise InputError("scene.format", f"unknown format {name!r}; supported: {', '.join(SCENE_FORMATS.names())} "
                                         f"({ADDING_A_FORMAT})") from None


def detection_scores(path: PathLike) -> dict[str, int]:
    root = Path(path)
    return {e.name: e.factory().detect(root) for e in SCENE_FORMATS if e.name != SYNTHETIC}


def detect_format(path: PathLike) -> str:
    """The format name of a scene folder; InputError naming the folder and the files looked for when no format
    matches, or naming ``scene.format`` when several match equally well."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(str(root), "scene folder not found")
    scores = detection_scores(root)
    best = max(scores.values(), default=0)
    found = [n for n, s in scores.items() if s == best and s > 0]
    if len(found) == 1:
        return found[0]
    if not found:
        looked = "; ".join(f"{', '.join(e.factory().markers)} ({e.name})" for e in SCENE_FORMATS
                           if e.factory().markers)
        raise InputError(str(root), f"cannot tell the scene format: looked for {looked}")
    raise InputError(str(root), f"ambiguous scene format (files of {', '.join(found)}); choose one with "
                                f"scene.format={found[0]} (or {', '.join(found[1:])})")


def open_scene(path: PathLike, format: Optional[str] = None, **options) -> SceneCatalogue:
    """The catalogue of a scene folder (format auto-detected unless given) or, for ``path="synthetic"``, of the
    synthetic scene. ``options`` go to the format's ``load``; unknown ones raise InputError."""
    if not format:
        format = SYNTHETIC if str(path) == SYNTHETIC else detect_format(path)
    fmt = get_format(format)
    known = fmt.option_names()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(f"{format}.{unknown[0]}", f"unknown option for {format} scenes; known: {', '.join(known)}")
    root = Path(path)
    if format != SYNTHETIC and not root.is_dir():
        raise InputError(str(root), "scene folder not found")
    return fmt.load(root, **options)


def load_scene(path: PathLike, format: Optional[str] = None, views: Optional[Sequence[int]] = None,
               long_side: Optional[int] = None, multiple: int = 1, **options) -> Scene:
    """Load a scene: :func:`open_scene` then :meth:`SceneCatalogue.load` of ``views`` (default all) at
    ``long_side`` (default native; sides rounded to ``multiple``)."""
    return open_scene(path, format, **options).load(views, long_side, multiple)
