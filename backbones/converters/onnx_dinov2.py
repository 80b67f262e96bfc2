"""A DINOv2 ViT backbone inside an ONNX graph (exported from Hugging Face ``Dinov2Model`` under the scope
``backbone``) -> the state dict of timm's ``vit_*_patch14_dinov2`` (what ``backbones.dinov2`` builds).

Read with the ``onnx`` package only (no runtime): initializers named ``backbone.<HF name>`` are taken as they
are; the linear weights, which the exporter stores as unnamed ``MatMul`` initializers (transposed, ``x @ W.T``),
are named by the bias their ``MatMul`` output is added to (``...query.bias`` -> ``...query.weight``); the
position embedding, split by the exporter into the class-token entry (1, 1, D) and the patch grid (1, n*n, D),
is concatenated back. Every initializer the backbone's nodes read must be used, and the result must hold
exactly the keys of an HF DINOv2 with its number of layers; then the HF names map to timm's (q, k, v fused
into ``qkv``; ``layer_scale{1,2}.lambda1`` -> ``ls{1,2}.gamma``; ``layernorm`` -> ``norm``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from feat2gs.errors import InputError

from . import CONVERTERS

SCOPE = "backbone"


def read_onnx_backbone(path: Path, scope: str = SCOPE) -> dict[str, np.ndarray]:
    """The HF-named parameters of the ``scope`` sub-graph (``embeddings.position_embeddings`` reassembled)."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf DecodeError, missing external data
        raise InputError(str(path), f"not a readable ONNX model ({type(e).__name__}: {e})") from None
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    prefix, node_scope = scope + ".", f"/{scope}/"
    array = lambda name: numpy_helper.to_array(inits[name])  # noqa: E731

    hf = {name[len(prefix):]: array(name) for name in inits if name.startswith(prefix)}
    used = {name for name in inits if name.startswith(prefix)}
    # linear weights: MatMul(x, W) followed by Add(bias, .) with a named bias
    for node in graph.node:
        if node.op_type != "MatMul" or not node.name.startswith(node_scope):
            continue
        w = next((i for i in node.input if i in inits and not i.startswith(prefix)), None)
        if w is None:
            continue
        biases = [i for c in consumers.get(node.output[0], []) if c.op_type == "Add"
                  for i in c.input if i.startswith(prefix) and i.endswith(".bias") and i in inits]
        if len(biases) != 1:
            raise InputError(str(path), f"MatMul {node.name}: cannot name its weight {w} (bias adds: {biases})")
        key = biases[0][len(prefix):-len(".bias")] + ".weight"
        if key in hf:
            raise InputError(str(path), f"{key} found twice")
        hf[key] = np.ascontiguousarray(array(w).T)
        used.add(w)
    # position embedding: the class entry (1, 1, D) and the patch grid (1, n*n, D) read by the embeddings
    emb = {i for node in graph.node if node.name.startswith(node_scope + "embeddings/") for i in node.input
           if i in inits and i not in used}
    cls_pos = [i for i in emb if tuple(inits[i].dims[:2]) == (1, 1) and len(inits[i].dims) == 3]
    grid_pos = [i for i in emb if len(inits[i].dims) == 3 and inits[i].dims[0] == 1 and inits[i].dims[1] > 1
                and round(inits[i].dims[1] ** 0.5) ** 2 == inits[i].dims[1]]
    if len(cls_pos) != 1 or len(grid_pos) != 1:
        raise InputError(str(path), f"cannot find the split position embedding (class-entry candidates {cls_pos}, "
                                    f"grid candidates {grid_pos})")
    hf["embeddings.position_embeddings"] = np.concatenate([array(cls_pos[0]), array(grid_pos[0])], axis=1)
    used |= {cls_pos[0], grid_pos[0]}
    # every float initializer the backbone's nodes read must have been used (small int constants are shapes)
    read = {i for node in graph.node if node.name.startswith(node_scope) for i in node.input if i in inits}
    unused = sorted(i for i in read - used if inits[i].data_type == onnx.TensorProto.FLOAT
                    and int(np.prod(inits[i].dims)) > 1)
    if unused:
        raise InputError(str(path), f"backbone initializers not used by the conversion: {unused[:6]} ({len(unused)})")
    return hf


def hf_dinov2_keys(num_layers: int) -> set[str]:
    """The parameter names of an HF ``Dinov2Model`` (SwiGLU-free sizes, no mask token) with ``num_layers``."""
    keys = {"embeddings.cls_token", "embeddings.position_embeddings", "embeddings.patch_embeddings.projection.weight",
            "embeddings.patch_embeddings.projection.bias", "layernorm.weight", "layernorm.bias"}
    per_layer = ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "layer_scale1.lambda1",
                 "layer_scale2.lambda1", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
                 "attention.output.dense.weight", "attention.output.dense.bias"]
    per_layer += [f"attention.attention.{p}.{w}" for p in ("query", "key", "value") for w in ("weight", "bias")]
    return keys | {f"encoder.layer.{i}.{k}" for i in range(num_layers) for k in per_layer}


def hf_to_timm(hf: dict[str, np.ndarray], where: str = "<state>") -> dict[str, torch.Tensor]:
    """HF ``Dinov2Model`` names -> timm ``vit_*_patch14_dinov2`` names; the keys must be exactly an HF DINOv2's."""
    layers = sorted({int(m.group(1)) for k in hf for m in [re.match(r"encoder\.layer\.(\d+)\.", k)] if m})
    n = len(layers)
    if layers != list(range(n)):
        raise InputError(where, f"layer indices {layers} are not 0..{n - 1}")
    want = hf_dinov2_keys(n)
    if set(hf) != want:
        raise InputError(where, f"not an HF DINOv2 with {n} layers: missing {sorted(want - set(hf))[:6]}, "
                                f"unexpected {sorted(set(hf) - want)[:6]}")
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))  # noqa: E731
    out = {
        "cls_token": t(hf["embeddings.cls_token"]),
        "pos_embed": t(hf["embeddings.position_embeddings"]),
        "patch_embed.proj.weight": t(hf["embeddings.patch_embeddings.projection.weight"]),
        "patch_embed.proj.bias": t(hf["embeddings.patch_embeddings.projection.bias"]),
        "norm.weight": t(hf["layernorm.weight"]),
        "norm.bias": t(hf["layernorm.bias"]),
    }
    for i in range(n):
        a, b = f"encoder.layer.{i}.", f"blocks.{i}."
        att = a + "attention.attention."
        out[b + "attn.qkv.weight"] = torch.cat([t(hf[att + p + ".weight"]) for p in ("query", "key", "value")])
        out[b + "attn.qkv.bias"] = torch.cat([t(hf[att + p + ".bias"]) for p in ("query", "key", "value")])
        for src, dst in (("norm1", "norm1"), ("norm2", "norm2"), ("attention.output.dense", "attn.proj"),
                         ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
            out[b + dst + ".weight"] = t(hf[a + src + ".weight"])
            out[b + dst + ".bias"] = t(hf[a + src + ".bias"])
        out[b + "ls1.gamma"] = t(hf[a + "layer_scale1.lambda1"])
        out[b + "ls2.gamma"] = t(hf[a + "layer_scale2.lambda1"])
    return out


@CONVERTERS.register("onnx-dinov2-timm", version=1)
def convert_onnx_dinov2(path: Path) -> dict[str, torch.Tensor]:
    return hf_to_timm(read_onnx_backbone(path), where=str(path))
