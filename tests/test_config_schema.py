"""The typed config schema: it covers default.yaml exactly, every preset and default loads, and random
ill-typed or out-of-range values for every key are refused at load with an error naming that key (through
the CLI: exit 2, one short line on stderr, no run folder)."""

import random
import typing

import pytest
import yaml

from feat2gs.cli import main
from feat2gs.config import CONFIG_DIR, load_config, typed
from feat2gs.config.schema import Config, iter_keys
from feat2gs.errors import ConfigError, InputError


def yaml_keys(tree, prefix=""):
    for k, v in tree.items():
        dotted = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v and dotted not in ("scene.options", "init.options"):
            yield from yaml_keys(v, dotted)
        else:
            yield dotted


def test_schema_matches_default_yaml():
    defaults = yaml.safe_load((CONFIG_DIR / "default.yaml").read_text())
    assert sorted(yaml_keys(defaults)) == sorted(k for k, _, _ in iter_keys())


@pytest.mark.parametrize("preset", [None] + sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "default"))
def test_presets_load_and_are_typed(preset):
    cfg = typed(load_config([], preset=preset))
    assert isinstance(cfg, Config) and cfg.probe.mode in ("G", "T", "A")
    assert isinstance(cfg.train.lr.xyz, float) and isinstance(cfg.split.n_train, int)


# ------------------------------------------------------------------------------------------ bad values
def _base(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return tp if typing.get_origin(tp) is not typing.Union else args


def bad_values(tp, meta, rng: random.Random) -> list[str]:
    """Override values (dotlist text) that ``tp`` with checks ``meta`` must refuse."""
    kinds = _base(tp) if isinstance(_base(tp), list) else [tp]
    origins = {typing.get_origin(k) or k for k in kinds}
    out = []
    if not origins & {str}:
        out += ["abc", "'x y'"]
    if not origins & {list}:
        out += ["[1,2]"]
    if not origins & {dict}:
        out += ["{a: 1}"]
    else:
        out += ["3", "[1]"]
    if origins <= {int}:
        out += [str(rng.uniform(0.1, 0.9) + rng.randint(0, 5)), "true"]
    if origins <= {float}:
        out += ["true", "nan", "inf"]
    if origins <= {bool}:
        out += ["3", "0.5", "yes please"]
    if type(None) not in typing.get_args(tp) and not origins & {dict, list}:
        out += ["null"]
    num = origins & {int, float} or any(typing.get_args(k) and typing.get_args(k)[0] in (int, float) for k in kinds)
    if num:
        if "ge" in meta:
            out.append(str(meta["ge"] - rng.choice([1, 2, 10, 1000])))
        if "gt" in meta:
            out.append(str(meta["gt"] - rng.choice([0, 1, 5])))
        if "le" in meta:
            out.append(str(meta["le"] + rng.choice([1, 3, 1000])))
        if "lt" in meta:
            out.append(str(meta["lt"] + rng.choice([0, 1])))
    if "choices" in meta:
        out.append(rng.choice(["zzz", "Q", "default", "ALL"]))
    if "length" in meta:
        out.append("[" + ",".join(["0.01"] * (meta["length"] + 1)) + "]")
    if meta.get("nonempty") and origins & {list}:
        out.append("[]")
    return out


KEYS = [(k, tp, meta) for k, tp, meta in iter_keys()]


@pytest.mark.parametrize("key, tp, meta", KEYS, ids=[k for k, _, _ in KEYS])
def test_every_key_refuses_bad_values(key, tp, meta):
    rng = random.Random(key)
    values = bad_values(tp, meta, rng)
    assert values
    for v in values:
        with pytest.raises(InputError) as e:
            load_config([f"{key}={v}"])
        assert e.value.where.startswith(key) or key in str(e.value), (key, v, str(e.value))


def test_random_bad_values_through_the_cli(tmp_path, capsys, monkeypatch):
    """A random sample of (key, bad value) pairs through ``feat2gs probe``: exit 2, one line, no run folder."""
    monkeypatch.chdir(tmp_path)
    rng = random.Random(9)
    cases = [(k, v) for k, tp, meta in KEYS for v in bad_values(tp, meta, rng)]
    for key, value in rng.sample(cases, 25):
        code = main(["probe", f"{key}={value}"])
        err = capsys.readouterr().err
        assert code == 2, (key, value, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("feat2gs: error: ") and key in lines[0], (key, value, err)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("group, value, where", [
    ("scene.options", "{num_views: 1}", "scene.options.num_views"),
    ("scene.options", "{width: abc}", "scene.options.width"),
    ("scene.options", "{fov_deg: 400}", "scene.options.fov_deg"),
    ("scene.options", "{nope: 1}", "scene.options.nope"),
    ("init.options", "{noise_std: -1}", "init.options.noise_std"),
    ("init.options", "{use_masks: maybe}", "init.options.use_masks"),
    ("init.options", "{seed: [1]}", "init.options.seed"),
])
def test_option_groups_are_checked_per_format_and_initialiser(group, value, where):
    with pytest.raises(ConfigError) as e:
        load_config([f"{group}={value}"])
    assert e.value.where == where


def test_init_options_checked_against_the_chosen_initialiser():
    load_config(["init=mvs", "init.options.num_planes=8"])
    with pytest.raises(ConfigError, match="init.options.num_planes.*unknown option"):
        load_config(["init=dataset", "init.options.num_planes=8"])
    with pytest.raises(ConfigError, match="init.options.num_planes"):
        load_config(["init=mvs", "init.options.num_planes=abc"])


def test_scene_options_checked_against_the_detected_format(tmp_path):
    (tmp_path / "poses_bounds.npy").write_bytes(b"")
    with pytest.raises(ConfigError, match="scene.options.factor.*>= 1"):
        load_config([f"scene={tmp_path}", "scene.options.factor=0"])
    with pytest.raises(ConfigError, match="scene.options.num_views.*unknown option"):
        load_config([f"scene={tmp_path}", "scene.options.num_views=3"])
