"""C-RADIOv3 (timm NaFlexViT): pixel alignment, the official checkpoint layout, HF-cache loading."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from backbones.common import CLIP_MEAN, CLIP_STD
from backbones.registry import build_backbone

from zoo_testlib import TINY, assert_roll_equivariant, build_tiny, normalise, random_images


def test_tokens_follow_the_image_when_it_shifts():
    bb = build_tiny("random-radio")
    assert bb.model.num_prefix_tokens == 8  # 1 summary + 7 registers, all dropped
    assert_roll_equivariant(bb, lambda: bb.model.embeds.pos_embed.zero_())


def test_input_conditioning_is_radios_own():
    bb = build_tiny("random-radio")
    assert tuple(bb.mean) == tuple(CLIP_MEAN) and tuple(bb.std) == tuple(CLIP_STD)


@pytest.mark.parametrize("name,arch", [("radio", "naflexvit_base_patch16_radio_v3"),
                                       ("radio_h", "naflexvit_huge_patch16_radio_v3")])
def test_full_size_network_matches_the_official_checkpoint_layout(name, arch):
    """The timm Hub checkpoint keeps RADIO's 128x128 position grid (2048 px) and has no classifier."""
    with torch.device("meta"):
        ours = build_backbone("random-" + name, device="meta")
        official = timm.create_model(arch, pretrained=False, num_classes=0)
    shapes = {k: tuple(v.shape) for k, v in ours.model.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in official.state_dict().items()}
    assert shapes["embeds.pos_embed"][1:3] == (128, 128)


def test_weights_load_from_the_hf_cache_and_reproduce_the_source_network(fake_hf_cache):
    torch.manual_seed(7)
    src = timm.create_model("naflexvit_base_patch16_radio_v3", pretrained=False, num_classes=0,
                            **TINY["radio"]).eval()
    fake_hf_cache(build_tiny("random-radio").info.weights,
                  {"model.safetensors": lambda p: save_file(src.state_dict(), str(p))})

    bb = build_tiny("radio")
    img = random_images(2, 64, 96, seed=5)
    got = bb.extract(img).features
    with torch.no_grad():
        want = src.forward_intermediates(normalise(img, bb), indices=[1], norm=True, intermediates_only=True)[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - build_tiny("random-radio").extract(img).features).abs().max() > 1e-2
