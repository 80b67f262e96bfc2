"""``feat2gs probe`` and ``feat2gs demo``."""

from __future__ import annotations

import time

from ..errors import InputError
from ..progress import warn
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
    for w in run.metrics.get("warnings", []):
        warn(w)
    return 0


def cmd_demo(args) -> int:
    from ..config import parse_modes
    from ..sweep import run_sweep

    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    if not backbones:
        raise InputError("--backbones", f"expected comma-separated backbone names, got {args.backbones!r}")
    res = run_sweep("feat2gs demo: synthetic scene", [None], backbones, parse_modes(args.modes),
                    args.overrides, preset=args.preset or "demo",
                    name=args.name or time.strftime("%Y%m%d-%H%M%S") + "_demo")
    print(f"report: {res.path / 'report.md'}")
    return 0


def register(sub) -> None:
    p = add_overrides_parser(sub, "probe", "train and evaluate one probe (scene x backbone x mode)")
    p.set_defaults(func=cmd_probe)
    p = add_overrides_parser(sub, "demo", "synthetic scene x {iuvrgb, random-vit} x {G, T, A}, with a report")
    p.add_argument("--backbones", default="iuvrgb,random-vit", help="comma-separated backbone names")
    p.add_argument("--modes", default="GTA", help="probing modes, e.g. GTA")
    p.add_argument("--name", default=None, help="suite folder name under output.root")
    p.set_defaults(func=cmd_demo)
