"""DUSt3R / MASt3R two-view networks: official key names and shapes (from the released configs), strict
loading (aliases, missing dec_blocks2, wrong keys), post-processing, tiny random-weight inference."""

import pytest
import torch
from safetensors.torch import save_file

from backbones.croco import CroCoEncoder
from backbones.croco_stereo import (DUST3R_512_DPT, DUST3R_512_LINEAR, MAST3R_512_METRIC, StereoConfig, StereoModel,
                                    build_stereo_model, load_stereo_state, postprocess)
from feat2gs.errors import InputError, WeightsNotFoundError

TINY = dict(embed_dim=32, depth=2, num_heads=2, dec_embed_dim=24, dec_depth=4, dec_num_heads=2,
            dpt_layer_dims=(8, 8, 16, 16), dpt_feature_dim=16)


def _shapes(cfg):
    with torch.device("meta"):
        m = StereoModel(cfg)
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


# The official layout, written out from AsymmetricCroCo3DStereo(enc_embed_dim=1024, enc_depth=24,
# enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12, head_type='dpt', patch_size=16) and the
# DPT adapter of dust3r/heads/dpt_head.py (layer_dims 96/192/384/768, feature_dim 256, last_dim 128, 4 channels).
ENC_BLOCK = {"norm1.weight": (1024,), "norm1.bias": (1024,), "attn.qkv.weight": (3072, 1024),
             "attn.qkv.bias": (3072,), "attn.proj.weight": (1024, 1024), "attn.proj.bias": (1024,),
             "norm2.weight": (1024,), "norm2.bias": (1024,), "mlp.fc1.weight": (4096, 1024), "mlp.fc1.bias": (4096,),
             "mlp.fc2.weight": (1024, 4096), "mlp.fc2.bias": (1024,)}
DEC_BLOCK = {"norm1.weight": (768,), "norm1.bias": (768,), "attn.qkv.weight": (2304, 768), "attn.qkv.bias": (2304,),
             "attn.proj.weight": (768, 768), "attn.proj.bias": (768,),
             **{f"cross_attn.{n}.{p}": (768, 768) if p == "weight" else (768,)
                for n in ("projq", "projk", "projv", "proj") for p in ("weight", "bias")},
             "norm2.weight": (768,), "norm2.bias": (768,), "norm3.weight": (768,), "norm3.bias": (768,),
             "mlp.fc1.weight": (3072, 768), "mlp.fc1.bias": (3072,), "mlp.fc2.weight": (768, 3072),
             "mlp.fc2.bias": (768,), "norm_y.weight": (768,), "norm_y.bias": (768,)}
DPT = {"act_postprocess.0.0.weight": (96, 1024, 1, 1), "act_postprocess.0.0.bias": (96,),
       "act_postprocess.0.1.weight": (96, 96, 4, 4), "act_postprocess.0.1.bias": (96,),
       "act_postprocess.1.0.weight": (192, 768, 1, 1), "act_postprocess.1.0.bias": (192,),
       "act_postprocess.1.1.weight": (192, 192, 2, 2), "act_postprocess.1.1.bias": (192,),
       "act_postprocess.2.0.weight": (384, 768, 1, 1), "act_postprocess.2.0.bias": (384,),
       "act_postprocess.3.0.weight": (768, 768, 1, 1), "act_postprocess.3.0.bias": (768,),
       "act_postprocess.3.1.weight": (768, 768, 3, 3), "act_postprocess.3.1.bias": (768,),
       "scratch.layer1_rn.weight": (256, 96, 3, 3), "scratch.layer2_rn.weight": (256, 192, 3, 3),
       "scratch.layer3_rn.weight": (256, 384, 3, 3), "scratch.layer4_rn.weight": (256, 768, 3, 3),
       **{f"scratch.refinenet{k}.{n}": s for k in range(1, 5) for n, s in (
           ("out_conv.weight", (256, 256, 1, 1)), ("out_conv.bias", (256,)),
           ("resConfUnit1.conv1.weight", (256, 256, 3, 3)), ("resConfUnit1.conv1.bias", (256,)),
           ("resConfUnit1.conv2.weight", (256, 256, 3, 3)), ("resConfUnit1.conv2.bias", (256,)),
           ("resConfUnit2.conv1.weight", (256, 256, 3, 3)), ("resConfUnit2.conv1.bias", (256,)),
           ("resConfUnit2.conv2.weight", (256, 256, 3, 3)), ("resConfUnit2.conv2.bias", (256,)))},
       "head.0.weight": (128, 256, 3, 3), "head.0.bias": (128,), "head.2.weight": (128, 128, 3, 3),
       "head.2.bias": (128,), "head.4.weight": (4, 128, 1, 1), "head.4.bias": (4,)}
TRUNK = {"patch_embed.proj.weight": (1024, 3, 16, 16), "patch_embed.proj.bias": (1024,),
         **{f"enc_blocks.{i}.{k}": s for i in range(24) for k, s in ENC_BLOCK.items()},
         "enc_norm.weight": (1024,), "enc_norm.bias": (1024,), "mask_token": (1, 1, 768),
         "decoder_embed.weight": (768, 1024), "decoder_embed.bias": (768,),
         **{f"{d}.{i}.{k}": s for d in ("dec_blocks", "dec_blocks2") for i in range(12) for k, s in DEC_BLOCK.items()},
         "dec_norm.weight": (768,), "dec_norm.bias": (768,)}


def official_dust3r_dpt():
    return {**TRUNK, **{f"downstream_head{h}.dpt.{k}": s for h in (1, 2) for k, s in DPT.items()}}


def official_mast3r_metric():
    # catmlp+dpt, output_mode 'pts3d+desc24', two_confs=True: head_local_features = Mlp(1792, 7168, 25 * 256)
    mlp = {"head_local_features.fc1.weight": (7168, 1792), "head_local_features.fc1.bias": (7168,),
           "head_local_features.fc2.weight": (6400, 7168), "head_local_features.fc2.bias": (6400,)}
    return {**official_dust3r_dpt(), **{f"downstream_head{h}.{k}": s for h in (1, 2) for k, s in mlp.items()}}


def test_dust3r_dpt_keys_and_shapes_match_the_official_model():
    assert _shapes(DUST3R_512_DPT) == official_dust3r_dpt()


def test_mast3r_metric_keys_and_shapes_match_the_official_model():
    assert _shapes(MAST3R_512_METRIC) == official_mast3r_metric()


def test_dust3r_linear_head_keys():
    sh = _shapes(DUST3R_512_LINEAR)
    assert sh["downstream_head1.proj.weight"] == (4 * 256, 768) and not any(".dpt." in k for k in sh)


def test_encoder_is_the_backbone_encoder():
    """One implementation: the stereo model's encoder keys are exactly the dust3r backbone encoder's."""
    with torch.device("meta"):
        enc = CroCoEncoder(DUST3R_512_DPT.encoder)
    trunk = {k for k in _shapes(DUST3R_512_DPT) if k.startswith(("patch_embed.", "enc_blocks.", "enc_norm."))}
    assert trunk == set(enc.state_dict())


def _tiny_state(head="dpt", **kw):
    cfg = StereoConfig(head=head, **{**TINY, **kw})
    return cfg, StereoModel(cfg).init_weights(3).state_dict()


def test_strict_loading_aliases_missing_decoder2_and_errors(tmp_path):
    cfg, state = _tiny_state()
    # .pth-style checkpoint: the layer_rn.k aliases are present too, and no dec_blocks2 (copied from dec_blocks)
    pth = {k: v.clone() for k, v in state.items() if not k.startswith("dec_blocks2.")}
    for h in (1, 2):
        for k in range(4):
            pth[f"downstream_head{h}.dpt.scratch.layer_rn.{k}.weight"] = state[
                f"downstream_head{h}.dpt.scratch.layer{k + 1}_rn.weight"].clone()
    m = load_stereo_state(StereoModel(cfg), pth, "ckpt.pth")
    assert torch.equal(m.dec_blocks2[1].attn.qkv.weight, state["dec_blocks.1.attn.qkv.weight"])
    # a safetensors file through build_stereo_model
    f = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(f))
    m2 = build_stereo_model("dust3r", weights=tmp_path, arch_overrides=TINY)
    assert all(torch.equal(a, state[k]) for k, a in m2.state_dict().items())
    bad = dict(pth)
    bad["downstream_head1.dpt.scratch.layer_rn.0.weight"] = bad["downstream_head1.dpt.scratch.layer_rn.0.weight"] + 1
    with pytest.raises(InputError, match="differs"):
        load_stereo_state(StereoModel(cfg), bad, "ckpt.pth")
    extra = {**state, "prediction_head.weight": torch.zeros(1)}
    with pytest.raises(InputError, match="unexpected keys.*prediction_head"):
        load_stereo_state(StereoModel(cfg), extra, "ckpt.pth")
    missing = {k: v for k, v in state.items() if k != "dec_norm.weight"}
    with pytest.raises(InputError, match="missing keys.*dec_norm.weight"):
        load_stereo_state(StereoModel(cfg), missing, "ckpt.pth")
    with pytest.raises(InputError, match="shape"):
        load_stereo_state(StereoModel(StereoConfig(**{**TINY, "dec_embed_dim": 16})), state, "ckpt.pth")


def test_missing_weights_name_the_fetch_command(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="feat2gs weights fetch dust3r.*init.options.weights=PATH"):
        build_stereo_model("dust3r")


def test_postprocess_modes():
    cfg = StereoConfig(head="catmlp+dpt", desc_dim=2, two_confs=True)
    raw = torch.zeros(1, 7, 1, 1)
    raw[0, :3, 0, 0] = torch.tensor([3.0, 0.0, 4.0])  # |p| = 5 -> p/|p| * expm1(5)
    raw[0, 3], raw[0, 4:6, 0, 0], raw[0, 6] = 0.5, torch.tensor([3.0, 4.0]), -1.0
    out = postprocess(raw, cfg)
    torch.testing.assert_close(out["pts3d"][0, 0, 0], torch.tensor([0.6, 0.0, 0.8]) * torch.expm1(torch.tensor(5.0)))
    torch.testing.assert_close(out["conf"][0, 0, 0], 1 + torch.exp(torch.tensor(0.5)))
    torch.testing.assert_close(out["desc"][0, 0, 0], torch.tensor([0.6, 0.8]))
    torch.testing.assert_close(out["desc_conf"][0, 0, 0], torch.exp(torch.tensor(-1.0)))


@pytest.mark.parametrize("head", ["dpt", "linear", "catmlp+dpt"])
def test_tiny_inference_shapes_and_pair_asymmetry(head):
    cfg = StereoConfig(head=head, **{**TINY, "desc_dim": 4})
    m = StereoModel(cfg).init_weights(0).eval()
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        r1, r2 = m(x[:1], x[1:])
        s1, _ = m(x[1:], x[:1])
    assert r1["pts3d"].shape == (1, 32, 48, 3) and r2["conf"].shape == (1, 32, 48)
    assert (r1["conf"] > 1).all()
    assert not torch.allclose(r1["pts3d"], s1["pts3d"])  # the first view's map depends on the second view
    if head == "catmlp+dpt":
        assert r1["desc"].shape == (1, 32, 48, 4)
        torch.testing.assert_close(r1["desc"].norm(dim=-1), torch.ones(1, 32, 48))


def test_portrait_pairs_are_run_as_landscape_and_returned_in_the_given_frame():
    m = StereoModel(StereoConfig(**TINY)).init_weights(0).eval()
    x = torch.rand(2, 3, 48, 32)
    with torch.no_grad():
        r1, r2 = m(x[:1], x[1:])
        l1, _ = m(x[:1].transpose(-1, -2), x[1:].transpose(-1, -2))
    assert r1["pts3d"].shape == (1, 48, 32, 3)
    torch.testing.assert_close(r1["pts3d"], l1["pts3d"].transpose(1, 2)[..., [1, 0, 2]])
