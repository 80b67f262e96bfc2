"""One evaluation mask per (scene, split): the test pixels every run of that scene is scored on.

The mask must not depend on the run (its backbone, mode, seed or initialisation), or two backbones would be
scored on different pixels. It comes from geometry fixed by the scene and split alone:

* ``gt-depth`` (the scene has GT depth maps): a test pixel counts when its GT depth back-projects to a point
  that at least one train view sees unoccluded (in its frustum and agreeing with that view's GT depth within
  ``rel_tol``; ``feat2gs.geometry.visibility.depth_agreement_masks``).
* ``mvs-consistency`` (no GT depth): the dense weight-free MVS of ``feat2gs.init.mvs`` reconstructs the train
  and test views *jointly* (the test images are used here for evaluation only, never for training), and the
  same depth-agreement test runs on its dense depth maps -- the reference's Splatt3R-style test, with a
  reconstruction that does not come from the run.

Both are intersected with the test views' object masks when the scene has masks. The mask's SHA-256 (of its
shape and packed bits) travels with every result, so any two results can be checked to share their pixels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .geometry.visibility import depth_agreement_masks
from .scene import Scene, Split

EVAL_MASK_METHODS = ("auto", "gt-depth", "mvs-consistency", "all")


@dataclass
class EvalMask:
    masks: torch.Tensor  # (T, H, W) bool
    method: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return mask_sha256(self.masks)

    @property
    def coverage(self) -> float:
        return float(self.masks.float().mean()) if self.masks.numel() else 0.0

    @property
    def per_view(self) -> list[float]:
        return self.masks.flatten(1).float().mean(1).tolist() if self.masks.numel() else []


def mask_sha256(masks: torch.Tensor) -> str:
    m = masks.detach().cpu().bool().numpy()
    h = hashlib.sha256(repr(tuple(m.shape)).encode())
    h.update(np.packbits(m.reshape(-1)).tobytes())
    return h.hexdigest()


def compute_eval_mask(scene: Scene, split: Split, method: str = "auto", rel_tol: float = 0.01,
                      mvs_rel_tol: float = 0.02, mvs_options: dict | None = None) -> EvalMask:
    """The evaluation mask of ``split.test`` (see the module docstring)."""
    if method not in EVAL_MASK_METHODS:
        raise InputError("eval.mask", f"unknown method {method!r}; use one of {', '.join(EVAL_MASK_METHODS)}")
    train, test = scene.subset(split.train), scene.subset(split.test)
    if not split.test:
        return EvalMask(torch.zeros(0, scene.height, scene.width, dtype=torch.bool), "none")
    if method == "auto":
        method = "gt-depth" if scene.depths is not None else "mvs-consistency"
    meta: dict[str, Any] = {}
    if method == "all":
        masks = torch.ones(test.num_views, scene.height, scene.width, dtype=torch.bool)
    elif method == "gt-depth":
        if scene.depths is None:
            raise InputError("eval.mask", f"{scene.name} has no GT depth maps; use mvs-consistency or auto")
        masks = depth_agreement_masks(test.cameras, test.depths, train.cameras, train.depths, rel_tol)
        meta["rel_tol"] = rel_tol
    else:
        from .init.mvs import MVSInit

        joint_idx = list(split.train) + list(split.test)
        joint = scene.subset(joint_idx)
        opts = dict(mvs_options or {})
        opts.setdefault("fill", "sgm")
        try:
            mvs = MVSInit(**opts)
        except TypeError as e:
            raise InputError("eval.mvs_options", str(e)) from None
        dense = mvs.reconstruct(joint)
        n = len(split.train)
        masks = depth_agreement_masks(test.cameras, dense.depth[n:], train.cameras, dense.depth[:n], mvs_rel_tol)
        meta.update(rel_tol=mvs_rel_tol, mvs={k: v for k, v in dense.meta.items() if k != "sources"})
    if test.masks is not None:
        masks = masks & test.masks
        meta["object_masks"] = True
        meta["object_fraction"] = float(test.masks.float().mean())  # the most the mask can cover
    return EvalMask(masks.bool(), method, meta)
