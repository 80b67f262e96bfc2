"""Feature-extraction time per backbone. Prints one JSON line per (backbone, configuration).

Configurations:

* ``tiny`` (always): every family's tiny random network (``backbones/tiny.py``) on ``--views`` seeded random
  images of ``--tiny-size`` pixels (long side, 4:3), on the CPU. Measures the per-view cost of each
  wrapper's own work (resizing, normalisation, token plumbing) plus a 2-block network -- the overhead floor.
* ``full`` (when CUDA is present, or with ``--full`` on any device): every registered network at its real
  size with fixed-seed random weights (``random-<name>``: the same architecture and cost as the pretrained
  model) on images of ``--full-size`` pixels (long side 512, 4:3), the backbone's input long side set to
  that size (VGGT rounds to 518, SD to 512 = 8 x 64).

Timing: ``build_s`` = constructing the network once; ``per_view_s`` = best of ``--repeat`` calls of
``extract`` on all views divided by the number of views, after one warm-up call (CUDA synchronised).
``params_m`` = parameters in millions. Timings on a shared machine are noisy.

Usage: ``python benchmarks/perf/extract.py [--names dinov2,clip] [--views 3] [--repeat 3] [--full]
[--device cpu|cuda] [--threads N]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Optional

import torch

import backbones  # noqa: F401  (registers every family)
from backbones import backbone_info, backbone_names, build_backbone
from backbones.tiny import tiny_overrides
from feat2gs.device import resolve_device


def one_per_family() -> list[str]:
    seen = {}
    for name in backbone_names(include_random=False):
        seen.setdefault(backbone_info(name).family, name)
    return list(seen.values())


def images(views: int, long_side: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(views, 3, long_side * 3 // 4, long_side, generator=g)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def params_m(backbone) -> Optional[float]:
    model = getattr(backbone, "model", None)
    if model is None:
        return None
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 2)


def time_one(name: str, config: str, imgs: torch.Tensor, device: str, repeat: int, input_size: Optional[int]) -> dict:
    info = backbone_info(name)
    run_name = name if info.weights is None else "random-" + name
    kw = {"device": device}
    if config == "tiny":
        kw["arch_overrides"] = tiny_overrides(name)
    if input_size is not None and info.patch > 1:
        kw["input_size"] = input_size
    row = {"bench": "extract", "backbone": run_name, "family": info.family, "config": config, "device": device,
           "views": int(imgs.shape[0]), "image": list(imgs.shape[-2:])}
    try:
        sync(device)
        t = time.perf_counter()
        bb = build_backbone(run_name, **kw)
        sync(device)
        row["build_s"] = round(time.perf_counter() - t, 4)
        x = imgs.to(device)
        fm = bb.extract(x)  # warm-up (kernel selection, lazy imports)
        best = float("inf")
        for _ in range(repeat):
            sync(device)
            t = time.perf_counter()
            fm = bb.extract(x)
            sync(device)
            best = min(best, time.perf_counter() - t)
        row.update(per_view_s=round(best / imgs.shape[0], 5), grid=list(fm.grid), channels=fm.channels,
                   input=list(fm.meta.get("input_size", fm.image_size)), params_m=params_m(bb))
        if device.startswith("cuda"):
            row["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
        del bb, fm
    except Exception as e:  # report and go on with the next backbone
        row.update(status="error", error=f"{type(e).__name__}: {e}"[:300])
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--names", default=None, help="comma-separated backbone names (default: tiny: one per family; "
                                                  "full: every registered name)")
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tiny-size", type=int, default=128, help="long side of the tiny-config images")
    ap.add_argument("--full-size", type=int, default=512, help="long side of the full-size images and inputs")
    ap.add_argument("--full", action="store_true", help="run the full-size configuration even without CUDA")
    ap.add_argument("--no-tiny", action="store_true", help="skip the tiny configuration")
    ap.add_argument("--device", default=None, help="device of the full-size runs (default: cuda if present)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.names.split(",") if args.names else None
    if not args.no_tiny:
        for name in names or one_per_family():
            print(json.dumps(time_one(name, "tiny", images(args.views, args.tiny_size), "cpu", args.repeat,
                                      args.tiny_size)), flush=True)
    device = resolve_device(args.device or "auto", "--device")
    if device.startswith("cuda") or args.full:
        for name in names or backbone_names(include_random=False):
            print(json.dumps(time_one(name, "full", images(args.views, args.full_size), device, args.repeat,
                                      args.full_size)), flush=True)


if __name__ == "__main__":
    main()
