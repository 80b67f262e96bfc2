"""Reports: a markdown table of a set of runs and a grid image of their test renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .io.tables import fmt, markdown_table


def runs_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of run metrics (each row: the ``metrics.json`` dict of a run plus ``time_s``)."""
    head = ["backbone", "mode", "PSNR ↑", "PSNR full", "SSIM ↑", "LPIPS ↓", "mean-colour PSNR", "Acc ↓", "Comp ↓",
            "Dist ↓", "train+eval s"]
    out = []
    for m in rows:
        nvs, geo = m["nvs"], m.get("geometry") or {}
        out.append([m["backbone"], m["mode"], fmt(nvs["psnr"], 2), fmt(nvs.get("psnr_full"), 2), fmt(nvs["ssim"], 4),
                    fmt(nvs["lpips"], 4),
                    fmt(nvs["mean_color_psnr"], 2), fmt(geo.get("accuracy"), 4), fmt(geo.get("completeness"), 4),
                    fmt(geo.get("distance"), 4), fmt(m.get("time_s"), 1)])
    return markdown_table(head, out)


def render_grid(gt: torch.Tensor, rows: Sequence[tuple[str, torch.Tensor]], path: Path,
                max_views: int = 3, pad: int = 2, label_width: int = 110) -> None:
    """A PNG with one row per run (label + its test renders) under a row of ground truths.

    gt: (V, 3, H, W); rows: (label, renders (V, 3, H, W)).
    """
    from PIL import Image, ImageDraw

    V = min(gt.shape[0], max_views)
    H, W = gt.shape[-2:]
    all_rows = [("ground truth", gt)] + list(rows)
    canvas = Image.new("RGB", (label_width + V * (W + pad) + pad, len(all_rows) * (H + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, imgs) in enumerate(all_rows):
        y = pad + r * (H + pad)
        draw.text((4, y + H // 2 - 6), label, fill="black")
        for v in range(V):
            arr = (imgs[v].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
            canvas.paste(Image.fromarray(arr), (label_width + pad + v * (W + pad), y))
    canvas.save(path)


def write_report(path: Path, title: str, sections: Sequence[tuple[dict, Sequence[dict[str, Any]], Optional[str]]],
                 notes: Sequence[str] = ()) -> None:
    """A markdown report: per scene (scene info, metrics rows, render-grid file name) a description, the
    runs table and the grid image."""
    parts = [f"# {title}", ""]
    lpips_status = None
    for info, rows, grid_name in sections:
        units = (rows[0].get("geometry") or {}).get("units", info.get("units", "")) if rows else ""
        parts += [f"## {info.get('scene')}", "",
                  f"{info.get('views')} views at {info.get('resolution')}; train views {info.get('train_views')}, "
                  f"test views {info.get('test_views')}; {info.get('gaussians')} Gaussians (init "
                  f"`{info.get('init')}`, train coverage {100 * info.get('train_coverage', 1):.0f} %); evaluation "
                  f"mask ({(info.get('eval_mask') or {}).get('method', '?')}, the same for every run): "
                  f"{100 * info.get('test_valid_fraction', 1):.0f} % of test pixels, sha256 "
                  f"`{str(info.get('eval_mask_sha256', ''))[:12]}`.",
                  "", runs_table(rows), ""]
        if any(r.get("geometry") for r in rows):
            parts += [f"Acc/Comp/Dist in {units} (Gaussian means vs. clean GT points of the same pixels, "
                      f"sim(3)-aligned).", ""]
        warned = [(r, w) for r in rows for w in r.get("warnings", [])]
        if warned:
            parts += ["Warnings:", ""] + [f"- {r['backbone']} {r['mode']}: {w}" for r, w in warned] + [""]
        if grid_name:
            parts += [f"![test renders]({grid_name})", ""]
        lpips_status = lpips_status or (rows[0]["nvs"].get("lpips_status") if rows else None)
    parts += ["PSNR/SSIM/LPIPS: means over the test views, over the evaluation mask only, after test-pose "
              "refinement; PSNR full: whole images; mean-colour PSNR: a constant image of the train views' mean "
              "colour (the trivial baseline). Controls: `noise` (i.i.d. per-token codes: what a readout reaches "
              "with no image information at all), `random-<net>` (the architecture without training), `iuvrgb` "
              "(pixels and coordinates, no network)."]
    warns = [(r.get("backbone"), r.get("mode"), w) for _, rows, _ in sections for r in rows
             for w in r.get("warnings", [])]
    if warns:
        parts += ["", "Warnings:"] + [f"- {b} {m}: {w}" for b, m, w in warns]
    if lpips_status and lpips_status != "ok":
        parts += ["", f"LPIPS unavailable: {lpips_status}"]
    parts += [""] + [f"- {n}" for n in notes]
    Path(path).write_text("\n".join(parts).rstrip() + "\n")
