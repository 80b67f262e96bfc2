"""The probe end to end for every backbone family (tiny random networks, tiny synthetic scene), and the feature
cache across runs: the second run extracts nothing and gives bit-identical results."""

from __future__ import annotations

import json

import pytest
import torch

import feat2gs.features as features_module
from backbones import backbone_info, backbone_names
from backbones.tiny import TINY_OVERRIDES, tiny_overrides
from feat2gs.config import load_config
from feat2gs.pipeline import prepare_scene, run_probe
from feat2gs.run import is_complete

from feature_testlib import TINY_SCENE, TINY_TRAIN, CountingExtract


def one_name_per_family() -> list[str]:
    """The first registered name of each family, as its random control where it has weights."""
    out = {}
    for name in backbone_names(include_random=False):
        info = backbone_info(name)
        out.setdefault(info.family, ("random-" + name) if info.weights is not None else name)
    return list(out.values())


FAMILIES = one_name_per_family()


def count_builds(monkeypatch) -> list:
    """Wrap the feature stage's ``build_backbone`` so each built backbone's ``extract`` calls are counted."""
    counters, build = [], features_module.build_backbone

    def counting_build(name, opts=None, **kw):
        bb = build(name, opts, **kw)
        counters.append(CountingExtract(bb))
        return bb

    monkeypatch.setattr(features_module, "build_backbone", counting_build)
    return counters


def test_every_family_has_a_tiny_architecture():
    families = {backbone_info(n).family for n in FAMILIES}
    assert families >= {"dinov2", "dino", "sam", "clip", "radio", "mae", "midas", "sd", "vggt", "dinov3", "moge",
                        "croco", "iuvrgb", "vit"}
    assert families - {"iuvrgb", "moge", "noise"} <= set(TINY_OVERRIDES)  # noise has no network


@pytest.fixture(scope="module")
def prep():
    return prepare_scene(load_config(TINY_SCENE))


def tiny_cfg(tmp_path, name: str, *extra: str):
    cfg = load_config([*TINY_SCENE, *TINY_TRAIN, f"backbone={name}", "backbone.input_size=64", "probe.pca_dim=16",
                       f"output.root={tmp_path / 'runs'}", f"cache.dir={tmp_path / 'cache'}", *extra])
    cfg.backbone.arch_overrides = tiny_overrides(name)
    return cfg


@pytest.mark.parametrize("name", FAMILIES)
def test_probe_runs_end_to_end(tmp_path, prep, name):
    run = run_probe(tiny_cfg(tmp_path, name), prep)
    assert is_complete(run.path)
    m = json.loads((run.path / "metrics.json").read_text())
    assert m["backbone"] == name and 0 < m["nvs"]["psnr"] < 60
    (comp,) = m["features"]["components"]
    assert comp["name"] == name and comp["extent"] == [0.0, 0.0, 64.0, 48.0]
    if name == "iuvrgb":  # per-pixel: not cached
        assert "cache" not in comp and comp["per_pixel"] and m["features"]["per_pixel"]
    else:
        assert comp["cache"] == {"hits": 0, "misses": 2, "corrupt": 0}
        assert m["features"]["pca_dim"] <= 16


def test_second_run_hits_the_cache(tmp_path, prep, monkeypatch):
    counters = count_builds(monkeypatch)
    first = run_probe(tiny_cfg(tmp_path, "random-dinov2"), prep)
    second = run_probe(tiny_cfg(tmp_path, "random-dinov2", "probe.mode=G"), prep)
    assert [c.calls for c in counters] == [[2]]  # the second run neither built the network nor extracted
    assert second.metrics["features"]["components"][0]["cache"] == {"hits": 2, "misses": 0, "corrupt": 0}
    for f in ("means", "log_scales", "quats", "opacity_logits", "sh_dc"):
        assert torch.equal(getattr(first.train.gaussians, f), getattr(second.train.gaussians, f)), f
    assert first.metrics["nvs"] == second.metrics["nvs"]
    # another layer is another entry: built and extracted again
    run_probe(tiny_cfg(tmp_path, "random-dinov2", "backbone.layer=0"), prep)
    assert [c.calls for c in counters] == [[2], [2]]
    # the cache switched off: extracted every time, same numbers as the cached run
    off = run_probe(tiny_cfg(tmp_path, "random-dinov2", "backbone.cache=false"), prep)
    assert counters[-1].calls == [2] and "cache" not in off.metrics["features"]["components"][0]
    assert off.metrics["nvs"] == first.metrics["nvs"]


def test_code_change_rebuilds_but_reuses_unchanged_features(tmp_path, prep, monkeypatch):
    """The recipe that skips building is tied to the backbones' source: after a change the network is built
    again, and its cache_key() (unchanged here) still finds the stored features."""
    import feat2gs.feature_cache as fc

    counters = count_builds(monkeypatch)
    cfg = tiny_cfg(tmp_path, "random-mae")
    features_module.prepare_features(cfg, prep)
    monkeypatch.setattr(fc, "backbones_source_digest", lambda: "edited")
    pf = features_module.prepare_features(cfg, prep)
    assert [c.calls for c in counters] == [[2], []]  # built twice, extracted once
    assert pf.info["components"][0]["cache"]["hits"] == 2
