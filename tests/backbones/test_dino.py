"""DINO ViT-B/16 (timm): pixel alignment, the official checkpoint layout, and loading through the HF cache."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from backbones.registry import build_backbone
from feat2gs.errors import InputError

from zoo_testlib import TINY, assert_roll_equivariant, build_tiny, normalise, random_images


def test_tokens_follow_the_image_when_it_shifts():
    bb = build_tiny("random-dino")
    assert_roll_equivariant(bb, lambda: bb.model.pos_embed.zero_())


def test_full_size_network_matches_the_official_checkpoint_layout():
    with torch.device("meta"):
        ours = build_backbone("random-dino", device="meta")
        official = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)
    assert {k: tuple(v.shape) for k, v in ours.model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in official.state_dict().items()}
    assert ours.layers == [11] and ours.patch == 16


def test_weights_load_from_the_hf_cache_and_reproduce_the_source_network(fake_hf_cache):
    torch.manual_seed(7)
    src = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, dynamic_img_size=True,
                            **TINY["dino"]).eval()
    fake_hf_cache(build_tiny("random-dino").info.weights,
                  {"model.safetensors": lambda p: save_file(src.state_dict(), str(p))})

    bb = build_tiny("dino")
    img = random_images(2, 64, 96, seed=5)
    got = bb.extract(img).features
    with torch.no_grad():
        want = src.forward_intermediates(normalise(img, bb), indices=[1], norm=False, intermediates_only=True)[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - build_tiny("random-dino").extract(img).features).abs().max() > 1e-2


def test_a_mismatching_checkpoint_is_an_error_naming_the_file_and_keys(tmp_path):
    torch.manual_seed(7)
    state = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, **TINY["dino"]).state_dict()
    state.pop("blocks.1.norm1.bias")
    state["blocks.1.extra"] = torch.zeros(2)
    state["pos_embed"] = torch.zeros(1, 5, 64)  # wrong grid
    path = tmp_path / "dino.safetensors"
    save_file(state, str(path))
    with pytest.raises(InputError) as e:
        build_tiny("dino", weights=str(path))
    msg = str(e.value)
    assert str(path) in msg and "blocks.1.norm1.bias" in msg and "blocks.1.extra" in msg and "pos_embed" in msg
