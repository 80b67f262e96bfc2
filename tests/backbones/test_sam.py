"""SAM ViT-B image encoder (timm): pixel alignment, the official checkpoint layout, HF-cache loading."""

from __future__ import annotations

import timm
import torch
from safetensors.torch import save_file

from backbones.registry import build_backbone

from zoo_testlib import TINY, assert_roll_equivariant, build_tiny, normalise, random_images


def _remove_position(model):
    """Zero SAM's absolute embedding and the relative-position tables of every attention block."""
    n = 0
    for name, p in model.named_parameters():
        if name == "pos_embed" or "rel_pos" in name:
            p.zero_()
            n += 1
    assert n == 1 + 2 * len(model.blocks)


def test_tokens_follow_the_image_when_it_shifts():
    """Shifts are whole attention windows (window 2 in the tiny config), so windowing commutes with them."""
    bb = build_tiny("random-sam")
    assert bb.model.blocks[0].window_size == 2
    assert_roll_equivariant(bb, lambda: _remove_position(bb.model), grid=(4, 6), shift=(2, 4))


def test_features_are_the_blocks_before_the_neck():
    bb = build_tiny("random-sam")
    fm = bb.extract(random_images(1, 64, 64))
    assert fm.channels == TINY["sam"]["embed_dim"]  # the neck would give neck_chans (16)


def test_full_size_network_matches_the_official_checkpoint_layout():
    with torch.device("meta"):
        ours = build_backbone("random-sam", device="meta")
        official = timm.create_model("samvit_base_patch16", pretrained=False, num_classes=0)
    shapes = {k: tuple(v.shape) for k, v in ours.model.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in official.state_dict().items()}
    assert shapes["pos_embed"] == (1, 64, 64, 768) and ours.layers == [11]


def test_weights_load_from_the_hf_cache_and_reproduce_the_source_network(fake_hf_cache):
    torch.manual_seed(7)
    src = timm.create_model("samvit_base_patch16", pretrained=False, num_classes=0, **TINY["sam"]).eval()
    fake_hf_cache(build_tiny("random-sam").info.weights,
                  {"model.safetensors": lambda p: save_file(src.state_dict(), str(p))})

    bb = build_tiny("sam")
    img = random_images(2, 64, 96, seed=5)
    got = bb.extract(img).features
    with torch.no_grad():
        want = src.forward_intermediates(normalise(img, bb), indices=[1], norm=False, intermediates_only=True)[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - build_tiny("random-sam").extract(img).features).abs().max() > 1e-2
