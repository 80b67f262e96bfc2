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


#: thresholds of the protocol warnings: a probe result is only meaningful when the Gaussians cover the train
#: pixels and the evaluation mask covers a fair part of the test images
MIN_TRAIN_COVERAGE = 0.9
MIN_EVAL_COVERAGE = 0.5


def protocol_warnings(info: Mapping[str, Any], has_test: bool = True) -> list[str]:
    """Warnings on the scene stage: train coverage of the Gaussians, coverage of the evaluation mask."""
    out = []
    tc = info.get("train_coverage")
    if tc is not None and tc < MIN_TRAIN_COVERAGE:
        out.append(f"train coverage {tc:.2f} < {MIN_TRAIN_COVERAGE}: the Gaussians miss train pixels")
    ec = info.get("eval_coverage")
    obj = ((info.get("eval_mask") or {}).get("meta") or {}).get("object_fraction")
    if has_test and ec is not None:
        # object-centric scenes: coverage of the object (the background is black and never scored)
        rel, what = (ec / obj, "of the object pixels") if obj else (ec, "of the test pixels")
        if rel < MIN_EVAL_COVERAGE:
            out.append(f"evaluation-mask coverage {rel:.2f} {what} < {MIN_EVAL_COVERAGE}: the scores cover a small "
                       "part of the test views")
    return out


def loss_warnings(history: Mapping[str, list]) -> list[str]:
    """A photometric loss that ended higher than it started (divergence itself stops the run earlier)."""
    losses = [x for x in history.get("photo_loss", []) if x is not None]
    if len(losses) >= 2 and losses[-1] > 1.5 * losses[0]:
        return [f"the photometric loss rose from {losses[0]:.4f} to {losses[-1]:.4f}"]
    return []
