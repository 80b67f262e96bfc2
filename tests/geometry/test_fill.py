"""Hole filling (push-pull) and semi-global matching, against analytic cases and brute force."""

import torch

from feat2gs.geometry.fill import fill_depth, push_pull_fill
from feat2gs.init.mvs import sgm_aggregate


def test_push_pull_keeps_valid_pixels_and_fills_constants_and_ramps():
    g = torch.Generator().manual_seed(0)
    valid = torch.rand(2, 37, 53, generator=g) > 0.7
    const = torch.full((2, 37, 53), 3.5)
    out = push_pull_fill(torch.where(valid, const, torch.zeros_like(const)), valid.float())
    assert torch.allclose(out, const, atol=1e-5)  # a constant is reproduced exactly everywhere
    ramp = torch.linspace(1, 2, 53).expand(2, 37, 53).contiguous()
    out = push_pull_fill(torch.where(valid, ramp, torch.zeros_like(ramp)), valid.float())
    assert torch.equal(out[valid], ramp[valid])
    assert (out - ramp).abs().max() < 0.1  # holes get values between their neighbours
    assert out.min() >= 1 - 1e-6 and out.max() <= 2 + 1e-6  # a convex combination: no overshoot


def test_fill_depth_interpolates_inverse_depth():
    depth = torch.zeros(1, 8, 8)
    depth[:, :, :4] = 2.0
    depth[:, :, 4:] = 4.0
    valid = torch.ones(1, 8, 8, dtype=torch.bool)
    valid[:, 3:5, :] = False  # a band of holes
    out = fill_depth(torch.where(valid, depth, torch.zeros_like(depth)), valid)
    assert torch.equal(out[valid], depth[valid])
    assert ((out >= 2 - 1e-5) & (out <= 4 + 1e-5)).all()


def brute_force_sgm_row(cost: torch.Tensor, p1: float, p2: float) -> torch.Tensor:
    """One left-to-right scan line of SGM with a constant P2, written out plainly. cost (D, W)."""
    D, W = cost.shape
    L = torch.zeros_like(cost)
    L[:, 0] = cost[:, 0]
    for x in range(1, W):
        m = L[:, x - 1].min()
        for d in range(D):
            cands = [L[d, x - 1], m + p2]
            if d > 0:
                cands.append(L[d - 1, x - 1] + p1)
            if d < D - 1:
                cands.append(L[d + 1, x - 1] + p1)
            L[d, x] = cost[d, x] + min(cands) - m
    return L


def test_sgm_matches_brute_force_on_a_single_row():
    g = torch.Generator().manual_seed(1)
    D, W = 7, 12
    cost = torch.rand(1, D, 1, W, generator=g)
    grey = torch.zeros(1, 1, W)  # no edges: P2 is constant
    total = sgm_aggregate(cost, grey, 0.1, 0.4, edge_scale=0.0)
    fwd = brute_force_sgm_row(cost[0, :, 0], 0.1, 0.4)
    bwd = brute_force_sgm_row(cost[0, :, 0].flip(-1), 0.1, 0.4).flip(-1)
    # the vertical passes over a single row are the cost itself, once each way
    assert torch.allclose(total[0, :, 0], fwd + bwd + 2 * cost[0, :, 0], atol=1e-5)


def test_sgm_without_penalties_is_winner_take_all_and_smooths_noise():
    g = torch.Generator().manual_seed(2)
    D, H, W = 16, 20, 24
    true_plane = 5
    cost = torch.rand(1, D, H, W, generator=g) * 0.2 + 0.5
    cost[:, true_plane] = 0.45
    noisy = cost + torch.rand(1, D, H, W, generator=g) * 0.3  # noise larger than the margin
    grey = torch.zeros(1, H, W)
    wta = noisy.argmin(1)
    free = sgm_aggregate(noisy, grey, 0.0, 0.0).argmin(1)
    assert torch.equal(free, wta)  # no penalties: each pixel alone (4 paths x its own cost)
    smooth = sgm_aggregate(noisy, grey, 0.02, 0.2).argmin(1)
    assert (smooth == true_plane).float().mean() > (wta == true_plane).float().mean() + 0.2
