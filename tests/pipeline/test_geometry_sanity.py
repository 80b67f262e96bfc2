"""Sanity that cannot be faked: G-mode readout of a noisy GT-depth initialisation recovers the geometry.

The xyz head is regressed to initial positions carrying isotropic noise of std sigma; because the head is a
smooth function of the features it cannot fit the noise, and the Gaussians end up closer to the true
surfaces than the noise -- measured against the clean GT points with the standard Acc/Comp metrics.
The full-schedule numbers are produced by benchmarks/synthetic_geometry.py.
"""

import pytest

from feat2gs.config import load_config
from feat2gs.metrics.points import point_metrics
from feat2gs.pipeline import prepare_scene, run_probe

SIGMA = 0.2
CFG = ["init.block=2", f"init.options.noise_std={SIGMA}", "train.warmup_steps=300", "train.steps=20",
       "eval.pose_steps=0", "split.n_test=1", "probe.sh_degree=0", "eval.save_renders=false"]


@pytest.mark.slow
def test_g_mode_denoises_a_noisy_gt_initialisation(tmp_path):
    cfg = load_config([*CFG, "backbone=random-vit", "mode=G", f"output.root={tmp_path}"], preset="demo")
    prep = prepare_scene(cfg)
    corr = prep.gt.valid[prep.init.valid]
    noisy = point_metrics(prep.init_gaussians.means[corr], prep.gt.points[prep.init.valid][corr],
                          scale=1 / prep.frame.scale)  # in dataset units, like the run's geometry metrics
    geo = run_probe(cfg, prep).metrics["geometry"]
    assert noisy["accuracy"] > 0.3 * SIGMA  # the injected noise is visible in the metric
    for key in ("accuracy", "completeness"):
        assert geo[key] < 0.35 * SIGMA, (key, geo[key])  # well below the injected noise
    assert geo["accuracy"] < 0.8 * noisy["accuracy"]  # and closer to the surfaces than the noisy init
    assert geo["completeness"] < noisy["completeness"]
