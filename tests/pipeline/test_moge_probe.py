"""``feat2gs probe`` end to end with MoGe: as the probed backbone (tiny random weights, from a checkpoint file and
from ``backbone.arch_overrides``) and as the initialiser, on a small synthetic scene with few steps."""

import json

import pytest
import torch

from backbones.moge.load import build_model, save_checkpoint, tiny_config
from feat2gs.cli import main
from feat2gs.run import is_complete

TINY = ["scene.options.num_views=5", "scene.options.width=64", "scene.options.height=48", "scene.long_side=64",
        "split.n_train=2", "split.n_test=2", "init.block=2", "train.warmup_steps=5", "train.steps=5",
        "eval.pose_steps=2", "probe.sh_degree=1", "eval.lpips=none", "eval.save_renders=false"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    cfg = tiny_config("v2")
    path = tmp_path_factory.mktemp("moge") / "model.pt"
    save_checkpoint(build_model(cfg), cfg, path)
    return path


def probe(tmp_path, capsys, *overrides):
    rc = main(["probe", *TINY, f"output.root={tmp_path / 'runs'}", *overrides])
    out = capsys.readouterr()
    assert rc == 0, out.err
    (run,) = list((tmp_path / "runs").iterdir())
    assert is_complete(run)
    assert "PSNR" in out.out
    return json.loads((run / "metrics.json").read_text())


def test_probe_backbone_moge_tiny_checkpoint(tmp_path, capsys, ckpt):
    m = probe(tmp_path, capsys, "backbone=moge", f"backbone.weights={ckpt}", "mode=G")
    assert m["backbone"] == "moge"
    assert m["features"]["channels"] == 64  # tiny_config: dim 64, fused encoder map
    assert 0 < m["nvs"]["psnr"] < 60 and m["geometry"]["accuracy"] >= 0


def test_probe_random_moge_from_arch_overrides(tmp_path, capsys):
    arch = json.dumps({"model_config": tiny_config("v2", normal=False)}, separators=(",", ":"))
    m = probe(tmp_path, capsys, "backbone=random-moge", f"backbone.arch_overrides={arch}", "backbone.layer=[-1,2]",
              "mode=T")
    assert m["backbone"] == "random-moge"
    assert m["features"]["channels"] == 64 + 16  # encoder map + neck level 2 (tiny widths 64, 32, 16, 16, 8)


def test_probe_with_moge_initialiser(tmp_path, capsys, ckpt):
    """init=moge with the tiny model, aligned to MVS depth (the synthetic scene has no SfM points)."""
    opts = (f"init.options={{weights: '{ckpt}', device: cpu, num_tokens: 24, use_moge_mask: false, "
            "align_resolution: 12, on_failure: drop}")
    m = probe(tmp_path, capsys, "init=moge", opts, "mode=G")
    meta = m["scene"]["init_meta"]
    assert m["scene"]["init"] == "moge" and meta["target"] == "mvs"
    assert len(meta["scale"]) == 2 and len(meta["dropped_views"]) < 2
    assert m["scene"]["gaussians"] > 0
