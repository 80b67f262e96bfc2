"""The ``moge`` probe backbone (tiny random-weight models): shapes, layer selection, determinism, the
token grid rule, pixel alignment, and pretrained loading through ``backbone.weights``."""

import pytest
import torch
import torch.nn.functional as F

import backbones.moge  # noqa: F401  (registers ``moge``)
from backbones.base import FeatureMap
from backbones.moge.load import save_checkpoint, tiny_config
from backbones.registry import build_backbone
from feat2gs.errors import InputError, WeightsNotFoundError


def tiny(version="v2", **kw):
    variant = "v1-vitl" if version == "v1" else None
    return build_backbone("random-moge", variant=variant, arch_overrides={"model_config": tiny_config(version)}, **kw)


def texture(h, w, seed=0):
    """A smooth random RGB texture in [0, 1] with structure at the token scale."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 7 + 2, w // 7 + 2, generator=g)
    return F.interpolate(coarse, (h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def test_encoder_features_shape_extent_and_grid():
    b = tiny(input_size=140)
    imgs = torch.rand(3, 3, 60, 90)
    fm = b.extract(imgs)
    assert isinstance(fm, FeatureMap)
    # 140 px long side -> 10 tokens; 100 * 60/90 = 66.7 -> 67 tokens -> rows round(sqrt(67/1.5)) = 7, cols 10
    assert fm.meta["num_tokens"] == 67 and fm.meta["token_grid"] == (7, 10)
    assert fm.features.shape == (3, 64, 7, 10) and fm.features.dtype == torch.float32
    assert fm.extent == (0.0, 0.0, 90.0, 60.0)
    # equals the model's own encoder output (the feature path and the forward path agree)
    with torch.no_grad():
        ref = b.model.encoder(imgs, 7, 10)
    torch.testing.assert_close(fm.features, ref)
    # default budget: the trained maximum (36 tokens in the tiny config)
    assert tiny().extract(imgs[:1]).meta["num_tokens"] == 36


def test_neck_levels_and_hypercolumn():
    b = tiny(input_size=112, layer="neck2")
    imgs = torch.rand(2, 3, 56, 112)  # 64 * 0.5 = 32 tokens: 4 x 8 grid
    fm = b.extract(imgs)
    assert fm.features.shape == (2, 16, 16, 32)
    with torch.no_grad():
        fused = b.model.encoder(imgs, 4, 8)
        ref = b.model.neck(b.model.neck_inputs(fused, 2.0))[2]
    torch.testing.assert_close(fm.features, ref)

    hyper = tiny(input_size=112, layer=["encoder", 1, "vit-1"]).extract(imgs)
    assert hyper.features.shape == (2, 64 + 32 + 64, 8, 16)  # resized to the finest grid (level 1)
    enc = F.interpolate(fused, (8, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(hyper.features[:, :64], enc)
    assert hyper.meta["layers"] == ["encoder", "neck1", "vit1"]


def test_v1_levels():
    b = tiny("v1", input_size=112, layer=["head0", "encoder", 2])
    fm = b.extract(torch.rand(1, 3, 56, 112))
    # v1: resized to sqrt(32 * 196 / (56 * 112)) = 1 -> 56 x 112, grid 4 x 8; head0 == encoder
    assert fm.meta["token_grid"] == (4, 8)
    assert fm.features.shape == (1, 32 * 3, 16, 32)
    torch.testing.assert_close(fm.features[:, :32], fm.features[:, 32:64])


def test_random_weights_are_seeded():
    imgs = torch.rand(1, 3, 42, 42)
    a = tiny(seed=3).extract(imgs).features
    assert torch.equal(a, tiny(seed=3).extract(imgs).features)
    assert not torch.allclose(a, tiny(seed=4).extract(imgs).features)
    k3, k4 = tiny(seed=3).cache_key(), tiny(seed=4).cache_key()
    assert k3 != k4 and k3["random_seed"] == 3
    assert tiny(layer="neck1").cache_key()["layers"] == ["neck1"]


def _corr(a, b):
    a = a - a.mean(dim=(2, 3), keepdim=True)
    b = b - b.mean(dim=(2, 3), keepdim=True)
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.mark.parametrize("layer,cells", [("encoder", 1), ("neck2", 4)])
def test_pixel_alignment_under_a_shift(layer, cells):
    """Shifting the image content by one token (14 px) moves the features by one token (2^l cells at
    neck level l): the best-matching offset is exactly that, and much better than no offset."""
    b = tiny(input_size=224, layer=layer)
    tex = texture(112, 224 + 28)
    a_img, b_img = tex[..., :224], tex[..., 14:238]  # b's content = a's content one token to the right
    fa, fb = b.extract(torch.cat([a_img, b_img])).features.split(1)
    assert b.extract(a_img).meta["token_grid"] == (8, 16)  # identity resize: 112 x 224 = 14 x (8, 16)
    m = 2 * cells  # ignore the border cells

    def score(s):  # compare fb[j] with fa[j + s] on the interior
        w = fa.shape[-1]
        return _corr(fb[..., m:w - m - 2 * cells], fa[..., m + s:w - m - 2 * cells + s])

    scores = {s: score(s) for s in range(-2 * cells, 2 * cells + 1)}
    best = max(scores, key=scores.get)
    assert best == cells, scores
    # decorrelation at the right offset is a small fraction of the one without it (level maps also carry a
    # position-only UV signal that does not move with the content, so raw correlations are all high)
    assert scores[cells] > 0.9 and (1 - scores[cells]) < 0.1 * (1 - scores[0]), scores


def test_bad_options():
    with pytest.raises(InputError, match="backbone.layer.*'neck9'"):
        tiny(layer="neck9")
    with pytest.raises(InputError, match="decoder levels are named 'neck<l>'"):
        tiny(layer="head1")
    with pytest.raises(InputError, match="backbone.layer.*the ViT has 2 blocks"):
        tiny(layer="vit5")
    with pytest.raises(InputError, match="not a MoGe layer"):
        tiny(layer="cls")
    with pytest.raises(InputError, match="unknown MoGe variant 'v3'"):
        build_backbone("random-moge", variant="v3")
    with pytest.raises(InputError, match="expected a MoGe v1 config"):
        build_backbone("random-moge", variant="v1-vitl", arch_overrides={"model_config": tiny_config("v2")})
    with pytest.raises(InputError, match="arch_overrides.*only 'model_config'"):
        build_backbone("random-moge", arch_overrides={"depth": 2})
    with pytest.raises(InputError, match="expected \\(V, 3, H, W\\)"):
        tiny().extract(torch.rand(3, 32, 32))


def test_pretrained_from_a_path_and_missing_weights(tmp_path, fake_hf_cache):
    rnd = tiny(seed=5)
    save_checkpoint(rnd.model, tiny_config("v2"), tmp_path / "model.pt")
    pre = build_backbone("moge", weights=str(tmp_path / "model.pt"))
    imgs = torch.rand(2, 3, 42, 56)
    torch.testing.assert_close(pre.extract(imgs).features, rnd.extract(imgs).features)
    assert pre.cache_key()["weights_path"] == str(tmp_path / "model.pt") and pre.cache_key()["random_seed"] is None
    with pytest.raises(InputError, match="model_config can only replace"):
        build_backbone("moge", weights=str(tmp_path), arch_overrides={"model_config": tiny_config("v2")})
    # nothing in the (empty) Hugging Face cache: the error names the repository
    with pytest.raises(WeightsNotFoundError, match="Ruicheng/moge-2-vitb-normal"):
        build_backbone("moge", variant="v2-vitb-normal")
