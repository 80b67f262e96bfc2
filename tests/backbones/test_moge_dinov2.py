"""DINOv2 ViT of the MoGe package: blocks against timm, Meta's positional interpolation against a brute-force
bicubic, ``get_intermediate_layers`` semantics, released sizes."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backbones.moge.dinov2 import DINOV2_ARCHS, DinoVisionTransformer, ViTConfig
from backbones.moge.load import param_count

TINY = ViTConfig(embed_dim=64, depth=3, num_heads=4, img_size=14 * 8)


def tiny_vit(seed=0, cfg=TINY):
    torch.manual_seed(seed)
    vit = DinoVisionTransformer(cfg).eval()
    with torch.no_grad():  # non-trivial LayerScale / norms so that a wrong wiring shows
        for name, p in vit.named_parameters():
            if name.endswith("gamma") or ".norm" in name or name.startswith("norm"):
                p.add_(0.3 * torch.randn_like(p))
        vit.cls_token.normal_(0, 0.5)
    return vit


def test_blocks_match_timm_on_the_native_grid():
    """On the stored grid (no interpolation) the network equals timm's ViT with the same weights."""
    from timm.models.vision_transformer import VisionTransformer

    vit = tiny_vit()
    ref = VisionTransformer(img_size=TINY.img_size, patch_size=14, embed_dim=64, depth=3, num_heads=4,
                            init_values=1.0, num_classes=0).eval()
    state = {k: v for k, v in vit.state_dict().items() if k != "mask_token"}
    ref.load_state_dict(state, strict=True)  # same key names, apart from the pre-training mask token
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        ours = vit.get_intermediate_layers(x, n=[0, 2], return_class_token=True)
        final, inter = ref.forward_intermediates(x, indices=[0, 2], norm=True, return_prefix_tokens=True,
                                                 output_fmt="NLC")
    for (patches, cls), (t_patches, t_prefix) in zip(ours, inter):
        torch.testing.assert_close(patches, t_patches, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(cls, t_prefix[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[-1][0], final[:, 1:], atol=1e-5, rtol=1e-5)


def _cubic(t, a=-0.75):
    t = abs(t)
    if t <= 1:
        return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    if t < 2:
        return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
    return 0.0


def _bicubic_1d_matrix(n_in, n_out, step):
    """Rows: output samples at source position (i + 0.5) * step - 0.5, 4-tap cubic, indices clamped."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        s = (i + 0.5) * step - 0.5
        f = math.floor(s)
        for k in range(-1, 3):
            m[i, min(max(f + k, 0), n_in - 1)] += _cubic(s - (f + k))
    return m


def test_pos_embed_interpolation_uses_meta_scale_factor():
    vit = tiny_vit()
    M = 8
    rows, cols = 5, 11
    table = vit.pos_embed.detach()[0, 1:].reshape(M, M, -1).double().numpy()
    # brute force: source step M / (n + 0.1), Meta's "interpolate_offset" convention
    Ry = _bicubic_1d_matrix(M, rows, M / (rows + 0.1))
    Rx = _bicubic_1d_matrix(M, cols, M / (cols + 0.1))
    want = np.einsum("ri,cj,ijd->rcd", Ry, Rx, table).reshape(rows * cols, -1)
    got = vit.pos_encoding(rows, cols, torch.float32)[0].detach()
    np.testing.assert_allclose(got[1:].numpy(), want, atol=1e-5)
    torch.testing.assert_close(got[0], vit.pos_embed[0, 0].detach())
    # the offset matters: a size-based resize (timm's way) gives different numbers
    by_size = F.interpolate(torch.from_numpy(table).permute(2, 0, 1)[None].float(), size=(rows, cols),
                            mode="bicubic", align_corners=False)[0].permute(1, 2, 0).reshape(rows * cols, -1)
    assert (by_size - got[1:]).abs().max() > 1e-3


def test_pos_embed_unchanged_only_on_the_square_native_grid():
    vit = tiny_vit()
    assert torch.equal(vit.pos_encoding(8, 8, torch.float32), vit.pos_embed.detach())
    # same token count, not square: interpolated (Meta's condition is npatch == N and h == w)
    pe = vit.pos_encoding(4, 16, torch.float32)
    assert pe.shape == vit.pos_embed.shape and not torch.equal(pe, vit.pos_embed.detach())
    # 37 x 37 for the released 518-px models
    with torch.device("meta"):
        big = DinoVisionTransformer("dinov2_vitl14")
    assert big.pos_embed.shape == (1, 1 + 37 * 37, 1024) and big.grid_size == 37


def test_get_intermediate_layers_semantics():
    vit = tiny_vit()
    x = torch.randn(1, 3, 70, 98)  # 5 x 7 tokens: interpolated positions
    with torch.no_grad():
        t = vit.prepare_tokens(x)
        manual = []
        for blk in vit.blocks:
            t = blk(t)
            manual.append(t)
        last2 = vit.get_intermediate_layers(x, n=2)
        chosen = vit.get_intermediate_layers(x, n=[2, 0], return_class_token=True)
        raw = vit.get_intermediate_layers(x, n=[1], norm=False)
        grids = vit.get_intermediate_layers(x, n=1, reshape=True)
    assert len(last2) == 2
    torch.testing.assert_close(last2[0], vit.norm(manual[1])[:, 1:])
    torch.testing.assert_close(last2[1], vit.norm(manual[2])[:, 1:])
    # a list is taken in ascending block order (as Meta's loop does), with LayerNorm-ed class tokens
    torch.testing.assert_close(chosen[0][0], vit.norm(manual[0])[:, 1:])
    torch.testing.assert_close(chosen[1][1], vit.norm(manual[2])[:, 0])
    torch.testing.assert_close(raw[0], manual[1][:, 1:])
    assert grids[0].shape == (1, 64, 5, 7)
    torch.testing.assert_close(grids[0][0, :, 2, 3], last2[1][0, 2 * 7 + 3])
    with pytest.raises(ValueError, match="out of range"):
        vit.get_intermediate_layers(x, n=[3])
    with pytest.raises(ValueError, match="multiple of the patch"):
        vit.get_intermediate_layers(torch.randn(1, 3, 70, 100))


def test_masked_tokens_use_mask_token():
    vit = tiny_vit()
    with torch.no_grad():
        vit.mask_token.normal_()
        x = torch.randn(1, 3, 112, 112)
        masks = torch.zeros(1, 64, dtype=torch.bool)
        masks[0, 5] = True
        t = vit.prepare_tokens(x, masks=masks)
    torch.testing.assert_close(t[0, 1 + 5], vit.mask_token[0] + vit.pos_embed[0, 1 + 5])


def test_released_sizes_and_giant_swiglu():
    counts = {}
    for name in ("dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14"):
        with torch.device("meta"):
            counts[name] = param_count(DinoVisionTransformer(name))
    # ViT-L/14 is 304.37 M (moge_reference.md); S and B: 22.06 M and 86.58 M (DINOv2 model card sizes 21/86 M)
    assert round(counts["dinov2_vitl14"] / 1e6, 2) == 304.37
    assert round(counts["dinov2_vitb14"] / 1e6, 2) == 86.58
    assert round(counts["dinov2_vits14"] / 1e6, 2) == 22.06
    assert 1.1e9 < counts["dinov2_vitg14"] < 1.2e9
    with torch.device("meta"):
        g = DinoVisionTransformer("dinov2_vitg14")
    sd = g.state_dict()
    assert sd["blocks.39.mlp.w12.weight"].shape == (2 * 4096, 1536)
    assert sd["blocks.39.mlp.w3.weight"].shape == (1536, 4096)
    assert DINOV2_ARCHS["dinov2_vitg14"].num_heads == 24
