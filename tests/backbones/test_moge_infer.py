"""MoGe ``forward`` / ``infer`` with tiny random-weight models on CPU: resolution rules, output types, mask
handling, projection consistency, known field of view, metric scale."""

import math

import pytest
import torch

from backbones.moge.load import build_model, calibrate_mask, tiny_config
from backbones.moge.modules import remap_points, uv_channels


def tiny(version, seed=0, mask_fraction=0.5):
    """A tiny random model whose mask is valid on about ``mask_fraction`` of the pixels (mask-head bias
    shifted to the right quantile of its output on a reference image)."""
    torch.manual_seed(seed)
    model = build_model(tiny_config(version)).eval()
    calibrate_mask(model, image(1, 36, 48), mask_fraction)
    return model


def image(b, h, w, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


def vit_input_size(model, x, num_tokens):
    """(H, W) of the normalised image the ViT receives (a hook on the patch embedding)."""
    vit = model.encoder.backbone if model.version == "v2" else model.backbone
    seen = []
    h = vit.patch_embed.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape[-2:])))
    with torch.no_grad():
        model(x, num_tokens)
    h.remove()
    return seen[0]


def test_token_grid_rules():
    v2 = tiny("v2")
    # a = 5/3, 40 tokens: rows round(sqrt(24)) = 5, cols round(sqrt(66.7)) = 8
    assert vit_input_size(v2, image(1, 30, 50), 40) == (5 * 14, 8 * 14)
    # a = 4, 25 tokens: rows = round(2.5) = 2 (round half to even, like the official Python round)
    assert vit_input_size(v2, image(1, 10, 40), 25) == (2 * 14, 10 * 14)
    v1 = tiny("v1")
    # f = sqrt(40 * 196 / 3500): resized int(74.8) x int(104.8) = 74 x 104 -> ViT 70 x 98
    assert v1.resized_size(50, 70, 40) == (74, 104)
    assert vit_input_size(v1, image(1, 50, 70), 40) == (70, 98)
    assert v1.num_tokens_for(9) == 36 and v1.num_tokens_for(0) == 16 and v2.num_tokens_for(4) == 24


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_infer_outputs(version):
    model = tiny(version)
    x = image(2, 36, 48)
    out = model.infer(x)
    B, H, W = 2, 36, 48
    assert out.points.shape == (B, H, W, 3) and out.points.dtype == torch.float32
    assert out.depth.shape == (B, H, W) and out.depth.dtype == torch.float32
    assert out.mask.shape == (B, H, W) and out.mask.dtype == torch.bool
    assert out.intrinsics.shape == (B, 3, 3)
    if version == "v2":
        assert out.normal.shape == (B, H, W, 3) and out.metric_scale.shape == (B,)
        n = out.normal[out.mask]
        torch.testing.assert_close(n.norm(dim=-1), torch.ones(len(n)))
        assert (out.metric_scale > 0).all()
    else:
        assert out.normal is None and out.metric_scale is None
    assert 0.2 < out.mask.float().mean() < 0.8
    # unbatched input -> unbatched output, same values
    one = model.infer(x[1])
    assert one.points.shape == (H, W, 3) and one.intrinsics.shape == (3, 3)
    torch.testing.assert_close(one.depth, out.depth[1])
    # CPU always runs float32: use_fp16 changes nothing here
    torch.testing.assert_close(model.infer(x, use_fp16=False).depth, out.depth, rtol=0, atol=0)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_mask_application(version):
    model = tiny(version)
    x = image(1, 30, 40)
    masked = model.infer(x)
    free = model.infer(x, apply_mask=False)
    m = masked.mask
    assert m.any() and (~m).any()
    assert torch.isinf(masked.depth[~m]).all() and torch.isinf(masked.points[~m]).all()
    torch.testing.assert_close(masked.depth[m], free.depth[m])
    assert torch.isfinite(free.points).all()
    if version == "v2":
        assert (masked.normal[~m] == 0).all()
        assert (free.depth[free.mask] > 0).all()  # v2 drops non-positive depth from the mask


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_points_consistent_with_depth_and_intrinsics(version):
    """force_projection: every point projects to its own pixel centre with the returned intrinsics."""
    model = tiny(version)
    H, W = 30, 44
    out = model.infer(image(1, H, W), apply_mask=False)
    K = out.pixel_intrinsics()[0]
    P, depth = out.points[0], out.depth[0]
    ok = depth > 1e-3
    assert ok.float().mean() > 0.5
    torch.testing.assert_close(P[..., 2][ok], depth[ok])
    px = K[0, 0] * P[..., 0] / P[..., 2] + K[0, 2]
    py = K[1, 1] * P[..., 1] / P[..., 2] + K[1, 2]
    jj, ii = torch.meshgrid(torch.arange(W) + 0.5, torch.arange(H) + 0.5, indexing="xy")
    torch.testing.assert_close(px[ok], jj[ok], atol=1e-3, rtol=0)
    torch.testing.assert_close(py[ok], ii[ok], atol=1e-3, rtol=0)
    # principal point at the centre, square pixels
    assert float(K[0, 2]) == W / 2 and float(K[1, 2]) == H / 2
    torch.testing.assert_close(K[0, 0], K[1, 1])


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_known_fov_and_no_projection(version):
    model = tiny(version)
    H, W = 30, 40
    x = image(1, H, W)
    out = model.infer(x, fov_x=60.0, force_projection=False, apply_mask=False)
    fx = out.intrinsics[0, 0, 0]
    torch.testing.assert_close(fx, torch.tensor(0.5 / math.tan(math.radians(30))))
    torch.testing.assert_close(out.intrinsics[0, 1, 1] * H, fx * W)
    # without the projection constraint the network's x, y are kept (times the metric scale)
    with torch.no_grad():
        raw = model(x, model.num_tokens_for(9))
    s = 1.0 if raw.metric_scale is None else raw.metric_scale[0]
    torch.testing.assert_close(out.points[0, ..., :2], raw.points[0, ..., :2] * s)
    # z is shifted by one constant per image
    shift = out.depth[0] / s - raw.points[0, ..., 2]
    torch.testing.assert_close(shift, shift.median().expand_as(shift), atol=1e-5, rtol=1e-5)


def test_metric_scale_multiplies_geometry():
    model = tiny("v2")
    x = image(1, 30, 40)
    a = model.infer(x)
    with torch.no_grad():
        model.scale_head[-1].bias += math.log(3.0)
    b = model.infer(x)
    torch.testing.assert_close(b.metric_scale, 3 * a.metric_scale)
    assert torch.equal(a.mask, b.mask)
    torch.testing.assert_close(b.depth[a.mask], 3 * a.depth[a.mask])
    torch.testing.assert_close(b.points[a.mask], 3 * a.points[a.mask])
    torch.testing.assert_close(b.intrinsics, a.intrinsics)


def test_v1_mask_is_a_raw_threshold():
    model = tiny("v1")
    x = image(1, 30, 40)
    with torch.no_grad():
        raw = model(x, 40)
    out = model.infer(x, num_tokens=40)
    assert torch.equal(out.mask[0], raw.mask[0] > model.mask_threshold)


def test_view_plane_uv_and_remap():
    """Decoder UV channels: pixel centres of an (H, W) grid, scaled by the *image's* aspect ratio a so that
    the image half-diagonal has length 1 (the grid of a level may have a slightly different aspect)."""
    H, W, a = 4, 6, 1.4
    uv = uv_channels(2, H, W, a, torch.float32, "cpu")
    sx, sy = a / math.sqrt(1 + a * a), 1 / math.sqrt(1 + a * a)
    assert uv.shape == (2, 2, H, W)
    for j in range(W):
        assert abs(float(uv[1, 0, 2, j]) - (2 * (j + 0.5) / W - 1) * sx) < 1e-6
    for i in range(H):
        assert abs(float(uv[0, 1, i, 3]) - (2 * (i + 0.5) / H - 1) * sy) < 1e-6
    assert abs(math.hypot(sx, sy) - 1) < 1e-12  # the image half-diagonal has length 1
    p = torch.tensor([[0.5, -0.25, math.log(2.0)]])
    torch.testing.assert_close(remap_points(p, "exp"), torch.tensor([[1.0, -0.5, 2.0]]))
    torch.testing.assert_close(remap_points(p, "sinh_exp")[0, 2], torch.tensor(2.0))
    with pytest.raises(ValueError, match="remap_output"):
        remap_points(p, "cubic")


def test_bad_input():
    model = tiny("v2")
    with pytest.raises(ValueError, match="expected an image"):
        model.infer(torch.rand(1, 4, 20, 20))
    with pytest.raises(ValueError, match="resolution_level"):
        model.infer(torch.rand(3, 20, 20), resolution_level=12)


@pytest.mark.cuda
def test_fp16_on_cuda_is_close_to_fp32():
    model = tiny("v2").cuda()
    x = image(1, 60, 80).cuda()
    a = model.infer(x, use_fp16=True, fov_x=55.0, apply_mask=False)
    b = model.infer(x, use_fp16=False, fov_x=55.0, apply_mask=False)
    assert a.depth.dtype == torch.float32
    rel = ((a.depth - b.depth).abs() / b.depth.abs().clamp_min(1e-3)).median()
    assert rel < 1e-2
