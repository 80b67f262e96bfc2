"""Shared helpers of the backbone-zoo tests (DINOv2, DINO, CLIP, SAM, MiDaS, RADIO, MAE, DINOv3).

* ``TINY``: architecture overrides giving a 2-block, 64-wide network per family (random weights, CPU), from
  ``backbones/tiny.py``.
* (the ``fake_hf_cache`` fixture of tests/conftest.py installs files into a temporary Hugging Face
  cache that ``resolve_weights`` reads, so the real loading path is exercised without a download)
* ``assert_roll_equivariant``: with the model's position information removed, a circular shift of the image
  by whole patches must circularly shift the token grid by the same number of tokens -- exactly. Without
  position information a ViT is permutation-equivariant over its patch tokens, so any mismatch can only come
  from our plumbing (sizing, normalisation, token order, reshape, cropping, extent).
"""

from __future__ import annotations

from typing import Callable

import torch

import backbones.clip  # noqa: F401  (registration side effects; the lead adds these to backbones/__init__)
import backbones.dino  # noqa: F401
import backbones.dinov2  # noqa: F401
import backbones.dinov3  # noqa: F401
import backbones.mae  # noqa: F401
import backbones.midas  # noqa: F401
import backbones.radio  # noqa: F401
import backbones.sam  # noqa: F401
from backbones.registry import backbone_info, build_backbone
from backbones.tiny import TINY_OVERRIDES

#: the tiny architectures of backbones/tiny.py (shared with the feature-stage tests and benchmarks)
TINY = {f: TINY_OVERRIDES[f] for f in ("dinov2", "dino", "sam", "radio", "clip", "mae", "midas", "dinov3")}
FAMILIES = list(TINY)
#: every registered name of these families (model sizes included)
NAMES = FAMILIES + ["dinov2_s", "dinov2_l", "dinov2_g", "radio_l", "radio_h"]
#: channels per block of the tiny configs (CLIP: the projection width)
TINY_CHANNELS = {f: (TINY[f]["embed_dim"] if f == "clip" else 64) for f in FAMILIES}

def build_tiny(name: str, **kw):
    """``build_backbone(name)`` with the tiny architecture of its family."""
    family = backbone_info(name).family
    return build_backbone(name, arch_overrides=TINY[family], **kw)


def normalise(images: torch.Tensor, bb) -> torch.Tensor:
    """Independent re-statement of the input conditioning: (x - mean) / std per channel."""
    mean = torch.tensor(bb.mean).view(1, 3, 1, 1)
    std = torch.tensor(bb.std).view(1, 3, 1, 1)
    return (images - mean) / std


def random_images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g)


def assert_roll_equivariant(bb, remove_position: Callable[[], None], grid=(4, 6), shift=(2, 4)) -> None:
    """Circularly shifting the image by ``shift`` patches (dy, dx) shifts the features by ``shift`` tokens.

    ``remove_position`` strips the position information (absolute embeddings, RoPE, relative tables) from
    ``bb``'s network. The image is a patch multiple, so no resizing happens and the shift is exact. We also
    check that the features are not trivially shift-invariant (so the comparison has teeth).
    """
    with torch.no_grad():
        remove_position()
    p = bb.patch
    img = random_images(1, grid[0] * p, grid[1] * p, seed=3)
    f0 = bb.extract(img)
    f1 = bb.extract(torch.roll(img, shifts=(shift[0] * p, shift[1] * p), dims=(-2, -1)))
    assert f0.grid == tuple(grid) and f0.extent == (0.0, 0.0, float(grid[1] * p), float(grid[0] * p))
    expected = torch.roll(f0.features, shifts=shift, dims=(-2, -1))
    torch.testing.assert_close(f1.features, expected, atol=2e-4, rtol=1e-4)
    assert (f1.features - f0.features).abs().max() > 1e-2, "features do not depend on the image content"
