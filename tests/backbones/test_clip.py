"""CLIP ViT-B/16 OpenAI (open_clip): pixel alignment, position-embedding resizing, the official checkpoint
layout (full CLIP, text tower ignored) and loading through the HF cache."""

from __future__ import annotations

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from backbones.clip import resize_grid_embedding
from backbones.common import CLIP_MEAN, CLIP_STD
from backbones.registry import build_backbone
from feat2gs.errors import InputError

from zoo_testlib import TINY, assert_roll_equivariant, build_tiny, normalise, random_images


def _tiny_clip() -> open_clip.CLIP:
    vision = {k: v for k, v in TINY["clip"].items() if k != "embed_dim"}
    text = dict(context_length=8, vocab_size=64, width=32, heads=2, layers=1)
    return open_clip.CLIP(TINY["clip"]["embed_dim"], vision_cfg=vision, text_cfg=text, quick_gelu=True).eval()


def test_tokens_follow_the_image_when_it_shifts():
    bb = build_tiny("random-clip")
    assert_roll_equivariant(bb, lambda: bb.model.positional_embedding.zero_())


def test_position_embedding_resize_keeps_orientation():
    """A grid embedding that is a ramp along x (channel 0) and along y (channel 1) stays so after resizing to
    a differently shaped grid: a transposed or scrambled resize would break this."""
    old, new = (3, 5), (6, 10)
    ys, xs = torch.meshgrid(torch.arange(old[0]), torch.arange(old[1]), indexing="ij")
    pos = torch.stack([xs.flatten(), ys.flatten()], dim=1).float()
    assert resize_grid_embedding(pos, old, old) is pos
    out = resize_grid_embedding(pos, old, new).reshape(new[0], new[1], 2)
    cx, cy = out[..., 0], out[..., 1]
    torch.testing.assert_close(cx, cx[:1].expand_as(cx))  # constant down each column
    torch.testing.assert_close(cy, cy[:, :1].expand_as(cy))  # constant along each row
    assert (cx[0, 1:] >= cx[0, :-1]).all() and cx[0, -1] - cx[0, 0] > 3.5
    assert (cy[1:, 0] >= cy[:-1, 0]).all() and cy[-1, 0] - cy[0, 0] > 1.5


def test_clip_normalisation_and_quickgelu():
    bb = build_tiny("random-clip")
    assert tuple(bb.mean) == tuple(CLIP_MEAN) and tuple(bb.std) == tuple(CLIP_STD)
    assert type(bb.model.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"


def test_full_size_network_matches_the_official_checkpoint_layout():
    """Our vision tower has exactly the ``visual.*`` tensors of open_clip's ViT-B-16 (the layout of
    open_clip_model.safetensors); every other tensor of that file belongs to the text tower."""
    with torch.device("meta"):
        ours = build_backbone("random-clip", device="meta")
        official = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True, device="meta")
    full = {k: tuple(v.shape) for k, v in official.state_dict().items()}
    visual = {k[len("visual."):]: s for k, s in full.items() if k.startswith("visual.")}
    assert {k: tuple(v.shape) for k, v in ours.model.state_dict().items()} == visual
    assert visual["proj"] == (768, 512) and visual["positional_embedding"] == (1 + 14 * 14, 768)
    from backbones.clip import TEXT_KEYS
    assert all(k.startswith(TEXT_KEYS) for k in full if not k.startswith("visual."))


def test_weights_load_from_the_hf_cache_and_reproduce_the_source_network(fake_hf_cache):
    torch.manual_seed(7)
    src = _tiny_clip()
    fake_hf_cache(build_tiny("random-clip").info.weights,  # the full model, text tower included
                  {"open_clip_model.safetensors": lambda p: save_file(src.state_dict(), str(p))})

    bb = build_tiny("clip")
    img = random_images(2, 64, 64, seed=5)  # the tiny training size: no position-embedding resize
    got = bb.extract(img).features
    with torch.no_grad():
        out = src.visual.forward_intermediates(normalise(img, bb), indices=[1], normalize_intermediates=True,
                                               intermediates_only=True)["image_intermediates"][0]
        want = torch.einsum("bchw,cd->bdhw", out, src.visual.proj)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - build_tiny("random-clip").extract(img).features).abs().max() > 1e-2


def test_only_text_tower_keys_are_ignored(tmp_path):
    state = _tiny_clip().state_dict()
    state["bogus.weight"] = torch.zeros(2)  # neither vision nor text tower
    path = tmp_path / "clip.safetensors"
    save_file(state, str(path))
    with pytest.raises(InputError) as e:
        build_tiny("clip", weights=str(path))
    assert str(path) in str(e.value) and "bogus.weight" in str(e.value)
