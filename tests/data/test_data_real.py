"""The three shared real scenes load with consistent geometry: feature matches between views agree with the
loaded poses (median symmetric epipolar distance of a few pixels at most, and much larger once a pose is
perturbed), LLFF's SfM points project into the images where their colours are, DTU's masks and bounding
sphere agree, Middlebury's bounding box projects into the images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_testlib import OrbMatcher, fundamental, rotate_view, symmetric_epipolar_distance

from feat2gs.data import detect_format, load_scene


@pytest.fixture(scope="module")
def fern(shared_data):
    return load_scene(shared_data / "llff" / "fern")


@pytest.fixture(scope="module")
def dtu(shared_data):
    return load_scene(shared_data / "dtu" / "scan37")


@pytest.fixture(scope="module")
def temple(shared_data):
    return load_scene(shared_data / "middlebury" / "templeSparseRing")


def check_epipolar(scene, pairs, max_median_px, min_matches=25, mask=True):
    """ORB matches, filtered by a RANSAC fundamental matrix fitted to the matches alone, must lie on the
    epipolar lines of the loaded cameras."""
    matcher = OrbMatcher(scene, mask=mask)
    for i, j in pairs:
        xi, xj = matcher.match(i, j)
        assert len(xi) >= min_matches, f"only {len(xi)} inlier matches between views {i} and {j}"
        d = symmetric_epipolar_distance(fundamental(scene.cameras, i, j), xi, xj)
        med = float(np.median(d))
        assert med < max_median_px, f"views {i},{j}: median epipolar distance {med:.2f} px"
        # control: the same matches with view j turned by 1 degree (about its x or its y axis, whichever moves
        # points across the epipolar lines) disagree clearly
        bad = max(float(np.median(symmetric_epipolar_distance(
            fundamental(rotate_view(scene.cameras, j, 1.0, axis), i, j), xi, xj))) for axis in (0, 1))
        assert bad > 4 * med and bad > 1.0, f"views {i},{j}: perturbed pose still fits ({bad:.2f} px)"


def test_formats_detected(shared_data):
    assert detect_format(shared_data / "llff" / "fern") == "llff"
    assert detect_format(shared_data / "dtu" / "scan37") == "idr"
    assert detect_format(shared_data / "middlebury" / "templeSparseRing") == "middlebury"


def test_llff_fern(fern):
    s = fern
    assert (s.num_views, s.width, s.height) == (20, 504, 378)
    assert s.image_names[0] == "image000.png" and s.meta["image_dir"].endswith("images_8")
    f = 3260.5263328805895 * 504 / 4032  # hwf focal scaled from 4032 px to 504 px
    torch.testing.assert_close(s.cameras.K[:, 0, 0], torch.full((20,), f), rtol=1e-6, atol=0)
    torch.testing.assert_close(s.cameras.K[:, :2, 2], torch.tensor([252.0, 189.0]).expand(20, 2))
    assert s.meta["colmap_camera"][0]["model"] == "SIMPLE_RADIAL"
    # LLFF's focal is COLMAP's and COLMAP's principal point is the exact image centre (no half-pixel shift)
    assert s.meta["colmap_camera"][0]["params"][:3] == pytest.approx([3260.5263328805895, 2016.0, 1512.0])
    check_epipolar(s, [(3, 6), (10, 19)], max_median_px=1.0, mask=False)


def test_llff_sparse_points_in_frame(fern):
    s = fern
    pts = s.sparse_points
    assert pts.shape == (10091, 3)
    uv, z = s.cameras.project(pts)
    assert (z > 0).all()
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < s.width) & (uv[..., 1] >= 0) & (uv[..., 1] < s.height)
    assert inside.float().mean() > 0.8 and inside.any(0).all()
    # LLFF's bounds are depth percentiles of these points: nearly all depths lie within them
    within = (z >= s.depth_range[:, :1] * 0.99) & (z <= s.depth_range[:, 1:] * 1.01)
    assert within[inside].float().mean() > 0.98
    # the points sit where their colours are: the image colour at the projection matches the SfM colour
    # better than 6 px to the side, and far better than a shuffled pairing (SfM colours are full-resolution
    # averages over the track and some points are occluded in a given view, so the match is loose)
    cols = s.meta["sparse_colors"].float() / 255
    gen = torch.Generator().manual_seed(0)
    for v in (0, 10):
        ok = inside[v]
        j, i = uv[v, ok, 0].long(), uv[v, ok, 1].long()
        err = (s.images[v][:, i, j].T - cols[ok]).abs().mean(1).median()
        side = (s.images[v][:, i, (j + 6).clamp(max=s.width - 1)].T - cols[ok]).abs().mean(1).median()
        perm = torch.randperm(int(ok.sum()), generator=gen)
        shuffled = (s.images[v][:, i, j].T - cols[ok][perm]).abs().mean(1).median()
        assert err < 0.12 and err < 0.75 * side and err < 0.5 * shuffled, (v, err, side, shuffled)


def test_llff_resized_keeps_geometry(fern):
    half = fern.resized(252, 189)
    torch.testing.assert_close(half.cameras.K[0, 0, 0], fern.cameras.K[0, 0, 0] / 2)
    uv, _ = fern.cameras.project(fern.sparse_points[:100])
    uv2, _ = half.cameras.project(fern.sparse_points[:100])
    torch.testing.assert_close(uv2, uv / 2, rtol=1e-5, atol=1e-4)
    check_epipolar(half, [(3, 6)], max_median_px=1.0, mask=False)


def test_dtu_scan37(dtu):
    s = dtu
    assert (s.num_views, s.width, s.height) == (49, 400, 300)
    assert s.masks is not None and s.masks.shape == (49, 300, 400)
    frac = s.masks.float().mean((1, 2))
    assert (frac > 0.05).all() and (frac < 0.95).all()
    K = s.cameras.K
    assert (K[:, 0, 1] == 0).all() and (K[:, [0, 1], [0, 1]] > 0).all()
    assert s.meta["max_abs_skew"] < 1e-3
    R = s.cameras.viewmats[:, :3, :3]
    assert torch.allclose(torch.linalg.det(R), torch.ones(49), atol=1e-5)
    # the world_mat is reproduced by K [R | t] up to scale
    wm = np.load(s.meta["camera_file"])["world_mat_22"][:3].astype(np.float64)
    P = (K[22].double() @ s.cameras.viewmats[22, :3].double()).numpy()
    np.testing.assert_allclose(P / P[2, 3], wm / wm[2, 3], rtol=2e-4, atol=1e-4 * np.abs(wm / wm[2, 3]).max())
    # the bounding sphere (scale_mat) holds the object: its centre projects inside every image, into the mask
    c = s.meta["scale_mat"][:3, 3]
    uv, z = s.cameras.project(c[None])
    assert (z[:, 0] > s.depth_range[:, 0]).all() and (z[:, 0] < s.depth_range[:, 1]).all()
    j, i = uv[:, 0, 0].long(), uv[:, 0, 1].long()
    assert s.masks[torch.arange(49), i, j].float().mean() > 0.9
    check_epipolar(s, [(22, 25), (25, 28)], max_median_px=1.5)


def test_dtu_normalized_frame(dtu, shared_data):
    n = load_scene(shared_data / "dtu" / "scan37", normalize=True, masks=False)
    S = dtu.meta["scale_mat"].double()
    # the same camera: world = S @ normalised, so viewmat_normalised ~ viewmat_world @ S up to the scale of S
    c_world = dtu.cameras.centers.double()
    c_norm = n.cameras.centers.double()
    mapped = c_norm @ S[:3, :3].T + S[:3, 3]
    torch.testing.assert_close(mapped, c_world, rtol=1e-4, atol=1e-2)
    assert (n.depth_range[:, 0] > 0).all() and torch.allclose(n.depth_range[:, 1] - n.depth_range[:, 0],
                                                              torch.full((49,), 2.0))


def test_middlebury_temple(temple):
    s = temple
    assert (s.num_views, s.width, s.height) == (16, 640, 480)
    assert s.image_names[0] == "templeSR0001.png"
    torch.testing.assert_close(s.cameras.K[0], torch.tensor([[1520.4, 0.0, 302.32], [0.0, 1525.9, 246.87],
                                                             [0.0, 0.0, 1.0]]))
    lo, hi = (torch.tensor(x) for x in s.meta["bbox"])
    corners = torch.stack([torch.stack([a, b, c]) for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                           for c in (lo[2], hi[2])])
    uv, z = s.cameras.project(corners)
    assert (z > 0).all()
    assert (uv[..., 0] > -20).all() and (uv[..., 0] < 660).all() and (uv[..., 1] > -20).all() \
        and (uv[..., 1] < 500).all()
    torch.testing.assert_close(s.depth_range[:, 0], z.min(1).values)
    torch.testing.assert_close(s.depth_range[:, 1], z.max(1).values)
    # views 2 and 13 are nearly the same viewpoint from the other gantry side: rotated by 180 degrees in the image
    check_epipolar(s, [(0, 1), (2, 13)], max_median_px=1.5, mask=False)
