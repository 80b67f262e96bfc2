"""MAE ViT-B/16 encoder (transformers): no masking/shuffling, regenerated sin-cos, the official checkpoint
layout (``ViTMAEForPreTraining``, pytorch_model.bin in transformers' older key layout) and HF-cache loading."""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from transformers import ViTMAEConfig, ViTMAEForPreTraining
from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

from backbones.mae import mae_sincos_2d
from backbones.registry import build_backbone

from zoo_testlib import TINY, assert_roll_equivariant, build_tiny, normalise, random_images

#: config.json of facebook/vit-mae-base, as published
FB_VIT_MAE_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                       hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       layer_norm_eps=1e-12, image_size=224, patch_size=16, num_channels=3, qkv_bias=True,
                       decoder_hidden_size=512, decoder_num_hidden_layers=8, decoder_num_attention_heads=16,
                       decoder_intermediate_size=2048, mask_ratio=0.75, norm_pix_loss=False)


def test_tokens_follow_the_image_when_it_shifts(monkeypatch):
    """Also proves that no token shuffling happens (a random permutation would break the shift)."""
    bb = build_tiny("random-mae")
    assert_roll_equivariant(bb, lambda: monkeypatch.setattr(bb, "position_embedding",
                                                            lambda h, w, d: torch.zeros(h * w, d)))


def mae_table(grid: int, dim: int) -> torch.Tensor:
    """MAE's pre-training table as transformers builds it: canonical [h | w] halves, then swapped to the
    original MAE layout ([w | h], "a variable naming bug" of the official code that the weights rely on)."""
    t = build_2d_sinusoidal_position_embedding(grid, grid, dim, cls_token=True)
    return torch.cat([t[:, dim // 2:], t[:, :dim // 2]], dim=1)


def test_sincos_matches_the_pretraining_table_and_is_oriented():
    """At the pre-training grid our regenerated table equals MAE's own (the table transformers builds and the
    checkpoint stores); on a non-square grid the first half depends on the column only."""
    table = mae_table(14, 768)
    torch.testing.assert_close(mae_sincos_2d(14, 14, 768), table[1:], atol=1e-6, rtol=0)
    pe = mae_sincos_2d(3, 5, 16).reshape(3, 5, 16)
    torch.testing.assert_close(pe[..., :8], pe[:1, :, :8].expand(3, 5, 8))  # column part, same on every row
    torch.testing.assert_close(pe[..., 8:], pe[:, :1, 8:].expand(3, 5, 8))  # row part, same on every column
    torch.testing.assert_close(pe[0, 2, 0], torch.sin(torch.tensor(2.0)))  # sin(x * omega_0), omega_0 = 1


def test_full_size_network_matches_the_official_checkpoint_layout():
    """Our encoder holds exactly the ``vit.*`` tensors of the official ViTMAEForPreTraining (decoder aside)."""
    with torch.device("meta"):
        ours = build_backbone("random-mae", device="meta")
        official = ViTMAEForPreTraining(ViTMAEConfig(**FB_VIT_MAE_BASE))
    enc = {k[len("vit."):]: tuple(v.shape) for k, v in official.state_dict().items() if k.startswith("vit.")}
    assert {k: tuple(v.shape) for k, v in ours.model.state_dict().items()} == enc
    assert all(k.startswith(("vit.", "decoder.")) for k in official.state_dict())
    assert ours.layers == [11]


def test_weights_load_from_the_hf_cache_and_reproduce_the_source_network(fake_hf_cache, tmp_path):
    torch.manual_seed(7)
    cfg = ViTMAEConfig(**{**FB_VIT_MAE_BASE, **TINY["mae"], "mask_ratio": 0.0, "decoder_hidden_size": 32,
                          "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 2,
                          "decoder_intermediate_size": 64})
    src = ViTMAEForPreTraining(cfg).eval()
    with torch.no_grad():  # the fixed table as in the published checkpoint (a fresh model may leave it zero)
        src.vit.embeddings.position_embeddings.copy_(mae_table(4, 64)[None])
    src.save_pretrained(tmp_path / "saved")
    state = load_file(str(tmp_path / "saved" / "model.safetensors"))
    assert "vit.encoder.layer.0.attention.attention.query.weight" in state  # the published key layout
    spec = build_tiny("random-mae").info.weights
    assert spec.filenames == ("pytorch_model.bin",)
    fake_hf_cache(spec, {"pytorch_model.bin": lambda p: torch.save(state, p)})

    img = random_images(2, 64, 64, seed=5)  # the tiny pre-training grid (4 x 4)
    got = build_tiny("mae", layer=[-1, -2]).extract(img).features
    with torch.no_grad():  # MAE itself, all tokens kept, noise = identity order
        out = src.vit(normalise(img, build_tiny("random-mae")), noise=torch.arange(16.0).expand(2, 16),
                      output_hidden_states=True)
    want = [h[:, 1:].transpose(1, 2).reshape(2, 64, 4, 4) for h in (out.hidden_states[-1], out.hidden_states[-2])]
    torch.testing.assert_close(got, torch.cat(want, dim=1), atol=1e-5, rtol=1e-5)
    assert (got[:, :64] - build_tiny("random-mae").extract(img).features).abs().max() > 1e-2
