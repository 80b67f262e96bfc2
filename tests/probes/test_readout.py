import pytest
import torch

from backbones.base import FeatureMap
from feat2gs.errors import UnknownNameError
from feat2gs.gaussians import Gaussians, knn_log_scales
from probes.features import GaussianFeatures
from probes.readout import MODE_HEADS, Readout


def _init(n, sh_degree=3):
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(n, 3, generator=g)
    return Gaussians.from_points(pts, torch.rand(n, 3, generator=g), knn_log_scales(pts), 0.1, sh_degree)


def _features(V=2, C=16, h=3, w=4, Hg=12, Wg=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    fmap = FeatureMap(torch.randn(V, C, h, w, generator=g), image_size=(24, 32))
    valid = torch.rand(V, Hg, Wg, generator=g) > 0.3
    return fmap, valid, GaussianFeatures.from_feature_map(fmap, valid)


def test_features_match_bilinear_upsampling():
    fmap, valid, feats = _features()
    dense = fmap.sample(12, 16).permute(0, 2, 3, 1)[valid]  # grid_sample reference
    assert torch.allclose(feats.dense(), dense, atol=1e-5)
    # with the grid equal to the image, it is F.interpolate(bilinear, align_corners=False)
    up = torch.nn.functional.interpolate(fmap.features, size=(24, 32), mode="bilinear", align_corners=False)
    full = GaussianFeatures.from_feature_map(fmap, torch.ones(2, 24, 32, dtype=torch.bool))
    assert torch.allclose(full.dense(), up.permute(0, 2, 3, 1).reshape(-1, 16), atol=1e-5)


def test_token_first_linear_equals_dense_linear():
    _, _, feats = _features(C=32)
    assert feats.token_first
    W, b = torch.randn(64, 32), torch.randn(64)
    assert torch.allclose(feats.linear(W, b), feats.dense() @ W.T + b, atol=1e-4)


@pytest.mark.parametrize("mode", ["G", "T", "A"])
def test_heads_and_free_parameters_per_mode(mode):
    _, valid, feats = _features()
    n = int(valid.sum())
    init = _init(n)
    r = Readout(mode, feats.dim, init, hidden=256)
    assert set(r.heads) == set(MODE_HEADS[mode])
    assert set(r.heads) | set(r.free) == {"xyz", "scaling", "rotation", "opacity", "f_dc", "f_rest"}
    assert not set(r.heads) & set(r.free)
    for a, head in r.heads.items():
        assert head.fc1.in_features == feats.dim and head.fc1.out_features == 256
    outs = r.head_outputs(feats)
    dims = {"xyz": 3, "scaling": 3, "rotation": 4, "opacity": 1, "f_dc": 3, "f_rest": 45}
    for a, o in outs.items():
        assert o.shape == (n, dims[a])
    g = r(feats)
    assert len(g) == n and g.sh_degree == 3
    # free parameters start at the reference initial values
    for a, p in r.free.items():
        ref = {"xyz": init.means, "scaling": init.log_scales, "rotation": init.quats,
               "opacity": init.opacity_logits, "f_dc": init.sh_dc.reshape(n, 3),
               "f_rest": init.sh_rest.reshape(n, -1)}[a]
        assert torch.equal(p.data, ref)


def test_warmup_regression_reaches_targets():
    torch.manual_seed(0)  # head initialisation
    _, valid, feats = _features(C=6, h=12, w=16)
    n = int(valid.sum())
    init = _init(n, sh_degree=0)
    init.means = torch.zeros(n, 3) + torch.tensor([1.0, -2.0, 3.0])  # a constant target is learnable
    r = Readout("G", feats.dim, init)
    opt = torch.optim.Adam(r.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        loss = r.warmup_loss(r.head_outputs(feats))
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    xyz = r.head_outputs(feats)["xyz"]
    assert (xyz - init.means).abs().mean() < 0.05
    assert loss.item() < 0.5 * first


def test_unknown_mode():
    _, valid, feats = _features()
    with pytest.raises(UnknownNameError):
        Readout("X", feats.dim, _init(int(valid.sum())))


@pytest.mark.parametrize("C,h,w", [(6, 12, 16), (32, 3, 4)])  # dense path (per-pixel) and token-first path
def test_fused_heads_match_plain_autograd(C, h, w):
    import torch.nn.functional as F

    _, valid, feats = _features(C=C, h=h, w=w)
    n = int(valid.sum())
    r = Readout("A", feats.dim, _init(n))
    outs = r.head_outputs(feats)
    g = torch.Generator().manual_seed(3)
    cot = {a: torch.randn(o.shape, generator=g) for a, o in outs.items()}
    sum((outs[a] * cot[a]).sum() for a in outs).backward()
    fused = {name: p.grad.clone() for name, p in r.named_parameters()}
    r.zero_grad()
    ref = {}
    for a, head in r.heads.items():  # the textbook composition: upsample, then MLP
        ref[a] = F.linear(F.relu(F.linear(feats.dense(), head.fc1.weight, head.fc1.bias)),
                          head.fc2.weight, head.fc2.bias)
        assert torch.allclose(outs[a], ref[a], atol=1e-5), a
    sum((ref[a] * cot[a]).sum() for a in ref).backward()
    for name, p in r.named_parameters():
        if name in fused:
            assert torch.allclose(fused[name], p.grad, rtol=1e-4, atol=1e-5), name
