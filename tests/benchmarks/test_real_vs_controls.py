"""benchmarks/real_vs_controls.py: its statistics on cases with known answers, and the whole script on a tiny
configuration (synthetic scene, 64x48, a few steps, 2 seeds) with the real dinov2_s-imgfocus weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.real_vs_controls import (bootstrap_mean_ci, hierarchical_bootstrap_ci, main, markdown, reading,
                                         summarise)


def test_bootstrap_cis_on_known_cases():
    assert bootstrap_mean_ci([2.5] * 5) == (2.5, 2.5, 2.5)
    # two scenes with constant values 1 and 3: resampled scene means are 1, 2, 3 with probabilities 1/4, 1/2, 1/4
    mean, lo, hi = hierarchical_bootstrap_ci({"a": [1.0, 1.0], "b": [3.0, 3.0]}, n_boot=4000)
    assert (mean, lo, hi) == (2.0, 1.0, 3.0)
    # large normal sample: the percentile CI is the normal-theory one, mean +- 1.96 sd / sqrt(n)
    x = np.random.default_rng(1).normal(0.3, 2.0, size=400)
    m, lo, hi = bootstrap_mean_ci(x, n_boot=4000)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert m == pytest.approx(x.mean()) and (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert lo < m < hi


def test_paired_differences_pair_scene_and_seed():
    rows = []
    rng = np.random.default_rng(0)
    for scene in ("s1", "s2", "s3"):
        for seed in range(3):
            base = rng.normal(20, 3)  # scene/seed variation shared by the pair: cancels in the difference
            for backbone, shift in (("real", 0.5), ("twin", 0.0), ("noise", -1.0)):
                rows.append({"scene": scene, "backbone": backbone, "mode": "G", "seed": seed, "psnr": base + shift,
                             "ssim": 0.5, "lpips": None})
    s = summarise(rows, real="real", controls=("twin", "noise"), n_boot=500)
    d = {(p["control"], p["metric"]): p for p in s["paired"]}
    assert d[("twin", "psnr")]["mean_diff"] == pytest.approx(0.5) and d[("twin", "psnr")]["ci95"] == pytest.approx([0.5, 0.5])
    assert d[("noise", "psnr")]["mean_diff"] == pytest.approx(1.5) and d[("twin", "psnr")]["pairs"] == 9
    assert ("twin", "lpips") not in d  # no LPIPS values: no difference reported
    cell = next(c for c in s["cells"] if c["backbone"] == "real" and c["scene"] == "s1")
    assert cell["seeds"] == [0, 1, 2] and cell["lpips"] is None and cell["psnr"]["n"] == 3
    assert "real beats twin" in reading(s, "real")
    md = markdown(s, {"real": "real", "preset": "p", "overrides": [], "seeds": [0, 1, 2], "runs": len(rows),
                      "hours": 0.0})
    assert "| G | real − twin | +0.50 [+0.50, +0.50] |" in md


@pytest.mark.slow
def test_script_on_a_tiny_configuration(tmp_path, require_weights):
    from backbones.dinov2 import IMGFOCUS_WEIGHTS

    require_weights(IMGFOCUS_WEIGHTS)
    out = tmp_path / "rvc.json"
    tiny = ["scene.options.num_views=5", "scene.options.width=64", "scene.options.height=48", "scene.long_side=64",
            "split.n_train=2", "split.n_test=1", "init.name=dataset", "init.block=4", "train.warmup_steps=5",
            "train.steps=5", "eval.pose_steps=0", "eval.lpips=alex", "backbone.input_size=56",
            f"output.root={tmp_path / 'runs'}", f"cache.dir={tmp_path / 'cache'}"]
    store = tmp_path / "rvc.sqlite"
    args = ["--scenes", "synthetic", "--backbones", "dinov2_s-imgfocus,random-dinov2_s-imgfocus", "--modes", "G",
            "--seeds", "0,1", "--bootstrap", "200", "--store", str(store), "--jobs", "1", "--output", str(out), *tiny]
    data = main(args)
    saved = json.loads(out.read_text())
    assert saved["summary"] == json.loads(json.dumps(data["summary"]))
    rows = saved["rows"]
    assert len(rows) == 4 and {r["seed"] for r in rows} == {0, 1}
    assert all(set(r) >= {"scene", "backbone", "mode", "seed", "psnr", "ssim", "lpips"} for r in rows)
    assert all(np.isfinite(r["psnr"]) for r in rows)
    paired = [p for p in saved["summary"]["paired"] if p["metric"] == "psnr"]
    assert [(p["control"], p["pairs"]) for p in paired] == [("random-dinov2_s-imgfocus", 2)]
    # seeds change the runs (random twin weights and training), so the seeds are real replicates
    twin = [r["psnr"] for r in rows if r["backbone"] == "random-dinov2_s-imgfocus"]
    assert twin[0] != twin[1]
    assert out.with_suffix(".md").read_text().startswith("| scene | backbone | mode |")
    assert data["meta"]["runs"] == data["meta"]["jobs"] == 4 and data["meta"]["failed"] == 0
    # resumable: a second call finds every run complete in the store and runs nothing
    from benchmarks.store import ResultStore

    again = main(args)
    assert again["rows"] == data["rows"]
    with ResultStore(store) as st:
        assert st.counts() == {"complete": 4}


def test_unknown_backbones_stop_before_any_run(tmp_path):
    from feat2gs.errors import InputError

    with pytest.raises(InputError, match="no-such-backbone"):
        main(["--scenes", "synthetic", "--backbones", "iuvrgb,no-such-backbone", "--output", str(tmp_path / "x.json"),
              "--store", str(tmp_path / "s.sqlite")])
    assert not list(tmp_path.iterdir())


def test_the_suite_is_the_documented_benchmark():
    from benchmarks.real_vs_controls import BACKBONES, SCENES, build_suite

    suite = build_suite(scenes=["synthetic"])  # the shared scenes need not be present for this check
    assert [b.name for b in suite.backbones] == list(BACKBONES) and suite.modes == ["G", "T", "A"]
    assert suite.seeds == [0, 1, 2] and len(suite.jobs) == len(BACKBONES) * 3 * 3
    from benchmarks.suite import load_suite

    raw = load_suite("real-vs-controls", check=False)
    assert [s.path.rsplit("/", 2)[-2:] if s.path != "synthetic" else ["synthetic"] for s in raw.scenes] == \
        [p.split("/") for p in SCENES]
