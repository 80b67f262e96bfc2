"""DUSt3R / MASt3R encoder: RoPE maths, shapes, pixel alignment, official key names, weight loading."""

import argparse
import math

import pytest
import torch
from safetensors.torch import save_file

from backbones.checkpoint import load_strict, read_checkpoint
from backbones.croco import CROCO_DECODER_KEYS, CroCoConfig, CroCoEncoder
from backbones.vit_blocks import RoPE2D
from backbones.registry import backbone_info, build_backbone
from feat2gs.errors import InputError, WeightsNotFoundError
from zoo_testlib import assert_roll_equivariant, random_images

TINY = dict(embed_dim=32, depth=2, num_heads=2)


def test_rope_matches_explicit_pair_rotation():
    D, base = 16, 100.0
    x = torch.randn(2, 3, 5, D)
    pos = torch.randint(0, 9, (2, 5, 2))
    out = RoPE2D(base)(x, pos)
    ref = x.clone()
    d = D // 2
    for axis in range(2):  # first half rotated by y, second by x
        for k in range(d // 2):
            theta = pos[..., axis].double()[:, None, :] * base ** (-2 * k / d)
            i, j = axis * d + k, axis * d + k + d // 2
            a, b = x[..., i].double(), x[..., j].double()
            ref[..., i] = (a * theta.cos() - b * theta.sin()).float()
            ref[..., j] = (b * theta.cos() + a * theta.sin()).float()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    rope = RoPE2D(100.0)
    q, k = torch.randn(1, 2, 6, 32), torch.randn(1, 2, 6, 32)
    pos = torch.randint(0, 20, (1, 6, 2))
    s0 = rope(q, pos) @ rope(k, pos).transpose(-1, -2)
    s1 = rope(q, pos + torch.tensor([7, 3])) @ rope(k, pos + torch.tensor([7, 3])).transpose(-1, -2)
    torch.testing.assert_close(s0, s1, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(s0, q @ k.transpose(-1, -2), atol=1e-2)  # RoPE does change the scores


@pytest.mark.parametrize("name", ["dust3r", "mast3r"])
def test_registry_info(name):
    info = backbone_info(name)
    assert (info.channels, info.patch, info.default_layer) == (1024, 16, -1)
    assert info.weights.repo_id.startswith("naver/") and info.weights.filenames == ("model.safetensors",)
    assert backbone_info("random-" + name).weights is None


def test_tiny_shape_extent_and_seeded_random_weights():
    x = random_images(1, 64, 96).expand(2, -1, -1, -1).contiguous()
    b = build_backbone("random-dust3r", arch_overrides=TINY, input_size=96)
    fm = b.extract(x)
    assert fm.features.shape == (2, 32, 4, 6)
    assert fm.extent == (0.0, 0.0, 96.0, 64.0) and fm.meta["input_size"] == (64, 96)
    # last block output goes through enc_norm: per-token zero mean, unit variance across channels
    torch.testing.assert_close(fm.features.mean(1), torch.zeros(2, 4, 6), atol=1e-4, rtol=0)
    same = build_backbone("random-dust3r", arch_overrides=TINY, input_size=96).extract(x).features
    other = build_backbone("random-dust3r", arch_overrides=TINY, input_size=96, seed=1).extract(x).features
    assert torch.equal(fm.features, same) and not torch.allclose(fm.features, other)
    # default input: long side 512, both sides multiples of 16
    assert build_backbone("random-dust3r", arch_overrides=TINY).model_input_size(300, 400) == (384, 512)


def test_token_grid_follows_a_shift_of_the_image():
    """Exact plumbing check: without RoPE the encoder is permutation-equivariant over its patch tokens, so a
    circular shift of the image by whole patches shifts the feature map by as many tokens. (With RoPE the
    attention depends only on relative positions -- test above -- so the real encoder is equivariant up to
    borders.)"""
    bb = build_backbone("random-dust3r", arch_overrides=TINY, input_size=96)

    def remove_rope():
        for blk in bb.model.enc_blocks:
            blk.attn.rope = None

    assert_roll_equivariant(bb, remove_rope)


def test_portrait_images_are_encoded_as_their_landscape_transpose():
    img = random_images(1, 96, 64, seed=5)  # portrait
    bb = build_backbone("random-dust3r", arch_overrides=TINY, input_size=96)
    fm = bb.extract(img)
    assert fm.features.shape == (1, 32, 6, 4) and fm.extent == (0.0, 0.0, 64.0, 96.0)
    land = bb.extract(img.transpose(-1, -2).contiguous()).features
    torch.testing.assert_close(fm.features, land.transpose(-1, -2))


# ------------------------------------------------------------------ official checkpoint layout
def official_encoder_shapes(C=1024, depth=24, patch=16):
    """Encoder tensors of AsymmetricCroCo3DStereo(enc_embed_dim=1024, enc_depth=24, enc_num_heads=16,
    pos_embed='RoPE100') as named in naver/croco models/croco.py + blocks.py (written from that code)."""
    s = {"patch_embed.proj.weight": (C, 3, patch, patch), "patch_embed.proj.bias": (C,),
         "enc_norm.weight": (C,), "enc_norm.bias": (C,)}
    for i in range(depth):
        p = f"enc_blocks.{i}."
        s.update({p + "norm1.weight": (C,), p + "norm1.bias": (C,), p + "norm2.weight": (C,), p + "norm2.bias": (C,),
                  p + "attn.qkv.weight": (3 * C, C), p + "attn.qkv.bias": (3 * C,),
                  p + "attn.proj.weight": (C, C), p + "attn.proj.bias": (C,),
                  p + "mlp.fc1.weight": (4 * C, C), p + "mlp.fc1.bias": (4 * C,),
                  p + "mlp.fc2.weight": (C, 4 * C), p + "mlp.fc2.bias": (C,)})
    return s


#: a sample of the decoder / head tensors of the official DUSt3R checkpoint (ignored by the loader)
OFFICIAL_DECODER_SAMPLE = {"mask_token": (1, 1, 768), "decoder_embed.weight": (768, 1024),
                           "dec_blocks.0.cross_attn.projq.weight": (768, 768), "dec_blocks2.11.norm_y.bias": (768,),
                           "dec_norm.weight": (768,), "downstream_head1.dpt.head.0.weight": (128, 256, 3, 3),
                           "downstream_head2.dpt.act_postprocess.0.0.weight": (96, 1024, 1, 1)}


def meta_state(shapes):
    return {k: torch.empty(v, device="meta") for k, v in shapes.items()}


def test_official_size_encoder_has_the_official_key_names_and_shapes():
    with torch.device("meta"):
        model = CroCoEncoder(CroCoConfig())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_encoder_shapes()
    assert sum(math.prod(v) for v in ours.values()) == 303_098_880  # ViT-L/16 encoder + final norm

    full = meta_state({**official_encoder_shapes(), **OFFICIAL_DECODER_SAMPLE})
    load_strict(model, full, keep=("patch_embed.", "enc_blocks.", "enc_norm."), ignore=CROCO_DECODER_KEYS,
                source="official")
    for broken, what in [({k: v for k, v in full.items() if k != "enc_blocks.7.mlp.fc2.bias"}, "missing"),
                         ({**full, "enc_pos_embed": torch.empty(4, 1024, device="meta")}, "unexpected"),
                         ({**full, "enc_norm.weight": torch.empty(768, device="meta")}, "shape")]:
        with pytest.raises(InputError, match=what):
            load_strict(model, broken, keep=("patch_embed.", "enc_blocks.", "enc_norm."),
                        ignore=CROCO_DECODER_KEYS, source="official")


def tiny_checkpoint(seed=7):
    """A tiny encoder with seeded weights and a state dict laid out like the official checkpoint."""
    torch.manual_seed(seed)
    enc = CroCoEncoder(CroCoConfig(**TINY)).eval()
    for p in enc.parameters():
        p.data.normal_(0, 0.2)
    state = {**enc.state_dict(), "mask_token": torch.zeros(1, 1, 8), "dec_blocks.0.attn.qkv.weight": torch.ones(24, 8),
             "downstream_head1.dpt.head.0.weight": torch.ones(2, 2)}
    return enc, {k: v.contiguous() for k, v in state.items()}


@pytest.mark.parametrize("name", ["dust3r", "mast3r"])
def test_weights_load_from_the_hf_cache(name, fake_hf_cache):
    enc, state = tiny_checkpoint()
    spec = backbone_info(name).weights
    fake_hf_cache(spec, {"model.safetensors": lambda p: save_file(state, str(p))})
    x = random_images(1, 64, 96, seed=2)
    fm = build_backbone(name, arch_overrides=TINY, input_size=96).extract(x)
    with torch.no_grad():
        ref = enc((x - 0.5) / 0.5, [TINY["depth"] - 1])[0]
    torch.testing.assert_close(fm.features, ref, atol=1e-5, rtol=1e-5)
    rand = build_backbone("random-" + name, arch_overrides=TINY, input_size=96).extract(x).features
    assert (fm.features - rand).abs().mean() > 0.1


def test_training_checkpoint_pth_via_explicit_path(tmp_path):
    enc, state = tiny_checkpoint()
    path = tmp_path / "DUSt3R_tiny.pth"
    torch.save({"model": state, "args": argparse.Namespace(model="AsymmetricCroCo3DStereo(...)")}, path)
    assert set(read_checkpoint(path)) == set(state)
    x = random_images(1, 64, 96, seed=4)
    fm = build_backbone("dust3r", arch_overrides=TINY, input_size=96, weights=str(path)).extract(x)
    with torch.no_grad():
        torch.testing.assert_close(fm.features, enc((x - 0.5) / 0.5, [1])[0], atol=1e-5, rtol=1e-5)


def test_wrong_architecture_is_a_clear_error(fake_hf_cache):
    _, state = tiny_checkpoint()
    fake_hf_cache(backbone_info("dust3r").weights, {"model.safetensors": lambda p: save_file(state, str(p))})
    with pytest.raises(InputError, match="missing keys"):
        build_backbone("dust3r", arch_overrides=dict(TINY, depth=3))


@pytest.mark.parametrize("name", ["dust3r", "mast3r"])
def test_missing_weights_name_the_model_and_the_fetch_command(name, fake_hf_cache):
    with pytest.raises(WeightsNotFoundError) as e:
        build_backbone(name, arch_overrides=TINY)
    msg = str(e.value)
    assert backbone_info(name).weights.repo_id in msg and f"feat2gs weights fetch {name}" in msg


def test_unknown_architecture_field_is_an_input_error():
    with pytest.raises(InputError, match="arch_overrides"):
        build_backbone("random-dust3r", arch_overrides=dict(TINY, width=3))
