"""VGGT encoder/decoder features: shapes, multi-view mixing, alignment, official key names, weight loading."""

import pytest
import torch
from safetensors.torch import save_file

from backbones.common import IMAGENET_MEAN, IMAGENET_STD
from backbones.checkpoint import load_strict
from backbones.registry import backbone_info, build_backbone
from backbones.vggt import VGGT_DECODER_KEYS, VGGT_HEAD_KEYS, VGGTConfig, VGGTTrunk
from feat2gs.errors import InputError, WeightsNotFoundError
from zoo_testlib import assert_roll_equivariant, random_images

TINY = dict(embed_dim=32, depth=2, num_heads=2, dino_depth=2, dino_heads=2, pos_grid=4)


def normalise(x):
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def tiny(variant, **kw):
    return build_backbone("random-vggt", arch_overrides=TINY, variant=variant, **kw)


def test_registry_info_and_default_input_size():
    info = backbone_info("vggt")
    assert (info.channels, info.patch, info.default_layer) == (2048, 14, -1)
    assert info.weights.repo_id == "facebook/VGGT-1B" and info.weights.filenames == ("model.safetensors",)
    # a 4:3 image gives the 518 x 392 input (37 x 28 tokens) of the reference, no crop
    assert tiny("dec").model_input_size(384, 512) == (392, 518)
    with pytest.raises(InputError, match="variant"):
        tiny("middle")


@pytest.mark.parametrize("variant,channels", [("dec", 64), ("enc", 32)])
def test_tiny_shapes_and_extent(variant, channels):
    x = random_images(3, 56, 84)
    fm = tiny(variant, input_size=84).extract(x)
    assert fm.features.shape == (3, channels, 4, 6)
    assert fm.extent == (0.0, 0.0, 84.0, 56.0)
    assert tiny(variant).cache_key()["variant"] == variant


def test_decoder_mixes_views_and_encoder_does_not():
    x = random_images(3, 56, 84, seed=1)
    y = x.clone()
    y[2] = random_images(1, 56, 84, seed=9)[0]  # change the last view only
    for variant, mixes in [("dec", True), ("enc", False)]:
        bb = tiny(variant, input_size=84)
        fx, fy = bb.extract(x).features, bb.extract(y).features
        assert torch.allclose(fx[:2], fy[:2], atol=1e-6) != mixes, variant
        assert not torch.allclose(fx[2], fy[2])
    # the first view is the reference frame: the same image gives different decoder features as view 0 or 1
    # (the random camera/register tokens are ~1e-6, so give them weight first)
    bb = tiny("dec", input_size=84)
    bb.model.aggregator.camera_token.data.normal_()
    bb.model.aggregator.register_token.data.normal_()
    f01 = bb.extract(x[[0, 1]]).features
    f10 = bb.extract(x[[1, 0]]).features
    assert not torch.allclose(f01[0], f10[1], atol=1e-5)


def test_all_views_run_in_one_forward():
    """Decoder features of 6 views (more than a batch) equal one aggregator pass over all of them."""
    bb = tiny("dec", input_size=84)
    x = random_images(6, 56, 84, seed=2)
    with torch.no_grad():
        ref = bb.model.aggregator(normalise(x), [1])[0]
    torch.testing.assert_close(bb.extract(x).features, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["dec", "enc"])
def test_token_grid_follows_a_shift_of_the_image(variant):
    """Exact plumbing check: without the DINOv2 position embedding and RoPE, the network is permutation-
    equivariant over the patch tokens of a view, so a circular shift by whole patches shifts the feature map
    by as many tokens (RoPE itself is tested in test_croco.py)."""
    bb = tiny(variant, input_size=84)

    def remove_position():
        agg = bb.model.aggregator
        agg.patch_embed.pos_embed.zero_()
        for blk in [] if variant == "enc" else list(agg.frame_blocks) + list(agg.global_blocks):
            blk.attn.rope = None

    assert_roll_equivariant(bb, remove_position)


# ------------------------------------------------------------------ official checkpoint layout
def block_shapes(p, C, qk_norm, heads=16):
    s = {p + "norm1.weight": (C,), p + "norm1.bias": (C,), p + "norm2.weight": (C,), p + "norm2.bias": (C,),
         p + "attn.qkv.weight": (3 * C, C), p + "attn.qkv.bias": (3 * C,), p + "attn.proj.weight": (C, C),
         p + "attn.proj.bias": (C,), p + "ls1.gamma": (C,), p + "ls2.gamma": (C,),
         p + "mlp.fc1.weight": (4 * C, C), p + "mlp.fc1.bias": (4 * C,), p + "mlp.fc2.weight": (C, 4 * C),
         p + "mlp.fc2.bias": (C,)}
    if qk_norm:
        s.update({p + f"attn.{n}_norm.{w}": (C // heads,) for n in "qk" for w in ("weight", "bias")})
    return s


def official_aggregator_shapes(C=1024):
    """``aggregator.*`` tensors of facebook/VGGT-1B as named by vggt/models/aggregator.py and the DINOv2
    layers of the vggt repository (written from that code)."""
    d = "aggregator.patch_embed."
    s = {d + "cls_token": (1, 1, C), d + "pos_embed": (1, 1 + 37 * 37, C), d + "register_tokens": (1, 4, C),
         d + "mask_token": (1, C), d + "patch_embed.proj.weight": (C, 3, 14, 14), d + "patch_embed.proj.bias": (C,),
         d + "norm.weight": (C,), d + "norm.bias": (C,),
         "aggregator.camera_token": (1, 2, 1, C), "aggregator.register_token": (1, 2, 4, C)}
    for i in range(24):
        s.update(block_shapes(f"{d}blocks.{i}.", C, qk_norm=False))
        s.update(block_shapes(f"aggregator.frame_blocks.{i}.", C, qk_norm=True))
        s.update(block_shapes(f"aggregator.global_blocks.{i}.", C, qk_norm=True))
    return s


#: a sample of the head tensors of the official checkpoint (ignored by the loader)
OFFICIAL_HEAD_SAMPLE = {"camera_head.trunk.0.attn.qkv.weight": (6144, 2048), "depth_head.projects.0.weight":
                        (256, 2048, 1, 1), "point_head.scratch.output_conv2.2.bias": (4,),
                        "track_head.feature_extractor.norm.weight": (2048,)}


def meta_state(shapes):
    return {k: torch.empty(v, device="meta") for k, v in shapes.items()}


@pytest.mark.parametrize("variant", ["dec", "enc"])
def test_official_size_model_has_the_official_key_names_and_shapes(variant):
    with torch.device("meta"):
        model = VGGTTrunk(VGGTConfig(), encoder_only=variant == "enc")
    expected = official_aggregator_shapes()
    if variant == "enc":
        expected = {k: v for k, v in expected.items() if not k.startswith(VGGT_DECODER_KEYS)}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    ignore = VGGT_HEAD_KEYS + (VGGT_DECODER_KEYS if variant == "enc" else ())
    full = meta_state({**official_aggregator_shapes(), **OFFICIAL_HEAD_SAMPLE})
    load_strict(model, full, keep=("aggregator.",), ignore=ignore, source="official")
    drop = "aggregator.global_blocks.23.attn.k_norm.bias" if variant == "dec" else "aggregator.patch_embed.norm.bias"
    with pytest.raises(InputError, match="missing"):
        load_strict(model, {k: v for k, v in full.items() if k != drop}, keep=("aggregator.",), ignore=ignore,
                    source="official")
    with pytest.raises(InputError, match="unexpected"):
        load_strict(model, {**full, "aggregator.pose_token": torch.empty(1, device="meta")}, keep=("aggregator.",),
                    ignore=ignore, source="official")


def tiny_checkpoint(seed=11):
    torch.manual_seed(seed)
    trunk = VGGTTrunk(VGGTConfig(**TINY)).eval()
    for p in trunk.parameters():
        p.data.normal_(0, 0.2)
    state = {**trunk.state_dict(), "camera_head.trunk.0.attn.qkv.weight": torch.ones(6, 2),
             "depth_head.projects.0.weight": torch.ones(3, 2, 1, 1)}
    return trunk, {k: v.contiguous() for k, v in state.items()}


def test_weights_load_from_the_hf_cache(fake_hf_cache):
    trunk, state = tiny_checkpoint()
    fake_hf_cache(backbone_info("vggt").weights, {"model.safetensors": lambda p: save_file(state, str(p))})
    x = random_images(5, 56, 84, seed=4)
    with torch.no_grad():
        ref_dec = trunk.aggregator(normalise(x), [1])[0]
        ref_enc = trunk.aggregator.patch_embed(normalise(x), [1])[0][0].transpose(1, 2).reshape(5, 32, 4, 6)
    for variant, ref in [("dec", ref_dec), ("enc", ref_enc)]:
        fm = build_backbone("vggt", arch_overrides=TINY, variant=variant, input_size=84).extract(x)
        torch.testing.assert_close(fm.features, ref, atol=1e-5, rtol=1e-5)
        rand = tiny(variant, input_size=84).extract(x).features
        assert (fm.features - rand).abs().mean() > 0.1


def test_missing_weights_name_the_model_and_the_fetch_command(fake_hf_cache):
    with pytest.raises(WeightsNotFoundError) as e:
        build_backbone("vggt", arch_overrides=TINY)
    assert "facebook/VGGT-1B" in str(e.value) and "feat2gs weights fetch vggt" in str(e.value)
