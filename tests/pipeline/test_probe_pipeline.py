"""End-to-end probe runs on a tiny synthetic scene: outputs, determinism, failure handling."""

import json

import pytest
import torch

from feat2gs.config import load_config
from feat2gs.errors import InputError
from feat2gs.io.ply import read_gaussians_ply
from feat2gs.pipeline import prepare_scene, run_probe
from feat2gs.run import is_complete

TINY = ["scene.options.num_views=5", "scene.options.width=64", "scene.options.height=48", "scene.long_side=64",
        "split.n_train=2", "split.n_test=2", "init.block=2", "train.warmup_steps=20", "train.steps=15",
        "eval.pose_steps=3", "probe.sh_degree=1", "train.log_every=5"]


def _cfg(tmp_path, *extra):
    return load_config([*TINY, f"output.root={tmp_path}", *extra])


@pytest.fixture(scope="module")
def prep():
    return prepare_scene(load_config(TINY))


@pytest.mark.parametrize("mode", ["G", "T", "A"])
def test_run_writes_a_complete_run_folder(tmp_path, prep, mode):
    run = run_probe(_cfg(tmp_path, f"mode={mode}"), prep)
    p = run.path
    assert is_complete(p)
    for name in ("config.yaml", "meta.json", "metrics.json", "gaussians.ply", "poses.pt"):
        assert (p / name).is_file(), name
    meta = json.loads((p / "meta.json").read_text())
    assert meta["seed"] == 0 and meta["versions"]["torch"] and "commit" in meta["git"]
    assert set(meta["timings_s"]) >= {"train", "evaluate"}
    m = json.loads((p / "metrics.json").read_text())
    assert m["mode"] == mode and len(m["views"]) == 2
    assert 0 < m["nvs"]["psnr"] < 60 and -1 <= m["nvs"]["ssim"] <= 1
    assert m["geometry"]["units"] and m["geometry"]["accuracy"] >= 0  # synthetic scene has GT depth
    g = read_gaussians_ply(p / "gaussians.ply")
    assert len(g) == prep.info["gaussians"]
    assert len(list((p / "renders").glob("*_render.png"))) == 2


def test_same_seed_is_bit_identical(tmp_path, prep):
    a = run_probe(_cfg(tmp_path / "a", "mode=A"), prep)
    b = run_probe(_cfg(tmp_path / "b", "mode=A"), prep)
    for f in ("means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest"):
        assert torch.equal(getattr(a.train.gaussians, f), getattr(b.train.gaussians, f)), f
    assert a.metrics["nvs"] == b.metrics["nvs"]
    c = run_probe(_cfg(tmp_path / "c", "mode=A", "seed=1"), prep)
    assert not torch.equal(a.train.gaussians.means, c.train.gaussians.means)


def test_failed_run_is_marked_failed(tmp_path, prep):
    with pytest.raises(InputError, match="no-such-backbone"):  # refused at load: no run folder
        _cfg(tmp_path, "backbone=no-such-backbone")
    assert not tmp_path.exists() or not list(tmp_path.iterdir())
    cfg = _cfg(tmp_path, "backbone=random-vit", "backbone.arch_overrides={depth: 2, embed_dim: 32, num_heads: 2}",
               "backbone.layer=99")
    with pytest.raises(InputError, match="backbone.layer"):  # found when the model is built
        run_probe(cfg, prep)
    (run,) = list(tmp_path.iterdir())
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "failed" and "backbone.layer" in meta["error"]
    assert not is_complete(run) and not (run / "metrics.json").exists()


def test_bad_scene_and_split_errors(tmp_path):
    with pytest.raises(InputError, match="nope"):
        prepare_scene(_cfg(tmp_path, f"scene.path={tmp_path / 'nope'}"))
    with pytest.raises(InputError, match="split"):
        prepare_scene(_cfg(tmp_path, "split.n_train=9"))


def test_token_backbone_run_writes_feature_picture(tmp_path, prep):
    run = run_probe(_cfg(tmp_path, "backbone=random-vit", "backbone.arch_overrides.depth=2", "mode=T"), prep)
    assert (run.path / "features.png").is_file()
    assert run.metrics["features"]["pca_dim"] <= 256
