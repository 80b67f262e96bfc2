"""Readout probe: per-attribute MLP heads on frozen features, free parameters for the rest.

Each head is ``Linear(D, hidden) -> ReLU -> Linear(hidden, out)`` and outputs raw 3DGS parameters
(no output activation), as in the reference. The probing mode decides which attributes are heads:

| mode | heads (read out from features)          | free per-Gaussian parameters |
|------|-----------------------------------------|------------------------------|
| G    | xyz, scaling, rotation, opacity         | f_dc, f_rest                 |
| T    | f_dc, f_rest                            | xyz, scaling, rotation, opacity |
| A    | all six                                 | none                         |

All heads run together through ``probes.fused_heads`` (chunked over Gaussians, first layer applied to the
tokens before interpolation when that is cheaper); the heads keep separate parameters so each attribute
gets its own learning rate.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from feat2gs.errors import UnknownNameError
from feat2gs.gaussians import Gaussians, num_sh_coeffs

from .features import GaussianFeatures
from .fused_heads import CHUNK, fused_heads

ATTRIBUTES = ("xyz", "scaling", "rotation", "opacity", "f_dc", "f_rest")
MODE_HEADS = {
    "G": ("xyz", "scaling", "rotation", "opacity"),
    "T": ("f_dc", "f_rest"),
    "A": ATTRIBUTES,
}


def attribute_dims(sh_degree: int) -> dict[str, int]:
    return {"xyz": 3, "scaling": 3, "rotation": 4, "opacity": 1, "f_dc": 3,
            "f_rest": 3 * (num_sh_coeffs(sh_degree) - 1)}


def gaussians_to_attributes(g: Gaussians) -> dict[str, torch.Tensor]:
    """Flatten raw Gaussian parameters into the (N, out) tensors the heads predict."""
    n = len(g)
    return {"xyz": g.means, "scaling": g.log_scales, "rotation": g.quats, "opacity": g.opacity_logits,
            "f_dc": g.sh_dc.reshape(n, 3), "f_rest": g.sh_rest.reshape(n, -1)}


def attributes_to_gaussians(a: dict[str, torch.Tensor]) -> Gaussians:
    n = a["xyz"].shape[0]
    return Gaussians(means=a["xyz"], log_scales=a["scaling"], quats=a["rotation"],
                     opacity_logits=a["opacity"], sh_dc=a["f_dc"].reshape(n, 1, 3),
                     sh_rest=a["f_rest"].reshape(n, -1, 3))


class Head(nn.Module):
    def __init__(self, dim_in: int, hidden: int, dim_out: int):
        super().__init__()
        self.fc1 = nn.Linear(dim_in, hidden)
        self.fc2 = nn.Linear(hidden, dim_out)


class Readout(nn.Module):
    """Heads for the mode's attributes, free parameters (initialised from ``init``) for the others.

    ``init`` also holds the targets of the warm-up regression (``warmup_loss``).
    """

    def __init__(self, mode: str, feat_dim: int, init: Gaussians, hidden: int = 256):
        super().__init__()
        if mode not in MODE_HEADS:
            raise UnknownNameError("probe mode", mode, list(MODE_HEADS))
        self.mode = mode
        self.hidden = hidden
        self.sh_degree = init.sh_degree
        dims = attribute_dims(self.sh_degree)
        targets = gaussians_to_attributes(init.detach())
        self.head_names = MODE_HEADS[mode]
        self.heads = nn.ModuleDict({a: Head(feat_dim, hidden, dims[a]) for a in self.head_names})
        self.free = nn.ParameterDict({a: nn.Parameter(targets[a].clone().float())
                                      for a in ATTRIBUTES if a not in self.head_names})
        for a in self.head_names:
            self.register_buffer(f"target_{a}", targets[a].clone().float(), persistent=False)
        self.register_buffer("init_log_scales", targets["scaling"].clone().float(), persistent=False)

    def head_outputs(self, feats: GaussianFeatures) -> dict[str, torch.Tensor]:
        heads = [self.heads[a] for a in self.head_names]
        if feats.token_first:  # first layer on the tokens, then interpolation (see probes.features)
            params = [(F.linear(feats.tokens, h.fc1.weight, h.fc1.bias), None, h.fc2.weight, h.fc2.bias)
                      for h in heads]
            outs = fused_heads(None, feats.index, feats.weight, params,
                               interp_t=feats.transposed_chunks(CHUNK))
        else:
            params = [(h.fc1.weight, h.fc1.bias, h.fc2.weight, h.fc2.bias) for h in heads]
            outs = fused_heads(feats.dense(), None, None, params)
        return dict(zip(self.head_names, outs))

    def forward(self, feats: GaussianFeatures) -> Gaussians:
        attrs = dict(self.head_outputs(feats))
        attrs.update({a: p for a, p in self.free.items()})
        return attributes_to_gaussians(attrs)

    def warmup_loss(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum over head attributes of the mean L1 distance to the initial values."""
        return sum(F.l1_loss(outputs[a], getattr(self, f"target_{a}")) for a in self.head_names)

    def scale_regulariser(self, gaussians: Gaussians) -> torch.Tensor:
        """Mean L1 distance of the log-scales to their initial values (the reference's IUVRGB-only term)."""
        return F.l1_loss(gaussians.log_scales, self.init_log_scales)

    def attribute_params(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per attribute: a head's weights or the free parameter."""
        out = {a: list(self.heads[a].parameters()) for a in self.head_names}
        out.update({a: [p] for a, p in self.free.items()})
        return out
