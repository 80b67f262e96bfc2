"""The free-form option groups, checked at load against the code they are passed to.

* ``scene.options`` go to the scene format's loader (``feat2gs.data.load_scene``): the format is detected
  from ``scene.path`` (or given as ``scene.options.format``) and every option is checked against the
  loader's signature (its type annotations) plus the ranges of ``SCENE_OPTION_RANGES``; the synthetic
  scene's own options are checked by ``SyntheticOptions.validate``.
* ``init.options`` go to the initialiser's constructor: checked against its signature and then by building
  it (constructors check their ranges without doing any work).

A new loader or initialiser option is checked as soon as it is a typed parameter; errors name
``scene.options.<key>`` / ``init.options.<key>``.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, Callable, Mapping

from ..errors import ConfigError, InputError, UnknownNameError
from .schema import check_value

#: numeric ranges of loader options that the loaders' signatures cannot express (format -> option -> checks)
SCENE_OPTION_RANGES: dict[str, dict[str, dict[str, Any]]] = {
    "synthetic": {"seed": {"ge": 0}, "num_views": {"ge": 2, "le": 1000}, "width": {"ge": 8, "le": 8192},
                  "height": {"ge": 8, "le": 8192}},
    "llff": {"factor": {"ge": 1}},
    "idr": {"max_skew": {"ge": 0.0}, "mask_threshold": {"gt": 0.0, "lt": 1.0}},
}
#: parameters that are not options (set by the code, not by the config)
NOT_OPTIONS = ("self", "path", "root", "predictor")


def _parameters(factory: Callable) -> tuple[dict[str, Any], bool]:
    """name -> annotated type of ``factory``'s keyword parameters, and whether it takes ``**kwargs``."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: check names only
        hints = {}
    params = inspect.signature(target).parameters
    def typ(n: str, p: inspect.Parameter) -> Any:
        if n in hints:
            return hints[n]
        # unannotated (or unresolvable) parameter: the type of a plain default, e.g. ``num_views=8`` -> int
        return type(p.default) if type(p.default) in (int, float, bool, str) else Any

    names = {n: typ(n, p) for n, p in params.items()
             if n not in NOT_OPTIONS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind == p.VAR_KEYWORD for p in params.values())


def check_call_options(factory: Callable, options: Mapping[str, Any], prefix: str,
                       extra: Mapping[str, Any] = (), ranges: Mapping[str, dict] = ()) -> dict[str, Any]:
    """``options`` checked against ``factory``'s typed parameters (plus ``extra``: name -> type, for options
    it receives through ``**kwargs``); returns them normalised."""
    params, _ = _parameters(factory)
    params.update(dict(extra))
    ranges = dict(ranges)
    out = {}
    for name, value in options.items():
        where = f"{prefix}.{name}"
        if name not in params:
            raise ConfigError(where, f"unknown option; known: {', '.join(sorted(params)) or '(none)'}")
        out[name] = check_value(value, params[name], ranges.get(name, {}), where)
    return out


def _renamed(e: InputError, old: str, new: str) -> ConfigError:
    where = e.where.replace(old, new, 1) if e.where.startswith(old) else e.where
    return ConfigError(where, e.detail)


def check_scene_options(path: str, options: Mapping[str, Any], fmt: Any = None) -> dict[str, Any]:
    """``scene.options`` for the scene at ``path`` (format ``fmt`` = ``scene.format``, else the legacy
    ``scene.options.format``, else detected from the folder); raises ``ConfigError`` for a missing folder or an
    undetectable format. Options are checked against the format's ``load`` signature (typed parameters) and
    its ``option_names()`` (options it passes on to an inner loader)."""
    from ..data import SCENE_FORMATS, SYNTHETIC, detect_format
    from ..data.formats import get_format
    from ..data.synthetic import SyntheticOptions

    options = dict(options)
    legacy = options.get("format")
    if fmt is None and legacy is not None:
        fmt = legacy
    if fmt is not None:
        fmt = check_value(fmt, str, {"choices": tuple(SCENE_FORMATS.names())}, "scene.format")
    elif path == SYNTHETIC:
        fmt = SYNTHETIC
    else:
        try:
            fmt = detect_format(path)
        except InputError as e:
            raise ConfigError("scene.path", f"{e.where}: {e.detail}") from None
    form = get_format(fmt)
    extra: dict[str, Any] = {"format": str}
    typed, _ = _parameters(form.load)
    extra.update({n: Any for n in form.option_names() if n not in typed})
    if fmt == SYNTHETIC:
        extra.update(typing.get_type_hints(SyntheticOptions))
    out = check_call_options(form.load, options, "scene.options", extra, SCENE_OPTION_RANGES.get(fmt, {}))
    if fmt == SYNTHETIC:
        own = {k: v for k, v in out.items() if k in SyntheticOptions.__dataclass_fields__}
        try:
            SyntheticOptions(**own).validate()
        except InputError as e:
            raise _renamed(e, "synthetic.", "scene.options.") from None
    return out


def check_init_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``init.options`` for the initialiser ``name``: types from its signature, then its own range checks
    (by building it)."""
    from ..init import INITIALISERS, build_initialiser

    try:
        factory = INITIALISERS.entry(name).factory
    except UnknownNameError as e:
        raise ConfigError("init.name", str(e)) from None
    out = check_call_options(factory, options, "init.options")
    try:
        build_initialiser(name, **out)  # the constructor's range checks; its errors name init.options.<key>
    except ConfigError:
        raise
    except InputError as e:
        raise ConfigError(e.where, e.detail) from None
    return out
