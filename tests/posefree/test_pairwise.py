"""Pairwise inference: every image encoded once, pairs decoded in batches; the result does not depend on the
batch size and matches running the network on each pair alone."""

import torch

from backbones.croco_stereo import StereoConfig, StereoModel
from feat2gs.posefree.graph import make_pairs
from feat2gs.posefree.pairwise import pairwise_inference

TINY = dict(embed_dim=32, depth=2, num_heads=2, dec_embed_dim=24, dec_depth=4, dec_num_heads=2,
            dpt_layer_dims=(8, 8, 16, 16), dpt_feature_dim=16)


def test_batched_pairwise_inference_matches_pair_by_pair():
    # float64: random weights give raw outputs whose exp() amplifies float32 reduction-order differences
    model = StereoModel(StereoConfig(**TINY)).init_weights(1).eval().double()
    images = torch.rand(3, 3, 32, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pairs = make_pairs(3)
    a = pairwise_inference(model, images, pairs, batch_size=4)
    b = pairwise_inference(model, images, pairs, batch_size=1)
    assert a.pts_i.shape == (6, 32, 48, 3) and a.conf_j.shape == (6, 32, 48)
    for name in ("pts_i", "pts_j", "conf_i", "conf_j"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        r1, r2 = model(images[2:3], images[0:1])
    k = pairs.index((2, 0))
    torch.testing.assert_close(a.pts_i[k], r1["pts3d"][0].float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.pts_j[k], r2["pts3d"][0].float(), atol=1e-5, rtol=1e-5)
