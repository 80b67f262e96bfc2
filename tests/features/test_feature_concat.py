"""Feature concatenation of several backbones, the backbone-name syntax, per-backbone options, and the
feature-visualisation picture."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from backbones.base import FeatureMap
from feat2gs.config import load_config
from feat2gs.errors import InputError
from feat2gs.features import (backbone_names, backbone_options, concatenate, feature_rgb, fit_pca,
                              prepare_features, resample_to_grid, write_feature_visualisation)
from feat2gs.pipeline import prepare_scene
from probes.pca import PCA

from feature_testlib import TINY_SCENE


def random_map(V=2, C=12, h=4, w=5, image=(48, 64), seed=0):
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(3, 0.2, C).view(1, C, 1, 1)  # distinct variances: a well-defined PCA
    return FeatureMap(torch.randn(V, C, h, w, generator=g) * scales + 1.5, image)


def test_concatenating_a_backbone_with_itself_keeps_its_information():
    m = random_map()
    k = 6
    out, info = concatenate([m, m], k)
    # analytic: A = PCA_k(m) / (max - min) (+ const); PCA_k([A, A]) = sqrt(2) * (A - mean(A)) exactly
    p, _ = fit_pca(m, k)
    span = p.features.max() - p.features.min()
    torch.testing.assert_close(out.features, math.sqrt(2) * p.features / span, atol=1e-5, rtol=1e-4)
    assert info["concat_channels"] == 2 * k and info["pca_dim"] == k and info["pca_explained"] > 0.999
    assert out.grid == m.grid and out.extent == (0.0, 0.0, 64.0, 48.0)


def test_concatenation_scales_each_backbone_alike():
    """Min-max normalisation per backbone: a backbone whose features are 1000x larger does not dominate."""
    a, b = random_map(seed=1), random_map(seed=2)
    big = FeatureMap(b.features * 1000, b.image_size)
    out1, _ = concatenate([a, b], 4)
    out2, _ = concatenate([a, big], 4)
    torch.testing.assert_close(out1.features, out2.features, atol=1e-4, rtol=1e-4)


def test_resampling_keeps_pixel_extents_exact():
    """Features equal to each token's pixel-centre x (a linear function, reproduced exactly by bilinear
    sampling) over a partial extent; after resampling onto a finer full-image grid every token holds its
    own pixel-centre x, clamped to the source's first/last token centres."""
    H, W, h, w = 48, 64, 3, 4
    x0, x1 = 8.0, 56.0
    cx = x0 + (torch.arange(w) + 0.5) * (x1 - x0) / w  # source token centres
    src = FeatureMap(cx.view(1, 1, 1, w).expand(2, 1, h, w).clone(), (H, W), extent=(x0, 0.0, x1, float(H)))
    out = resample_to_grid(src, (6, 16))
    assert out.extent == (0.0, 0.0, float(W), float(H)) and out.grid == (6, 16)
    new_cx = (torch.arange(16) + 0.5) * W / 16
    expected = new_cx.clamp(cx[0], cx[-1]).view(1, 1, 1, 16).expand(2, 1, 6, 16)
    torch.testing.assert_close(out.features, expected, atol=1e-4, rtol=0)


def test_concatenation_of_different_grids(tmp_path):
    """Patch-14 and patch-16 backbones on one scene: the finer grid is the common one, channels are
    PCA'd to pca_dim, extents cover the image, every Gaussian gets a feature."""
    cfg = load_config([*TINY_SCENE, "backbone=random-dinov2+random-clip", "probe.pca_dim=8",
                       f"cache.dir={tmp_path}",
                       "backbone.per_backbone.random-dinov2.arch_overrides={embed_dim: 64, depth: 2, num_heads: 2}",
                       "backbone.per_backbone.random-clip.arch_overrides={width: 64, layers: 2, head_width: 32, "
                       "embed_dim: 32}", "backbone.input_size=112"])
    prep = prepare_scene(cfg)
    pf = prepare_features(cfg, prep)
    grids = {c.name: c.feature_map.grid for c in pf.components}
    assert grids == {"random-dinov2": (6, 8), "random-clip": (5, 7)}  # 112 long side, patch 14 / 16
    assert pf.feature_map.grid == (6, 8) and pf.feature_map.channels == 8
    assert pf.feature_map.extent == (0.0, 0.0, 64.0, 48.0)
    assert pf.info["backbone"] == "random-dinov2+random-clip" and pf.info["concat"]["concat_channels"] == 16
    assert [c["channels"] for c in pf.info["components"]] == [64, 32]
    assert len(pf.features) == int(prep.init.valid.sum()) and pf.features.dim == 8
    # the final PCA is an exact PCA of the concatenation (the probe features are decorrelated)
    tok = pf.feature_map.features.permute(0, 2, 3, 1).reshape(-1, 8).double()
    cov = torch.cov(tok.T)
    assert (cov - torch.diag(torch.diag(cov))).abs().max() < 1e-6 * cov.diag().max()


def test_backbone_name_syntax_and_per_backbone_options():
    assert backbone_names(load_config(["backbone=dinov2"])) == ["dinov2"]
    assert backbone_names(load_config(["backbone=dinov2+random-clip"])) == ["dinov2", "random-clip"]
    assert backbone_names(load_config(["backbone=[dinov2,clip]"])) == ["dinov2", "clip"]
    with pytest.raises(InputError, match="twice"):
        backbone_names(load_config(["backbone=clip+clip"]))
    with pytest.raises(InputError, match="backbone.name"):
        backbone_names(load_config(["backbone=clip+"]))
    cfg = load_config(["backbone=dinov2+clip", "backbone.layer=-2", "backbone.per_backbone.clip.layer=[-1,0]",
                       "backbone.per_backbone.clip.variant=x"])
    assert backbone_options(cfg, "cpu", "dinov2").layer == -2
    clip = backbone_options(cfg, "cpu", "clip")
    assert clip.layer == [-1, 0] and clip.variant == "x"
    with pytest.raises(InputError, match="per_backbone.clip"):
        load_config(["backbone=dinov2+clip", "backbone.per_backbone.clip.depth=2"])


@pytest.mark.parametrize("overrides, match", [
    (["backbone=random-dino+random-mae", "backbone.per_backbone.random-sam.layer=0"], "per_backbone"),
    (["backbone=dino+mae", "backbone.weights=/x.safetensors"], "backbone.weights"),
])
def test_bad_concatenation_options(overrides, match, tmp_path):
    with pytest.raises(InputError, match=match):  # checked when the config is loaded
        load_config([*TINY_SCENE, *overrides])


def test_feature_rgb_is_robustly_normalised_and_pixel_aligned():
    # channel 0: a horizontal ramp over the tokens, channel 1: constant, 2 channels only (blue = 0)
    h, w = 4, 8
    ramp = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(2, 1, h, w)
    fm = FeatureMap(torch.cat([ramp, torch.full_like(ramp, 3.0)], 1), (16, 32))
    rgb = feature_rgb(fm, 16, 32)
    assert rgb.shape == (2, 3, 16, 32) and rgb.min() >= 0 and rgb.max() <= 1
    red = rgb[0, 0, 0]
    assert red[0] == 0 and red[-1] == 1 and (red[1:] >= red[:-1]).all()  # clipped at the 1%/99% quantiles
    q01, q99 = np.quantile(ramp.double().numpy().ravel(), [0.01, 0.99])  # over all views' tokens
    # pixel 6 (x = 6.5) sits at token coordinate 6.5 / 4 - 0.5 = 1.125
    assert red[6].item() == pytest.approx((1.125 - q01) / (q99 - q01), abs=1e-5)
    assert (rgb[:, 2] == 0).all() and (rgb[:, 1] == 0).all()  # a constant channel maps to 0


def test_visualisation_png(tmp_path):
    V, H, W = 3, 24, 32
    fm = random_map(V=V, C=5, h=3, w=4, image=(H, W))
    images = torch.rand(V, 3, H, W)
    path = write_feature_visualisation(tmp_path / "features.png", fm, images, gap=4)
    img = np.asarray(Image.open(path))
    assert img.shape == (2 * H + 4, V * W + 2 * 4, 3)
    np.testing.assert_allclose(img[:H, :W] / 255.0, images[0].permute(1, 2, 0).numpy(), atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(img[H + 4:, W + 4:2 * W + 4] / 255.0,
                               feature_rgb(fm, H, W)[1].permute(1, 2, 0).numpy(), atol=0.5 / 255 + 1e-6)
    with pytest.raises(ValueError, match="do not match"):
        write_feature_visualisation(tmp_path / "x.png", fm, images[:2])


def test_pca_of_the_single_backbone_matches_the_reference_pca(tmp_path):
    cfg = load_config([*TINY_SCENE, "backbone=random-mae", "probe.pca_dim=16", f"cache.dir={tmp_path}",
                       "backbone.arch_overrides={hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, "
                       "intermediate_size: 128, image_size: 64}"])
    pf = prepare_features(cfg, prepare_scene(cfg))
    raw = pf.components[0].feature_map.features
    tokens = raw.permute(0, 2, 3, 1).reshape(-1, raw.shape[1])
    pca = PCA.fit(tokens, 16)
    torch.testing.assert_close(pf.feature_map.features, pca.transform_map(raw))
    assert pf.info["pca_dim"] == 16 and 0 < pf.info["pca_explained"] <= 1
