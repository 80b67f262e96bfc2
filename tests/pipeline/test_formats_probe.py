"""A probe on the synthetic scene written by our writers gives the metrics of the scene in memory: COLMAP (which
holds images, cameras and sparse points only) against the in-memory scene without its GT; transforms.json (which
also holds GT depth and masks) against the native synthetic scene. Images are written as 16-bit PNGs, so the
inputs agree to 1e-5 and the metrics to float precision; the run's exported cameras read back as its poses."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from feat2gs.config import load_config
from feat2gs.data import SceneCatalogue, make_synthetic_scene, write_colmap_scene, write_transforms_scene
from feat2gs.io.colmap import read_model
from feat2gs.pipeline import prepare_scene, run_probe

TINY = ["scene.long_side=64", "split.n_train=2", "split.n_test=2", "init.block=2", "train.warmup_steps=20",
        "train.steps=15", "eval.pose_steps=3", "probe.sh_degree=1", "train.log_every=5", "eval.lpips=none",
        "eval.save_renders=false"]
SYNTHETIC = ["scene.options.num_views=5", "scene.options.width=64", "scene.options.height=48"]
MVS = ["init=mvs", "init.options.near=1.5", "init.options.far=10"]  # no GT depth, no depth range: same for both


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    s = make_synthetic_scene(seed=0, num_views=5, width=64, height=48)
    write_colmap_scene(s, root / "colmap", bit_depth=16)
    write_transforms_scene(s, root / "transforms", bit_depth=16)
    return s, root


def _run(tmp_path, extra, catalogue=None):
    cfg = load_config(TINY + [f"output.root={tmp_path}"] + extra)
    return run_probe(cfg, prepare_scene(cfg, catalogue))


def test_transforms_probe_matches_native(written, tmp_path):
    _, root = written
    native = _run(tmp_path / "n", SYNTHETIC)
    other = _run(tmp_path / "t", [f"scene.path={root / 'transforms'}"])
    assert other.metrics["scene"]["format"] == "transforms" and native.metrics["scene"]["init"] == "dataset"
    for k in ("psnr", "ssim"):
        assert abs(other.metrics["nvs"][k] - native.metrics["nvs"][k]) < (0.01 if k == "psnr" else 1e-4), k
    assert other.metrics["scene"]["gaussians"] == native.metrics["scene"]["gaussians"]


def test_colmap_probe_matches_native(written, tmp_path):
    s, root = written
    bare = SceneCatalogue.from_scene(replace(s, depths=None, masks=None, points=None, depth_range=None), "memory")
    native = _run(tmp_path / "n", MVS, bare)
    other = _run(tmp_path / "c", MVS + [f"scene.path={root / 'colmap'}"])
    assert other.metrics["scene"]["format"] == "colmap"
    assert abs(other.metrics["nvs"]["psnr"] - native.metrics["nvs"]["psnr"]) < 0.01
    assert other.metrics["scene"]["gaussians"] == native.metrics["scene"]["gaussians"]
    # the run's cameras, exported as a COLMAP model, are its refined poses
    cams, imgs, _ = read_model(other.path / "cameras" / "sparse" / "0")
    poses = torch.load(other.path / "poses.pt")
    by_name = {im.name: im for im in imgs.values()}
    names = other.metrics["scene"]["train_views"] + other.metrics["scene"]["test_views"]
    want = torch.cat([poses["train_viewmats"], poses["test_viewmats"]])
    for n, vm in zip(names, want):
        np.testing.assert_allclose(by_name[n].world_to_camera(), vm.double().numpy(), atol=1e-5)
    assert (other.path / "cameras" / "transforms.json").is_file()
