"""The probe protocol: normalised frame (scale invariance), one evaluation mask per scene, dense coverage,
named splits, run summaries and warnings."""

import json

import pytest
import torch

from feat2gs.config import load_config
from feat2gs.data import load_scene
from feat2gs.data.frame import apply_frame, scale_scene, scene_frame
from feat2gs.data.split import llff_split, named_split
from feat2gs.pipeline import prepare_scene, run_probe

SCENE = ["scene.options.num_views=5", "scene.options.width=64", "scene.options.height=48", "scene.long_side=64",
         "split.n_train=3", "split.n_test=2", "init.block=2"]
TRAIN = ["train.warmup_steps=30", "train.steps=40", "eval.pose_steps=5", "probe.sh_degree=1", "train.log_every=10",
         "eval.lpips=none", "eval.save_renders=false", "probe.hidden=32", "probe.pca_dim=16",
         "backbone.input_size=64"]


def cfg_for(tmp_path, *extra):
    return load_config([*SCENE, *TRAIN, f"output.root={tmp_path / 'runs'}", f"cache.dir={tmp_path / 'fc'}",
                        f"cache.dir_scenes={tmp_path / 'sc'}", *extra])


def raw_scene():
    return load_scene("synthetic", num_views=5, width=64, height=48)


def test_frame_is_unit_free():
    raw = raw_scene()
    for factor in (1000.0, 0.001):
        a = apply_frame(raw, scene_frame(raw))
        big = scale_scene(raw, factor)
        fb = scene_frame(big)
        b = apply_frame(big, fb)
        assert fb.scale == pytest.approx(scene_frame(raw).scale / factor, rel=1e-6)
        assert torch.allclose(a.cameras.viewmats, b.cameras.viewmats, atol=1e-4)
        assert torch.allclose(a.depths, b.depths, rtol=1e-5)
        # the normalised scene is O(1): median depth 1 (depth frame of a scene with GT depth)
        assert float(a.depths[a.depths > 0].median()) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.slow
def test_scale_invariance_x1000(tmp_path):
    """The same scene in units 1000x smaller gives the same PSNR (+-0.1 dB) and 3D metrics x1000."""
    cfg = cfg_for(tmp_path, "backbone=iuvrgb", "probe.mode=G")
    raw = raw_scene()
    a = run_probe(cfg, prep=prepare_scene(cfg, raw), run_name="unit")
    b = run_probe(cfg, prep=prepare_scene(cfg, scale_scene(raw, 1000.0)), run_name="milli")
    sa, sb = a.metrics["summary"], b.metrics["summary"]
    assert sb["psnr"] == pytest.approx(sa["psnr"], abs=0.1)
    assert sb["eval_mask_sha256"] == sa["eval_mask_sha256"]
    for k in ("accuracy", "completeness", "distance"):
        assert sb[k] == pytest.approx(1000 * sa[k], rel=0.02)


@pytest.mark.slow
def test_eval_mask_shared_by_every_backbone_and_mode(tmp_path):
    cfg0 = cfg_for(tmp_path)
    prep = prepare_scene(cfg0)
    shas, covs = set(), []
    for backbone in ("iuvrgb", "noise"):
        for mode in "GT":
            cfg = cfg_for(tmp_path, f"backbone={backbone}", f"probe.mode={mode}", "init.options={noise_std: 0.05}")
            run = run_probe(cfg, run_name=f"{backbone}-{mode}")  # prepares its own scene (through the cache)
            s = run.metrics["summary"]
            shas.add(s["eval_mask_sha256"])
            covs.append(s["eval_coverage"])
            assert s["train_coverage"] == 1.0 and s["gaussians"] == 3 * 24 * 32
            for k in ("psnr", "psnr_full", "psnr_no_pose_refine", "ssim", "mean_colour_psnr"):
                assert isinstance(s[k], float)
            on_disk = json.loads((run.path / "metrics.json").read_text())["summary"]
            assert on_disk["eval_mask_sha256"] == s["eval_mask_sha256"]
    # the mask does not depend on the backbone, the mode or the init's noise (its geometry is the GT depth)
    assert len(shas) == 1 and shas == {prep.info["eval_mask_sha256"]}
    assert 0.5 < covs[0] <= 1.0


def test_eval_mask_from_mvs_consistency_without_gt(tmp_path):
    from dataclasses import replace

    from feat2gs.evalmask import compute_eval_mask

    raw = load_scene("synthetic", num_views=5, width=96, height=72)
    split = named_split(raw, "even", 3, "even", 2)
    gt = compute_eval_mask(raw, split)
    assert gt.method == "gt-depth"
    nodepth = replace(raw, depths=None)
    mv = compute_eval_mask(nodepth, split)
    assert mv.method == "mvs-consistency"
    # the MVS-based mask agrees with the GT-depth mask on most pixels
    agree = (mv.masks == gt.masks).float().mean().item()
    assert agree > 0.85, agree
    assert mv.sha256 == compute_eval_mask(nodepth, split).sha256  # deterministic


def test_named_splits():
    assert llff_split(20, 3).test == (0, 8, 16)
    assert llff_split(20, 3).train == (1, 10, 19)
    raw = raw_scene()
    sp = named_split(raw, "default", 3, "even", 2)
    assert sp.train == (0, 2, 4) and len(sp.test) == 2
    raw.meta["splits"] = {"feat2gs": {"train": [1, 3], "test": [0, 4]}}
    sp = named_split(raw, "default", None)
    assert sp.train == (1, 3) and sp.test == (0, 4)
    with pytest.raises(Exception, match="split.name"):
        named_split(raw, "nope", 3)
