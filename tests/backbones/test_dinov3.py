"""DINOv3 ViT-B/16 (transformers): pixel alignment, the official checkpoint layout, HF-cache and explicit-path
loading, and strict errors for a checkpoint that does not match."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from backbones.registry import build_backbone
from feat2gs.errors import InputError

from zoo_testlib import TINY, assert_roll_equivariant, build_tiny, normalise, random_images

#: config.json of facebook/dinov3-vitb16-pretrain-lvd1689m
FB_DINOV3_B16 = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                     hidden_act="gelu", layer_norm_eps=1e-5, image_size=224, patch_size=16, num_channels=3,
                     num_register_tokens=4, layerscale_value=1.0, rope_theta=100.0, query_bias=True,
                     key_bias=False, value_bias=True, proj_bias=True, mlp_bias=True, use_gated_mlp=False,
                     pos_embed_rescale=2.0)


def test_tokens_follow_the_image_when_it_shifts():
    """RoPE is removed by zeroing its frequencies (every rotation becomes the identity)."""
    bb = build_tiny("random-dinov3")
    assert bb.num_prefix == 5  # CLS + 4 registers dropped
    assert_roll_equivariant(bb, lambda: bb.model.rope_embeddings.inv_freq.zero_())


def test_full_size_network_matches_the_official_checkpoint_layout():
    """The published checkpoint holds 211 tensors (12 blocks without a key bias)."""
    with torch.device("meta"):
        ours = build_backbone("random-dinov3", device="meta")
        official = DINOv3ViTModel(DINOv3ViTConfig(**FB_DINOV3_B16))
    shapes = {k: tuple(v.shape) for k, v in ours.model.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in official.state_dict().items()}
    assert len(shapes) == 211 and shapes["embeddings.register_tokens"] == (1, 4, 768) and ours.layers == [11]


@pytest.fixture()
def saved_tiny(fake_hf_cache, tmp_path):
    """A tiny DINOv3 saved by transformers (the published key layout) into a fake HF cache."""
    torch.manual_seed(7)
    src = DINOv3ViTModel(DINOv3ViTConfig(**{**FB_DINOV3_B16, **TINY["dinov3"]})).eval()
    src.save_pretrained(tmp_path / "saved")
    snap = fake_hf_cache(build_tiny("random-dinov3").info.weights,
                         {"model.safetensors": (tmp_path / "saved" / "model.safetensors").read_bytes()})
    assert "layer.0.norm1.weight" in load_file(str(snap / "model.safetensors"))
    return src, snap / "model.safetensors"


def test_weights_load_from_the_hf_cache_and_reproduce_the_source_network(saved_tiny, tmp_path):
    src, path = saved_tiny
    img = random_images(2, 64, 96, seed=5)
    bb = build_tiny("dinov3")
    got = bb.extract(img).features
    with torch.no_grad():
        want = src(normalise(img, bb)).last_hidden_state[:, 5:].transpose(1, 2).reshape(2, 64, 4, 6)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - build_tiny("random-dinov3").extract(img).features).abs().max() > 1e-2
    # the same weights from an explicit file with another name (backbone.weights=PATH)
    other = tmp_path / "my-dinov3.safetensors"
    shutil.copy(path, other)
    torch.testing.assert_close(build_tiny("dinov3", weights=str(other)).extract(img).features, got)


def test_a_mismatching_checkpoint_is_an_error_naming_the_file_and_keys(saved_tiny, tmp_path):
    _, path = saved_tiny
    state = load_file(str(path))
    state.pop("layer.1.norm2.weight")
    state["layer.1.extra.weight"] = torch.zeros(3)
    state["embeddings.cls_token"] = torch.zeros(1, 1, 32)  # wrong width
    bad = tmp_path / "bad" / "model.safetensors"
    bad.parent.mkdir()
    save_file(state, str(bad))
    with pytest.raises(InputError) as e:
        build_tiny("dinov3", weights=str(bad))
    msg = str(e.value)
    assert str(bad) in msg and "norm2.weight" in msg and "extra.weight" in msg and "cls_token" in msg
