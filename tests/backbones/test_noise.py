"""The ``noise`` control: i.i.d. per-token codes with no image content, deterministic per image."""

import torch

from backbones import build_backbone


def test_noise_grid_stats_and_independence():
    b = build_backbone("noise")
    x = torch.rand(3, 3, 96, 128)
    f = b.extract(x)
    assert f.features.shape == (3, 256, 24, 32)  # ViT/16 grid at 512 px long side
    assert f.extent == (0.0, 0.0, 128.0, 96.0)
    z = f.features
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    # tokens are uncorrelated: the empirical correlation between channels is ~ 1/sqrt(n)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 256)
    corr = torch.corrcoef(flat.T)
    off = corr - torch.diag(torch.diag(corr))
    assert float(off.abs().max()) < 0.15


def test_noise_no_image_content_but_deterministic():
    b = build_backbone("noise")
    x = torch.rand(2, 3, 64, 64)
    a = b.extract(x).features
    # same image -> same codes, whatever batch it is in (the feature cache relies on it)
    assert torch.equal(b.extract(x[1:]).features[0], a[1])
    # the codes do not follow image content: a brighter copy gets codes uncorrelated with the original's
    c = b.extract((x * 0.5).clamp(0, 1)).features
    r = torch.corrcoef(torch.stack([a.flatten(), c.flatten()]))[0, 1]
    assert abs(float(r)) < 0.02
    # another seed gives other codes
    d = build_backbone("noise", seed=1).extract(x).features
    assert abs(float(torch.corrcoef(torch.stack([a.flatten(), d.flatten()]))[0, 1])) < 0.02


def test_noise_patch_variant_and_input_size():
    b = build_backbone("noise", variant="14", input_size=224)
    f = b.extract(torch.rand(1, 3, 100, 200))
    assert f.features.shape[-2:] == (8, 16)  # 224x112 -> rounded to 14: 224x112 / 14
