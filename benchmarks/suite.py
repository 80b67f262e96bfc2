"""Suites: YAML files that name scenes x backbones x modes x seeds, and the job plan they expand to.

A suite (``benchmarks/suites/<name>.yaml``, or any path)::

    name: smoke                       # default: the file's stem
    description: ...
    data_root: ${oc.env:FEAT2GS_DATA,../shared/data}  # relative scene paths live under it (relative: to the cwd)
    preset: demo                      # default preset of every scene (feat2gs/config/<name>.yaml or a path)
    overrides: [train.steps=100]      # key=value overrides of every run
    seeds: [0, 1]
    modes: GTA                        # or [G, T, A]
    backbones:                        # names, or {name: ..., overrides: [...]} (e.g. tiny test models)
      - iuvrgb
      - {name: random-vit, overrides: [backbone.arch_overrides.depth=2]}
    scenes:                           # "synthetic", paths, or {path:, dataset:, preset:, overrides:}
      - synthetic
      - {path: llff/fern, preset: shared}

Overrides are applied in the order suite, scene, backbone, then the run's own scene/backbone/mode/seed. A
scene's ``dataset`` defaults to its parent folder's name (``synthetic`` for the synthetic scene).

:func:`load_suite` checks everything before anything runs -- every scene folder exists and has a known
format, every backbone and mode is registered, every preset exists, every run's config loads -- and raises
one InputError naming the suite file and the entry at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from feat2gs.config import CONFIG_DIR, MODES, load_config
from feat2gs.errors import Feat2GSError, InputError

from .records import RunIdentity, identity_from_config

SUITES_DIR = Path(__file__).resolve().parent / "suites"
SUITE_KEYS = {"name", "description", "data_root", "preset", "overrides", "seeds", "modes", "backbones", "scenes"}
SCENE_KEYS = {"path", "dataset", "preset", "overrides", "name"}
BACKBONE_KEYS = {"name", "overrides"}


@dataclass(frozen=True)
class SceneEntry:
    path: str  # scene.path value ("synthetic" or an absolute folder)
    dataset: str
    preset: Optional[str]
    overrides: tuple[str, ...] = ()
    source: str = ""  # the path as the suite wrote it (for messages)


@dataclass(frozen=True)
class BackboneEntry:
    name: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobSpec:
    """One run of a suite: its identity and how to build its config (``load_config(overrides, preset)``)."""

    identity: RunIdentity
    overrides: tuple[str, ...]
    preset: Optional[str]

    @property
    def run_id(self) -> str:
        return self.identity.run_id


@dataclass
class Suite:
    name: str
    path: Path
    description: str
    scenes: list[SceneEntry]
    backbones: list[BackboneEntry]
    modes: list[str]
    seeds: list[int]
    overrides: tuple[str, ...] = ()
    jobs: list[JobSpec] = field(default_factory=list)


def resolve_suite_path(name_or_path: Union[str, Path]) -> Path:
    """A suite name (``smoke`` -> benchmarks/suites/smoke.yaml) or a YAML path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise InputError(str(p), "suite file not found")
        return p
    cand = SUITES_DIR / f"{name_or_path}.yaml"
    if not cand.is_file():
        known = sorted(q.stem for q in SUITES_DIR.glob("*.yaml"))
        raise InputError(str(name_or_path), f"no such suite; built-in suites: {', '.join(known)} (or give a YAML path)")
    return cand


def _list_of_str(v: Any, where: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, (str, int, float)) for x in v):
        raise InputError(where, "expected a list of key=value strings")
    return tuple(str(x) for x in v)


def _preset_ok(preset: Optional[str], base: Path, where: str) -> Optional[str]:
    if preset is None:
        return None
    preset = str(preset)
    if preset.endswith((".yaml", ".yml")):
        p = Path(preset)
        p = p if p.is_absolute() else (base / p)
        if not p.is_file():
            raise InputError(where, f"unknown preset {preset!r}: {p} not found")
        return str(p.resolve())
    if not (CONFIG_DIR / f"{preset}.yaml").is_file():
        known = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml") if q.stem != "default")
        raise InputError(where, f"unknown preset {preset!r}; presets: {', '.join(known)}")
    return preset


def _check_scene(path: str, where: str) -> None:
    from feat2gs.data import SYNTHETIC, detect_format

    if path == SYNTHETIC:
        return
    try:
        detect_format(path)
    except InputError as e:
        raise InputError(where, f"unknown scene: {e}") from None


def _check_backbone(name: str, where: str) -> None:
    from backbones import backbone_names

    known = set(backbone_names(include_random=True))
    for part in name.split("+"):
        if part not in known:
            raise InputError(where, f"unknown backbone {part!r} (see `feat2gs backbones --random`)")


def load_suite(name_or_path: Union[str, Path], check: bool = True) -> Suite:
    """Parse, validate and expand a suite into its jobs. ``check=False`` only parses it: no scene, backbone
    or config checks and no jobs (expanding needs the scenes: configs are checked against them)."""
    path = resolve_suite_path(name_or_path)
    where0 = str(path)
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (OmegaConfBaseException, OSError, ValueError) as e:
        raise InputError(where0, f"unreadable suite ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise InputError(where0, "a suite is a YAML mapping")
    unknown = sorted(set(raw) - SUITE_KEYS)
    if unknown:
        raise InputError(f"{where0}: {unknown[0]}", f"unknown suite key; known: {', '.join(sorted(SUITE_KEYS))}")
    for key in ("scenes", "backbones"):
        if not raw.get(key) or not isinstance(raw[key], list):
            raise InputError(f"{where0}: {key}", "expected a non-empty list")
    data_root = Path(str(raw.get("data_root") or "."))
    preset = _preset_ok(raw.get("preset"), path.parent, f"{where0}: preset")
    overrides = _list_of_str(raw.get("overrides"), f"{where0}: overrides")

    modes_raw = raw.get("modes", "GTA")
    modes = list(modes_raw) if isinstance(modes_raw, str) else [str(m) for m in modes_raw]
    for m in modes:
        if m.upper() not in MODES:
            raise InputError(f"{where0}: modes", f"unknown mode {m!r}; expected some of {', '.join(MODES)}")
    modes = [m.upper() for m in modes]
    seeds_raw = raw.get("seeds", [0])
    seeds_raw = [seeds_raw] if isinstance(seeds_raw, int) else seeds_raw
    if not isinstance(seeds_raw, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds_raw):
        raise InputError(f"{where0}: seeds", f"expected a list of integers, got {seeds_raw!r}")

    scenes = []
    for i, s in enumerate(raw["scenes"]):
        where = f"{where0}: scenes[{i}]"
        s = {"path": s} if isinstance(s, str) else s
        if not isinstance(s, dict) or "path" not in s:
            raise InputError(where, "expected a scene path or a mapping with `path`")
        bad = sorted(set(s) - SCENE_KEYS)
        if bad:
            raise InputError(f"{where}.{bad[0]}", f"unknown scene key; known: {', '.join(sorted(SCENE_KEYS))}")
        sp = str(s["path"])
        if sp != "synthetic":
            p = Path(sp).expanduser()
            sp = str((p if p.is_absolute() else data_root / p).resolve())
        where = f"{where0}: scenes[{i}] ({s['path']})"
        ds = s.get("dataset") or ("synthetic" if sp == "synthetic" else Path(sp).parent.name)
        sp_preset = _preset_ok(s["preset"], path.parent, where) if "preset" in s else preset
        scenes.append(SceneEntry(sp, str(ds), sp_preset, _list_of_str(s.get("overrides"), where), str(s["path"])))
    backbones = []
    for i, b in enumerate(raw["backbones"]):
        b = {"name": b} if isinstance(b, str) else b
        where = f"{where0}: backbones[{i}]"
        if not isinstance(b, dict) or "name" not in b:
            raise InputError(where, "expected a backbone name or a mapping with `name`")
        bad = sorted(set(b) - BACKBONE_KEYS)
        if bad:
            raise InputError(f"{where}.{bad[0]}", f"unknown backbone key; known: {', '.join(sorted(BACKBONE_KEYS))}")
        backbones.append(BackboneEntry(str(b["name"]), _list_of_str(b.get("overrides"), where)))

    suite = Suite(str(raw.get("name") or path.stem), path, str(raw.get("description") or ""), scenes, backbones,
                  modes, list(seeds_raw), overrides)
    if check:
        check_entries(suite)
        suite.jobs = expand(suite)
    return suite


def check_entries(suite: Suite) -> None:
    """Every scene of ``suite`` is a readable scene and every backbone a known one (one error naming the entry)."""
    for i, scene in enumerate(suite.scenes):
        _check_scene(scene.path, f"{suite.path}: scenes[{i}] ({scene.source or scene.path})")
    for i, b in enumerate(suite.backbones):
        _check_backbone(b.name, f"{suite.path}: backbones[{i}] ({b.name})")


def expand(suite: Suite) -> list[JobSpec]:
    """Every (scene, backbone, mode, seed) as a :class:`JobSpec`. Each run's config is loaded here, so a bad
    override stops the suite before anything runs (the config of the first seed of every (scene, backbone,
    mode) is loaded in full; the other seeds differ from it only in ``seed``). Duplicates (same run_id) are
    dropped."""
    jobs, seen = [], set()
    for si, scene in enumerate(suite.scenes):
        for bi, bb in enumerate(suite.backbones):
            for mode in suite.modes:
                base = (*suite.overrides, *scene.overrides, *bb.overrides, f"scene.path={scene.path}",
                        f"backbone.name={bb.name}", f"probe.mode={mode}")
                try:
                    tree = OmegaConf.to_container(load_config((*base, f"seed={suite.seeds[0]}"), preset=scene.preset),
                                                  resolve=True)
                except Feat2GSError as e:
                    raise InputError(f"{suite.path}: scenes[{si}] x backbones[{bi}] ({bb.name}) mode {mode}",
                                     str(e)) from None
                for seed in suite.seeds:
                    tree["seed"] = seed
                    ident = identity_from_config(tree, preset=scene.preset, dataset=scene.dataset)
                    if ident.run_id not in seen:
                        seen.add(ident.run_id)
                        jobs.append(JobSpec(ident, (*base, f"seed={seed}"), scene.preset))
    return jobs
