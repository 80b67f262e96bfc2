"""DINOv2 (timm): pixel alignment, the official checkpoint layout, and loading through the HF cache."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from backbones.registry import build_backbone

from zoo_testlib import TINY, assert_roll_equivariant, build_tiny, normalise, random_images


def test_tokens_follow_the_image_when_it_shifts():
    bb = build_tiny("random-dinov2")
    assert bb.patch == 14
    assert_roll_equivariant(bb, lambda: bb.model.pos_embed.zero_())


@pytest.mark.parametrize("name,arch", [("dinov2", "vit_base_patch14_dinov2"), ("dinov2_g", "vit_giant_patch14_dinov2")])
def test_full_size_network_matches_the_official_checkpoint_layout(name, arch):
    """Our full-size network has exactly the tensors (names, shapes) of the timm Hub checkpoint, which timm
    saves from ``<arch>`` at the 518x518 pre-training size without a classifier (its config.json)."""
    with torch.device("meta"):
        ours = build_backbone("random-" + name, device="meta")
        official = timm.create_model(arch, pretrained=False, num_classes=0, img_size=518)
    shapes = {k: tuple(v.shape) for k, v in ours.model.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in official.state_dict().items()}
    assert ours.num_layers == len(official.blocks) and ours.layers == [len(official.blocks) - 1]
    if name == "dinov2":
        assert shapes["pos_embed"] == (1, 1 + 37 * 37, 768) and ours.layers == [11]


def test_weights_load_from_the_hf_cache_and_reproduce_the_source_network(fake_hf_cache):
    torch.manual_seed(7)
    src = timm.create_model("vit_base_patch14_dinov2", pretrained=False, num_classes=0, dynamic_img_size=True,
                            **TINY["dinov2"]).eval()
    spec = build_tiny("random-dinov2").info.weights
    fake_hf_cache(spec, {"model.safetensors": lambda p: save_file(src.state_dict(), str(p))})

    bb = build_tiny("dinov2")
    img = random_images(2, 56, 84, seed=5)  # 4 x 6 patches: no resize
    got = bb.extract(img).features
    with torch.no_grad():
        want = src.forward_intermediates(normalise(img, bb), indices=[1], norm=False, intermediates_only=True)[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - build_tiny("random-dinov2").extract(img).features).abs().max() > 1e-2
