"""The synthetic scene: exact multi-view consistency of depth and colour, surfaces matching their analytic
definitions, the pixel-centre convention under resizing, determinism from the seed."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from feat2gs.data.synthetic import FIRST_OBJECT_ID, arc_cameras, make_synthetic_scene, make_world
from feat2gs.errors import InputError


@pytest.fixture(scope="module")
def point_sampled():
    """Colours sampled at pixel centres (supersample=1): a pixel's colour belongs to its depth's surface point."""
    return make_synthetic_scene(seed=0, num_views=6, width=96, height=72, supersample=1)


@pytest.fixture(scope="module")
def world():
    return make_world(seed=0)


def test_shapes_and_ranges():
    s = make_synthetic_scene()
    assert (s.num_views, s.width, s.height) == (8, 128, 96)
    assert s.images.min() >= 0 and s.images.max() <= 1
    assert s.masks.all(), "every pixel of the default path sees a surface"
    assert (s.depths > 0).all()
    assert (s.depth_range[:, 0] == s.depths.flatten(1).min(1).values).all()
    assert (s.depth_range[:, 1] == s.depths.flatten(1).max(1).values).all()
    assert s.points.shape == (8 * 128 * 96, 3)
    ids = s.meta["object_ids"]
    assert set(ids.unique().tolist()) == set(range(len(s.meta["objects"]))), "ground, wall and every object seen"
    objects = make_synthetic_scene(mask="objects")
    assert torch.equal(objects.masks, ids >= FIRST_OBJECT_ID)
    assert 0.05 < objects.masks.float().mean() < 0.5
    # cameras on the arc, in order, looking at the target, OpenCV: the target is straight ahead
    uv, z = s.cameras.project(torch.tensor([[0.0, 0.3, 0.45]]))
    torch.testing.assert_close(uv[:, 0], torch.tensor([64.0, 48.0]).expand(8, 2), atol=1e-3, rtol=0)
    assert (z > 0).all()
    az = torch.atan2(s.cameras.centers[:, 0], -(s.cameras.centers[:, 1] - 0.3))
    assert (az.diff() > 0).all() and math.isclose(float(az[-1] - az[0]), math.radians(80), abs_tol=1e-5)


def test_surfaces_match_their_definitions(point_sampled):
    """Unprojected depth pixels lie on the analytic surface their object id names."""
    s = point_sampled
    X = s.cameras.unproject(s.depths).double()
    ids = s.meta["object_ids"].long()
    for k, obj in enumerate(s.meta["objects"]):
        P = X[ids == k]
        if obj["kind"] == "plane":
            res = (P - torch.tensor(obj["point"], dtype=P.dtype)) @ torch.tensor(obj["normal"], dtype=P.dtype)
        elif obj["kind"] == "sphere":
            res = (P - torch.tensor(obj["centre"], dtype=P.dtype)).norm(dim=1) - obj["radius"]
        elif obj["kind"] == "box":
            a = -obj["yaw"]
            R = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]], dtype=P.dtype)
            q = ((P - torch.tensor(obj["centre"], dtype=P.dtype)) @ R.T).abs() - torch.tensor(obj["half_size"],
                                                                                              dtype=P.dtype)
            res = q.max(1).values  # 0 on the surface of the box
        else:
            c = torch.tensor(obj["base_centre"], dtype=P.dtype)
            rad = (P[:, :2] - c[:2]).norm(dim=1) - obj["radius"]
            h = P[:, 2] - c[2]
            on_side = rad.abs() < 1e-4
            cap = torch.minimum(h.abs(), (h - obj["height"]).abs())
            res = torch.where(on_side, h.clamp(0, obj["height"]) - h, cap)
            assert (rad <= 1e-4).all()
        assert res.abs().max() < 2e-4, (obj, res.abs().max())


def test_multiview_consistency(point_sampled, world):
    """Unproject pixels of view i with their depth, project into view j: where visible (checked by casting
    view j's ray), the depth of the ray hit equals the projected depth, the colour equals view i's colour,
    and view j's depth map agrees (inverse depth interpolated between pixel centres)."""
    s = point_sampled
    H, W = s.height, s.width
    X = s.cameras.unproject(s.depths)  # (V, H, W, 3)
    checked = 0
    for i, j in [(0, 1), (2, 5), (4, 3)]:
        Xi = X[i, ::2, ::2].reshape(-1, 3)
        col_i = s.images[i][:, ::2, ::2].reshape(3, -1).T
        uv, z = s.cameras.project(Xi)
        uv, z = uv[j], z[j]
        inside = (z > 0) & (uv[:, 0] > 1) & (uv[:, 0] < W - 1) & (uv[:, 1] > 1) & (uv[:, 1] < H - 1)
        Xi, col_i, uv, z = Xi[inside], col_i[inside], uv[inside], z[inside]
        cj = s.cameras.centers[j].double()
        dirs = (Xi.double() - cj) / z.double()[:, None]  # camera-z component 1: hit parameter = z-depth in j
        hit = world.cast(cj, dirs)
        visible = (hit.t - z.double()).abs() < 1e-4 * z.double()
        assert visible.float().mean() > 0.6
        # colour: a view-independent function of the surface point
        col_j = world.shade(hit)[visible].float()
        close = (col_j - col_i[visible]).abs().max(1).values < 1e-5
        assert close.float().mean() > 0.995
        # view j's depth map: inverse depth is affine in pixel coordinates on a plane, so interpolating it
        # between the 4 pixel centres around (u, v) is exact on planes and near-exact on curved surfaces
        u, v = uv[visible, 0] - 0.5, uv[visible, 1] - 0.5  # to pixel-index coordinates
        x0, y0 = u.floor().long(), v.floor().long()
        fx, fy = u - x0, v - y0
        inv = 1 / s.depths[j].double()
        idsj = s.meta["object_ids"][j]
        same = (idsj[y0, x0] == idsj[y0, x0 + 1]) & (idsj[y0, x0] == idsj[y0 + 1, x0]) & \
            (idsj[y0, x0] == idsj[y0 + 1, x0 + 1]) & (idsj[y0, x0] == hit.obj[visible])
        interp = (inv[y0, x0] * (1 - fx) * (1 - fy) + inv[y0, x0 + 1] * fx * (1 - fy) + inv[y0 + 1, x0] * (1 - fx) * fy
                  + inv[y0 + 1, x0 + 1] * fx * fy)
        rel = ((1 / interp) - z[visible].double()).abs() / z[visible].double()
        assert same.float().mean() > 0.8
        assert rel[same].median() < 1e-5 and torch.quantile(rel[same], 0.95) < 2e-3
        checked += int(same.sum())
    assert checked > 1500


def test_supersampling_and_resizing_follow_pixel_centres():
    """2x2 supersampling at 128x96 samples exactly the pixel centres of the 256x192 image: pooling the
    point-sampled 256x192 render by 2 gives the 128x96 render. Rescaled K maps points to the same relative
    image position."""
    lo = make_synthetic_scene(seed=1, num_views=2, width=128, height=96, supersample=2)
    hi = make_synthetic_scene(seed=1, num_views=2, width=256, height=192, supersample=1)
    torch.testing.assert_close(F.avg_pool2d(hi.images, 2), lo.images, atol=1e-5, rtol=0)
    torch.testing.assert_close(hi.cameras.K[:, :2], lo.cameras.K[:, :2] * 2)
    resized = hi.resized(128, 96)
    torch.testing.assert_close(resized.cameras.K, lo.cameras.K)
    uv_hi, _ = hi.cameras.project(lo.points[::101])
    uv_lo, _ = resized.cameras.project(lo.points[::101])
    torch.testing.assert_close(uv_lo, uv_hi / 2, atol=1e-4, rtol=1e-6)
    # a non-centred principal point is honoured: the target projects onto it
    off = arc_cameras(2, 64, 48, principal_point=(30.0, 20.0))
    uv, _ = off.project(torch.tensor([[0.0, 0.3, 0.45]]))
    torch.testing.assert_close(uv[:, 0], torch.tensor([30.0, 20.0]).expand(2, 2), atol=1e-3, rtol=0)


def test_determinism_and_seeds():
    a = make_synthetic_scene(seed=3, num_views=3, width=48, height=36)
    b = make_synthetic_scene(seed=3, num_views=3, width=48, height=36)
    for f in ("images", "depths", "masks", "points", "depth_range"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert torch.equal(a.cameras.viewmats, b.cameras.viewmats) and a.meta["objects"] == b.meta["objects"]
    c = make_synthetic_scene(seed=4, num_views=3, width=48, height=36)
    assert a.meta["objects"] != c.meta["objects"]
    assert (a.images - c.images).abs().mean() > 0.05 and not torch.equal(a.depths, c.depths)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    make_synthetic_scene(seed=3, num_views=1, width=16, height=12)
    assert torch.equal(state, torch.get_rng_state()), "global RNG untouched"


def test_shadows_and_options():
    lit = make_synthetic_scene(seed=0, num_views=2, width=64, height=48, shadows=False)
    shaded = make_synthetic_scene(seed=0, num_views=2, width=64, height=48)
    diff = (lit.images - shaded.images).amax(1)
    assert (diff >= -1e-6).all(), "shadows only darken"
    assert 0.005 < (diff > 0.02).float().mean() < 0.3
    assert make_synthetic_scene(num_views=1, width=16, height=12, num_objects=0).meta["objects"][-1]["kind"] == "plane"
    for bad, field in [(dict(mask="some"), "synthetic.mask"), (dict(supersample=0), "synthetic.supersample"),
                       (dict(arc_deg=200), "synthetic.arc_deg"), (dict(num_views=0), "synthetic.num_views")]:
        with pytest.raises(InputError, match=field):
            make_synthetic_scene(**bad)
