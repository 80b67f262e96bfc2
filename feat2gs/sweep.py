"""Sweeps: scenes x backbones x modes, sharing the scene stage per scene and the feature stage per
(scene, backbone). Used by ``feat2gs demo`` and the benchmark suites."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .config import load_config, parse_modes
from .device import resolve_device
from .pipeline import prepare_features, prepare_scene, run_probe
from .report import render_grid, write_report
from .run import RunDir, seed_everything


@dataclass
class SweepResult:
    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)  # one metrics dict per run (+ scene, time_s)


def run_sweep(title: str, scenes: Sequence[Optional[str]], backbones: Sequence[str], modes: Sequence[str],
              overrides: Sequence[str] = (), preset: Optional[str] = None, name: Optional[str] = None,
              log=print) -> SweepResult:
    """Run every (scene, backbone, mode); write ``report.md`` (+ a render grid per scene) and ``metrics.json``
    into one suite folder. ``scenes`` entries are ``scene.path`` values (None = the config's own)."""
    modes = parse_modes("".join(modes), "modes")
    base = load_config(overrides, preset=preset)
    suite = RunDir.create(str(base.output.root), name or time.strftime("%Y%m%d-%H%M%S") + "_sweep", base,
                          int(base.seed))
    result = SweepResult(suite.path)
    try:
        device = resolve_device(str(base.device))
        sections = []
        for scene in scenes:
            scene_over = [] if scene is None else [f"scene.path={scene}"]
            cfg = load_config([*overrides, *scene_over], preset=preset)
            seed_everything(int(cfg.seed))
            with suite.timer("prepare_scene"):
                prep = prepare_scene(cfg)
            sname = prep.info["scene"]
            rows, grid = [], []
            for backbone in backbones:
                bcfg = load_config([*overrides, *scene_over, f"backbone.name={backbone}"], preset=preset)
                with suite.timer("features"):
                    feats = prepare_features(bcfg, prep, device)
                for mode in modes:
                    bcfg.probe.mode = mode
                    bcfg.output.root = str(suite.path / "runs")
                    t = time.perf_counter()
                    run = run_probe(bcfg, prep, feats, run_name=f"{sname}_{backbone}_{mode}")
                    row = dict(run.metrics, time_s=time.perf_counter() - t,
                               run=str(run.path.relative_to(suite.path)))
                    rows.append(row)
                    grid.append((f"{backbone} {mode}", run.eval.renders))
                    nvs = row["nvs"]
                    log(f"{sname:>16s} {backbone:>12s} {mode}: PSNR {nvs['psnr']:6.2f}  SSIM {nvs['ssim']:.4f}  "
                        f"(mean-colour {nvs['mean_color_psnr']:.2f}; {row['time_s']:.1f} s)")
                    for w in row.get("warnings", []):
                        log(f"{'':>16s} warning: {w}")
            grid_name = f"renders_{sname}.png"
            render_grid(prep.test.images, grid, suite.path / grid_name)
            sections.append((prep.info, rows, grid_name))
            result.rows.extend(rows)
        write_report(suite.path / "report.md", title, sections)
        suite.write_json("metrics.json", {"runs": result.rows})
        suite.finish("complete")
    except BaseException as e:
        suite.fail(e)
        raise
    return result
