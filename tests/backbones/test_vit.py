"""The plain ViT-B/16 (``vit`` / ``random-vit``): a ``TimmBackbone`` loading the timm checkpoint strictly."""

import pytest
import timm
import torch
from safetensors.torch import save_file

from backbones.registry import backbone_info, build_backbone
from backbones.tiny import TINY_OVERRIDES
from feat2gs.errors import InputError

from zoo_testlib import random_images

TINY = TINY_OVERRIDES["vit"]


def tiny_checkpoint(seed=3):
    """A tiny timm ViT with its 1000-way classifier, saved as the Hub's model.safetensors would be."""
    torch.manual_seed(seed)
    src = timm.create_model("vit_base_patch16_224", pretrained=False, dynamic_img_size=True, **TINY).eval()
    return src, {k: v.contiguous() for k, v in src.state_dict().items()}


def test_loads_strictly_ignoring_only_the_classifier(fake_hf_cache):
    src, state = tiny_checkpoint()
    assert "head.weight" in state
    snap = fake_hf_cache(backbone_info("vit").weights, {"model.safetensors": lambda p: save_file(state, str(p))})
    bb = build_backbone("vit", arch_overrides=TINY)
    x = random_images(1, 48, 64)
    with torch.no_grad():
        ref = src.forward_intermediates((x - 0.5) / 0.5, indices=[1], norm=False, intermediates_only=True,
                                       output_fmt="NCHW")[0]
    torch.testing.assert_close(bb.extract(x).features, ref, atol=1e-5, rtol=1e-5)
    assert bb.cache_key()["weights_file"]["path"].endswith("model.safetensors")
    # any other key that does not match is an error naming the file
    for broken, what in [({**state, "extra.weight": torch.zeros(2)}, "unexpected keys"),
                         ({k: v for k, v in state.items() if k != "blocks.1.mlp.fc2.bias"}, "missing keys")]:
        save_file(broken, str(snap / "model.safetensors"))
        with pytest.raises(InputError, match=f"model.safetensors.*{what}"):
            build_backbone("vit", arch_overrides=TINY)


def test_random_control_and_options():
    bb = build_backbone("random-vit", arch_overrides=TINY, layer=[-1, 0])
    assert (bb.patch, bb.num_layers, bb.layers) == (16, 2, [1, 0])
    assert bb.extract(random_images(2, 48, 64)).features.shape == (2, 128, 3, 4)
    assert backbone_info("vit").channels == 768 and bb.info.weights.repo_id.startswith("timm/vit_base_patch16_224")
