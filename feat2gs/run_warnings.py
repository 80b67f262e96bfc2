"""Warnings about a run's results: plain strings, recorded in ``metrics.json["warnings"]`` and printed by the
CLI (``feat2gs: warning: ...``). A check is a function returning a list of such strings; ``score_warnings``
holds the ones on the final scores.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

#: a PSNR at or above this (dB) means the compared images are (near-)identical: a degenerate score
DEGENERATE_PSNR = 100.0


def _get(scores: Mapping[str, Any], *names: str) -> Optional[float]:
    for n in names:
        v = scores.get(n)
        if v is not None:
            return float(v)
    return None


def score_warnings(scores: Mapping[str, Any]) -> list[str]:
    """Warnings on a run's mean scores (``psnr``, ``ssim`` and the mean-colour baseline PSNR)."""
    out = []
    psnr = _get(scores, "psnr")
    base = _get(scores, "mean_colour_psnr", "mean_color_psnr")
    if psnr is not None and psnr >= DEGENERATE_PSNR:
        out.append(f"degenerate score: PSNR {psnr:.2f} dB >= {DEGENERATE_PSNR:.0f} (rendered and ground-truth "
                   "test pixels identical: constant or empty test images, or no valid pixels?)")
    elif psnr is not None and base is not None and psnr < base:
        out.append(f"PSNR {psnr:.2f} dB is below the mean-colour image's {base:.2f} dB: the probe explains the "
                   "test views worse than a constant colour (too few steps, a bad initialisation, or diverging "
                   "training)")
    ssim = _get(scores, "ssim")
    if ssim is not None and psnr is not None and psnr < DEGENERATE_PSNR and ssim >= 1.0:
        out.append(f"degenerate score: SSIM {ssim:.4f} with PSNR {psnr:.2f} dB")
    return out
