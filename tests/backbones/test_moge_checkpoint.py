"""MoGe checkpoints: the released architectures' state-dict keys / shapes / sizes (as documented in
docs/moge_reference.md section 2), the strict loader, and its errors for bad files."""

import pytest
import torch

from backbones.moge.load import (RELEASED_CONFIGS, VARIANTS, build_model, load_checkpoint, load_pretrained,
                                 model_from_state, param_count, save_checkpoint, tiny_config)
from feat2gs.errors import InputError, WeightsNotFoundError


# ---------------------------------------------------------------- expected layouts, written from the doc
def _conv(name, cout, cin, k):
    return {f"{name}.weight": (cout, cin, k, k), f"{name}.bias": (cout,)}


def _conv_t(name, cin, cout, k=2):
    return {f"{name}.weight": (cin, cout, k, k), f"{name}.bias": (cout,)}


def _affine(name, c):  # LayerNorm / GroupNorm
    return {f"{name}.weight": (c,), f"{name}.bias": (c,)}


def _vit(prefix, depth, D):
    keys = {f"{prefix}cls_token": (1, 1, D), f"{prefix}pos_embed": (1, 1 + 37 * 37, D),
            f"{prefix}mask_token": (1, D), **_conv(f"{prefix}patch_embed.proj", D, 3, 14), **_affine(f"{prefix}norm", D)}
    for i in range(depth):
        b = f"{prefix}blocks.{i}."
        keys.update({**_affine(b + "norm1", D), **_affine(b + "norm2", D),
                     b + "attn.qkv.weight": (3 * D, D), b + "attn.qkv.bias": (3 * D,),
                     b + "attn.proj.weight": (D, D), b + "attn.proj.bias": (D,),
                     b + "mlp.fc1.weight": (4 * D, D), b + "mlp.fc1.bias": (4 * D,),
                     b + "mlp.fc2.weight": (D, 4 * D), b + "mlp.fc2.bias": (D,),
                     b + "ls1.gamma": (D,), b + "ls2.gamma": (D,)})
    return keys


def _norm_buffers(prefix):
    return {f"{prefix}image_mean": (1, 3, 1, 1), f"{prefix}image_std": (1, 3, 1, 1)}


def expected_v1_vitl():
    keys = {**_vit("backbone.", 24, 1024), **_norm_buffers("")}
    for k in range(4):
        keys.update(_conv(f"head.projects.{k}", 512, 1024, 1))
    for s, (cin, cout) in enumerate([(512, 256), (256, 128), (128, 64)]):
        b = f"head.upsample_blocks.{s}."
        keys.update({**_conv_t(b + "0.0", cin + 2, cout), **_conv(b + "0.1", cout, cout, 3)})
        for r in (1, 2):  # 2 residual blocks, hidden width 2x
            keys.update({**_affine(f"{b}{r}.layers.0", cout), **_conv(f"{b}{r}.layers.2", 2 * cout, cout, 3),
                         **_affine(f"{b}{r}.layers.3", 2 * cout), **_conv(f"{b}{r}.layers.5", cout, 2 * cout, 3)})
    for o, d in enumerate([3, 1]):
        keys.update({**_conv(f"head.output_block.{o}.0", 32, 64 + 2, 3), **_conv(f"head.output_block.{o}.2", d, 32, 1)})
    return keys


def _stack(prefix, widths, dim_in, res, out):
    keys = {}
    for i, (w, ci) in enumerate(zip(widths, dim_in)):
        keys.update(_conv(f"{prefix}.input_blocks.{i}", w, ci, 1))
        for j in range(res[i]):
            keys.update({**_conv(f"{prefix}.res_blocks.{i}.{j}.layers.2", w, w, 3),
                         **_conv(f"{prefix}.res_blocks.{i}.{j}.layers.5", w, w, 3)})
    for i in range(3):  # transposed-conv resamplers
        keys.update({**_conv_t(f"{prefix}.resamplers.{i}.0", widths[i], widths[i + 1]),
                     **_conv(f"{prefix}.resamplers.{i}.1", widths[i + 1], widths[i + 1], 3)})
    keys.update(_conv(f"{prefix}.resamplers.3.1", widths[4], widths[3], 3))  # bilinear: conv only
    if out:
        keys.update(_conv(f"{prefix}.output_blocks.4", out, widths[4], 1))
    return keys


def expected_v2(D, depth, taps, neck_res, normal):
    widths = [D, 256, 128, 64, 32]
    keys = {**_vit("encoder.backbone.", depth, D), **_norm_buffers("encoder.")}
    for k in range(taps):
        keys.update(_conv(f"encoder.output_projections.{k}", D, D, 1))
    keys.update(_stack("neck", widths, [D + 2, 2, 2, 2, 2], [0, neck_res, neck_res, neck_res, 0], None))
    heads = {"points_head": 3, "mask_head": 1, **({"normal_head": 3} if normal else {})}
    for name, out in heads.items():
        keys.update(_stack(name, widths, widths, [0, 1, 1, 1, 0], out))
    keys.update({"scale_head.0.weight": (D, D), "scale_head.0.bias": (D,), "scale_head.2.weight": (D, D),
                 "scale_head.2.bias": (D,), "scale_head.4.weight": (1, D), "scale_head.4.bias": (1,)})
    return keys


RELEASES = {  # variant: (expected layout, parameters in millions from the reference)
    "v1-vitl": (expected_v1_vitl, 314.17),
    "v2-vitl": (lambda: expected_v2(1024, 24, 4, 2, False), 326.21),
    "v2-vitl-normal": (lambda: expected_v2(1024, 24, 4, 2, True), 330.90),
    "v2-vitb-normal": (lambda: expected_v2(768, 12, 2, 1, True), 104.74),
    "v2-vits-normal": (lambda: expected_v2(384, 12, 2, 1, True), 35.10),
}


@pytest.mark.parametrize("variant", list(RELEASES))
def test_released_layout_keys_shapes_and_size(variant):
    layout, millions = RELEASES[variant]
    with torch.device("meta"):
        model = build_model(RELEASED_CONFIGS[variant], VARIANTS[variant].version)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = layout()
    assert sorted(set(want) - set(got)) == [] and sorted(set(got) - set(want)) == []
    assert got == want
    assert round(param_count(model) / 1e6, 2) == millions


@pytest.mark.parametrize("variant", list(RELEASES))
def test_released_layout_loads_strictly(variant):
    """A state dict with the documented keys and shapes of each release (meta tensors: no memory) passes the
    strict loader; dropping or adding a key fails it."""
    layout, _ = RELEASES[variant]
    state = {k: torch.empty(s, device="meta") for k, s in layout().items()}
    model = model_from_state(RELEASED_CONFIGS[variant], state, VARIANTS[variant].version, where=variant)
    assert model.version == VARIANTS[variant].version
    first = next(iter(state))
    with pytest.raises(InputError, match=f"missing key {first}"):
        model_from_state(RELEASED_CONFIGS[variant], {k: v for k, v in state.items() if k != first}, where=variant)
    with pytest.raises(InputError, match="unexpected key head.extra"):
        model_from_state(RELEASED_CONFIGS[variant], {**state, "head.extra": torch.empty(1, device="meta")})


def test_released_layout_loads_strictly_from_a_file(tmp_path):
    """A file with the real key names and shapes of a release (zero weights, ViT-S to stay small) loads."""
    cfg = RELEASED_CONFIGS["v2-vits-normal"]
    state = {k: torch.zeros(s) for k, s in expected_v2(384, 12, 2, 1, True).items()}
    torch.save({"model_config": cfg, "model": state}, tmp_path / "model.pt")
    model = load_pretrained("v2-vits-normal", weights=str(tmp_path))  # a folder holding model.pt
    assert model.version == "v2" and hasattr(model, "normal_head")
    assert float(model.encoder.backbone.pos_embed.detach().abs().sum()) == 0.0


# ---------------------------------------------------------------- round trip and errors
def _tiny(version, seed=0):
    torch.manual_seed(seed)
    cfg = tiny_config(version)
    return build_model(cfg).eval(), cfg


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_round_trip(tmp_path, version):
    model, cfg = _tiny(version)
    path = tmp_path / "model.pt"
    save_checkpoint(model, cfg, path)
    loaded = load_checkpoint(path)
    assert type(loaded) is type(model) and not loaded.training
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b) and b.dtype == torch.float32
    x = torch.rand(1, 3, 42, 56)
    with torch.no_grad():
        torch.testing.assert_close(model(x, 30).points, loaded(x, 30).points)


def _save(path, obj):
    torch.save(obj, path)
    return path


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InputError, match="junk.pt.*not a readable PyTorch checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(InputError, match="tensor.pt.*expected a dict"):
        load_checkpoint(_save(tmp_path / "tensor.pt", torch.zeros(3)))
    with pytest.raises(InputError, match="found \\['state_dict'\\]"):
        load_checkpoint(_save(tmp_path / "sd.pt", {"state_dict": {}}))
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


def test_missing_unexpected_and_shape_errors(tmp_path):
    model, cfg = _tiny("v2")
    state = dict(model.state_dict())
    del state["neck.input_blocks.0.weight"]
    del state["scale_head.2.bias"]
    state["extra.weight"] = torch.zeros(1)
    path = _save(tmp_path / "broken.pt", {"model_config": cfg, "model": state})
    with pytest.raises(InputError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert "broken.pt" in msg and "3 problems" in msg
    assert "missing key neck.input_blocks.0.weight" in msg and "missing key scale_head.2.bias" in msg
    assert "unexpected key extra.weight" in msg

    # config / weights mismatch: the config says 2 ViT taps, 48-wide neck level 1; weights are the tiny model's
    bad = tiny_config("v2")
    bad["neck"]["dim_res_blocks"][1] = 48
    path = _save(tmp_path / "mismatch.pt", {"model_config": bad, "model": model.state_dict()})
    with pytest.raises(InputError, match="mismatch.pt") as e:
        load_checkpoint(path)
    assert "shape mismatch for neck.resamplers.0.0.weight: checkpoint [64, 32, 2, 2], model_config gives " \
           "[64, 48, 2, 2]" in str(e.value)


def test_invalid_config_and_version(tmp_path):
    model, cfg = _tiny("v1")
    path = _save(tmp_path / "v1.pt", {"model_config": cfg, "model": model.state_dict()})
    with pytest.raises(InputError, match="v1.pt.*expected a MoGe v2 config"):
        load_checkpoint(path, version="v2")
    bad = dict(cfg, remap_output="cubic")
    with pytest.raises(InputError, match="badcfg.pt.*remap_output 'cubic'"):
        load_checkpoint(_save(tmp_path / "badcfg.pt", {"model_config": bad, "model": model.state_dict()}))
    with pytest.raises(InputError, match="weird.pt.*not a valid MoGe v2"):
        load_checkpoint(_save(tmp_path / "weird.pt", {"model_config": {"neck": {}}, "model": {}}))


def test_legacy_trained_area_range():
    """The legacy key becomes num_tokens_range (area // 14^2) and is not reported as unknown."""
    import warnings

    cfg = dict(tiny_config("v1"), trained_area_range=[500 * 196, 1000 * 196 + 10])
    del cfg["num_tokens_range"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = build_model(cfg)
    assert model.num_tokens_range == [500, 1000]
    assert model.num_tokens_for(9) == 1000 and model.num_tokens_for(0) == 500


def test_unknown_config_keys_warn():
    with pytest.warns(UserWarning, match="ignoring unknown model_config keys \\['old_flag'\\]"):
        build_model(dict(tiny_config("v2"), old_flag=True))


def test_weights_from_the_hf_cache(fake_hf_cache):
    """resolve_weights finds model.pt in a Hugging Face cache snapshot; an empty cache says how to fetch it."""
    with pytest.raises(WeightsNotFoundError, match="feat2gs weights fetch moge-v2-vits-normal"):
        load_pretrained("v2-vits-normal")
    model, cfg = _tiny("v2")
    fake_hf_cache(VARIANTS["v2-vits-normal"].weights, {"model.pt": lambda p: save_checkpoint(model, cfg, p)})
    loaded = load_pretrained("v2-vits-normal")
    assert torch.equal(loaded.encoder.backbone.pos_embed, model.encoder.backbone.pos_embed)
