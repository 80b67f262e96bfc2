"""MiDaS DPT-Large backbone (transformers DPT): pixel alignment, the official checkpoint layout
(``DPTForDepthEstimation``) and HF-cache loading."""

from __future__ import annotations

import torch
from transformers import DPTConfig, DPTForDepthEstimation

from backbones.common import HALF
from backbones.registry import build_backbone

from zoo_testlib import TINY, assert_roll_equivariant, build_tiny, normalise, random_images

#: config.json of Intel/dpt-large (as published; model fields)
INTEL_DPT_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                       hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       layer_norm_eps=1e-12, image_size=384, patch_size=16, num_channels=3, qkv_bias=True,
                       is_hybrid=False, backbone_out_indices=[5, 11, 17, 23], readout_type="project",
                       neck_hidden_sizes=[256, 512, 1024, 1024], reassemble_factors=[4, 2, 1, 0.5],
                       fusion_hidden_size=256, head_in_index=-1, use_batch_norm_in_fusion_residual=False,
                       use_auxiliary_head=True, auxiliary_loss_weight=0.4)


def test_tokens_follow_the_image_when_it_shifts():
    bb = build_tiny("random-midas")
    assert tuple(bb.mean) == tuple(HALF) == tuple(bb.std)
    assert_roll_equivariant(bb, lambda: bb.model.embeddings.position_embeddings.zero_())


def test_full_size_network_matches_the_official_checkpoint_layout():
    """Our network holds exactly the ``dpt.*`` tensors of DPT-Large (neck and head aside); block 23 is read."""
    with torch.device("meta"):
        ours = build_backbone("random-midas", device="meta")
        official = DPTForDepthEstimation(DPTConfig(**INTEL_DPT_LARGE))
    dpt = {k[len("dpt."):]: tuple(v.shape) for k, v in official.state_dict().items() if k.startswith("dpt.")}
    assert {k: tuple(v.shape) for k, v in ours.model.state_dict().items()} == dpt
    assert dpt["embeddings.position_embeddings"] == (1, 1 + 24 * 24, 1024) and ours.layers == [23]


def test_weights_load_from_the_hf_cache_and_reproduce_the_source_network(fake_hf_cache, tmp_path):
    torch.manual_seed(7)
    cfg = DPTConfig(**{**INTEL_DPT_LARGE, **TINY["midas"], "backbone_out_indices": [0, 1, 1, 1],
                       "neck_hidden_sizes": [8, 8, 16, 16], "fusion_hidden_size": 8})
    src = DPTForDepthEstimation(cfg).eval()
    src.save_pretrained(tmp_path / "saved")  # the published key layout (``dpt.encoder.layer.0.attention...``)
    fake_hf_cache(build_tiny("random-midas").info.weights,
                  {"model.safetensors": (tmp_path / "saved" / "model.safetensors").read_bytes()})

    bb = build_tiny("midas")
    img = random_images(2, 48, 96, seed=5)  # 3 x 6 tokens: DPT resizes its 4 x 4 position grid itself
    got = bb.extract(img).features
    with torch.no_grad():
        out = src.dpt(normalise(img, bb), output_hidden_states=True)
    want = out.hidden_states[-1][:, 1:].transpose(1, 2).reshape(2, 64, 3, 6)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - build_tiny("random-midas").extract(img).features).abs().max() > 1e-2
