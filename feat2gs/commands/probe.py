"""``feat2gs probe`` and ``feat2gs demo``."""

from __future__ import annotations

import time

from . import add_overrides_parser


def cmd_probe(args) -> int:
    from ..config import load_config
    from ..pipeline import run_probe

    cfg = load_config(args.overrides, preset=args.preset)
    run = run_probe(cfg)
    nvs = run.metrics["nvs"]
    print(f"run folder: {run.path}")
    print(f"PSNR {nvs['psnr']:.2f}  SSIM {nvs['ssim']:.4f}  LPIPS "
          f"{'unavailable' if nvs['lpips'] is None else format(nvs['lpips'], '.4f')}  "
          f"(mean-colour baseline PSNR {nvs['mean_color_psnr']:.2f})")
    if run.metrics["geometry"]:
        g = run.metrics["geometry"]
        print(f"Acc {g['accuracy']:.4f}  Comp {g['completeness']:.4f}  Dist {g['distance']:.4f} {g['units']}")
    return 0


def cmd_demo(args) -> int:
    from ..config import load_config
    from ..pipeline import prepare_features, prepare_scene, resolve_device, run_probe
    from ..report import render_grid, write_report
    from ..run import RunDir, seed_everything

    base = load_config(args.overrides, preset=args.preset or "demo")
    backbones = [s for s in args.backbones.split(",") if s]
    modes = list(args.modes)
    suite = RunDir.create(str(base.output.root), args.name or time.strftime("%Y%m%d-%H%M%S") + "_demo", base,
                          int(base.seed))
    try:
        seed_everything(int(base.seed))
        with suite.timer("prepare_scene"):
            prep = prepare_scene(base)
        device = resolve_device(str(base.device))
        rows, grid_rows = [], []
        for name in backbones:
            cfg = load_config([*args.overrides, f"backbone.name={name}"], preset=args.preset or "demo")
            with suite.timer(f"features/{name}"):
                feats = prepare_features(cfg, prep, device)
            for mode in modes:
                cfg.probe.mode = mode
                cfg.output.root = str(suite.path / "runs")
                t = time.perf_counter()
                run = run_probe(cfg, prep, feats, run_name=f"{name}_{mode}")
                row = dict(run.metrics, time_s=time.perf_counter() - t, run=str(run.path.relative_to(suite.path)))
                rows.append(row)
                grid_rows.append((f"{name} {mode}", run.eval.renders))
                nvs = row["nvs"]
                print(f"{name:>12s} {mode}: PSNR {nvs['psnr']:6.2f}  SSIM {nvs['ssim']:.4f}  "
                      f"({row['time_s']:.1f} s)", flush=True)
        render_grid(prep.test.images, grid_rows, suite.path / "renders_grid.png")
        write_report(suite.path / "report.md", "feat2gs demo: synthetic scene", prep.info, rows,
                     grid_name="renders_grid.png",
                     notes=[f"Each run's folder (config, metrics, renders, Gaussians .ply) is under `runs/`.",
                            "random-vit is a ViT-B/16 with fixed-seed random weights: the chance level."])
        suite.write_json("metrics.json", {"runs": rows, "scene": prep.info})
        suite.finish("complete")
    except BaseException as e:
        suite.finish("failed", error=f"{type(e).__name__}: {e}")
        raise
    print(f"report: {suite.path / 'report.md'}")
    return 0


def register(sub) -> None:
    p = add_overrides_parser(sub, "probe", "train and evaluate one probe (scene x backbone x mode)")
    p.set_defaults(func=cmd_probe)
    p = add_overrides_parser(sub, "demo", "synthetic scene x {iuvrgb, random-vit} x {G, T, A}, with a report")
    p.add_argument("--backbones", default="iuvrgb,random-vit", help="comma-separated backbone names")
    p.add_argument("--modes", default="GTA", help="probing modes, e.g. GTA")
    p.add_argument("--name", default=None, help="suite folder name under output.root")
    p.set_defaults(func=cmd_demo)
