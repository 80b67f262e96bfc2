"""Behaviour shared by every zoo family (tiny random networks on CPU): output shape and pixel extent for
sizes that are not patch multiples, multi-layer selection, seeded random controls, and the errors for
missing weights / bad options. Family-specific alignment and weight-loading tests live in test_<family>.py."""

from __future__ import annotations

import pytest
import torch

from backbones.common import input_size
from backbones.registry import backbone_info, build_backbone
from feat2gs.errors import InputError, WeightsNotFoundError

from zoo_testlib import FAMILIES, NAMES, TINY, TINY_CHANNELS, build_tiny, random_images


@pytest.mark.parametrize("name", FAMILIES)
def test_shape_and_extent_for_any_image_size(name):
    bb = build_tiny("random-" + name)
    img = random_images(2, 50, 70)
    fm = bb.extract(img)
    p = bb.patch
    gh, gw = round(50 / p), round(70 / p)
    assert fm.features.shape == (2, TINY_CHANNELS[name], gh, gw)
    assert fm.features.dtype == torch.float32 and torch.isfinite(fm.features).all()
    assert fm.image_size == (50, 70) and fm.extent == (0.0, 0.0, 70.0, 50.0)
    # a requested long side sets the model input (both sides patch multiples, aspect kept)
    bb2 = build_tiny("random-" + name, input_size=4 * p)
    fm2 = bb2.extract(img)
    h, w = input_size(50, 70, p, 4 * p)
    assert fm2.meta["input_size"] == (h, w) and fm2.grid == (h // p, w // p) and fm2.grid[1] == 4
    assert fm2.extent == (0.0, 0.0, 70.0, 50.0)


@pytest.mark.parametrize("name", FAMILIES)
def test_layer_selection_concatenates_blocks_in_order(name):
    img = random_images(1, 64, 96, seed=1)
    bb = build_tiny("random-" + name, layer=[-1, 0])
    assert bb.layers == [1, 0]
    both = bb.extract(img).features
    bb.layers = [0]  # the same network, one block at a time
    first = bb.extract(img).features
    bb.layers = [1]
    last = bb.extract(img).features
    C = TINY_CHANNELS[name]
    assert both.shape[1] == 2 * C
    torch.testing.assert_close(both[:, :C], last)
    torch.testing.assert_close(both[:, C:], first)
    assert not torch.allclose(first, last)
    with pytest.raises(ValueError, match="backbone.layer"):
        build_tiny("random-" + name, layer=2)


@pytest.mark.parametrize("name", FAMILIES)
def test_random_control_depends_only_on_seed(name):
    img = random_images(1, 48, 64, seed=2)
    a = build_tiny("random-" + name, seed=0).extract(img).features
    b = build_tiny("random-" + name, seed=0).extract(img).features
    other = build_tiny("random-" + name, seed=1)
    c = other.extract(img).features
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-3
    key = other.cache_key()
    assert key["random_seed"] == 1 and key["model"] == backbone_info(name.replace("random-", "")).weights.repo_id


@pytest.mark.parametrize("name", NAMES)
def test_missing_weights_name_the_model_and_the_fetch_command(name, fake_hf_cache, tmp_path):
    # fake_hf_cache (tests/conftest.py): an empty Hugging Face cache, nothing installed
    spec = backbone_info(name).weights
    assert spec is not None and spec.name == name  # the fetch command names this very backbone
    with pytest.raises(WeightsNotFoundError) as e:
        build_tiny(name)
    msg = str(e.value)
    assert spec.repo_id in msg and f"feat2gs weights fetch {name}" in msg
    # an explicit path that does not exist names the field and the expected file
    with pytest.raises(InputError, match="backbone.weights"):
        build_tiny(name, weights=str(tmp_path / "nowhere.safetensors"))


def test_variants_select_size_and_weights():
    s = build_tiny("random-dinov2", variant="s")
    assert s.variant.arch.startswith("vit_small_patch14_dinov2") and s.info.weights.name == "dinov2_s"
    assert s.info.channels == 384 and s.cache_key()["model"] == "timm/vit_small_patch14_dinov2.lvd142m"
    assert build_tiny("random-dinov2_l").variant.arch.startswith("vit_large")
    assert build_tiny("random-radio_h").info.channels == 1280
    with pytest.raises(InputError, match="backbone.variant"):
        build_tiny("random-dinov2", variant="xl")


@pytest.mark.parametrize("name", ["dino", "clip", "mae", "dinov3"])
def test_unknown_architecture_override_is_an_input_error(name):
    with pytest.raises(InputError, match="backbone.arch_overrides"):
        build_backbone("random-" + name, arch_overrides={**TINY[name], "no_such_field": 3})
