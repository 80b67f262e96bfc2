"""``feat2gs data check PATH`` and ``feat2gs data export PATH --to FORMAT OUT``."""

from __future__ import annotations

import sys


def _options(items) -> dict:
    from omegaconf import OmegaConf

    from ..errors import InputError

    for item in items:
        if "=" not in item:
            raise InputError(f"option {item!r}", "expected key=value (a scene.options entry)")
    return OmegaConf.to_container(OmegaConf.from_dotlist(list(items)), resolve=True) if items else {}


def cmd_check(args) -> int:
    from ..data.check import check_scene
    from ..errors import Feat2GSError

    try:
        report = check_scene(args.path, args.format, decode=args.decode, **_options(args.options))
    except Feat2GSError as e:
        print(f"{args.path}: cannot be loaded", file=sys.stderr)
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"scene folder: {report.path}")
    for line in report.lines():
        print(f"  {line}")
    return 0


def cmd_export(args) -> int:
    from ..data import load_scene, write_colmap_scene, write_mvsnet, write_transforms_scene

    scene = load_scene(args.path, args.format, long_side=args.long_side, **_options(args.options))
    writers = {"colmap": write_colmap_scene, "colmap-bin": lambda s, o: write_colmap_scene(s, o, binary=True),
               "transforms": write_transforms_scene, "mvsnet": write_mvsnet}
    writers[args.to](scene, args.out)
    print(f"{scene.num_views} views of {scene.name} ({scene.width}x{scene.height}) written as {args.to} to {args.out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("data", help="scene folders: check one, convert one")
    dsub = p.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("check", help="print a scene's format, views, cameras, splits and warnings (exit 0 / 2)")
    c.add_argument("path", help="a scene folder (or 'synthetic')")
    c.add_argument("--format", default=None, help="the scene format (as scene.format; default: detected)")
    c.add_argument("--decode", action="store_true", help="also decode every image (slower)")
    c.add_argument("options", nargs="*", help="loader options key=value (as scene.options)")
    c.set_defaults(func=cmd_check)
    e = dsub.add_parser("export", help="write a scene's images and cameras as COLMAP / transforms.json / MVSNet")
    e.add_argument("path", help="a scene folder (or 'synthetic')")
    e.add_argument("--to", required=True, choices=["colmap", "colmap-bin", "transforms", "mvsnet"])
    e.add_argument("out", help="output folder")
    e.add_argument("--format", default=None, help="the input scene format (default: detected)")
    e.add_argument("--long-side", type=int, default=None, help="resize to this long side first")
    e.add_argument("options", nargs="*", help="loader options key=value (as scene.options)")
    e.set_defaults(func=cmd_export)
