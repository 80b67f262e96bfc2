"""Analytic visibility cases.

A plane z = 5 is seen by a train camera at the origin (64 x 48 px, f = 50, looking along +z): it covers
x in [-3.2, 3.2]. The test camera is the same camera moved by +3.2 along x, so test column j (centre
j + 0.5) sees x = 3.2 + (j + 0.5 - 32) / 10 on the plane, which projects exactly to the centre of train column
j + 32: the left half of the test image (j < 32) is seen by the train view, the right half is not.
"""

import pytest
import torch

from feat2gs.errors import InputError
from feat2gs.geometry.visibility import (closing, compute_visibility, depth_agreement_masks, splat_depth,
                                         visibility_masks)
from feat2gs.init.base import PointInit
from feat2gs.scene import Cameras, Scene

W, H, F, Z = 64, 48, 50.0, 5.0


def camera(x: float) -> Cameras:
    K = torch.tensor([[[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]]])
    T = torch.eye(4)[None].clone()
    T[0, 0, 3] = -x  # world-to-camera translation of a camera centred at (x, 0, 0)
    return Cameras(K, T, W, H)


def scene(cams: Cameras, depth: torch.Tensor | None, name: str, masks=None) -> Scene:
    return Scene(name=name, images=torch.rand(len(cams), 3, H, W), cameras=cams,
                 image_names=[f"{name}{i}" for i in range(len(cams))], depths=depth, masks=masks)


def plane_depth(n=1) -> torch.Tensor:
    return torch.full((n, H, W), Z)


def occluded_train_depth() -> torch.Tensor:
    # An occluder at z = 3 spanning x in [0.6, 1.2] hides plane x in [1, 2] from the train view (train
    # columns 42..51); it lies outside the test frustum, so the test view sees the plane there.
    d = plane_depth()
    d[:, :, 42:52] = 3.0
    return d


def point_init(cams: Cameras, depth: torch.Tensor, valid: torch.Tensor | None = None) -> PointInit:
    valid = depth > 0 if valid is None else valid
    return PointInit(points=cams.unproject(depth), valid=valid, colors=torch.rand(*depth.shape, 3), depth=depth,
                     cameras=cams, method="test")


def columns(mask: torch.Tensor) -> list[int]:
    """Columns fully valid (all rows); asserts every column is either fully valid or fully invalid."""
    full, empty = mask.all(0), (~mask).all(0)
    assert bool((full | empty).all()), "mask is not column-constant"
    return full.nonzero()[:, 0].tolist()


def test_depth_method_half_seen():
    m = depth_agreement_masks(camera(3.2), plane_depth(), camera(0.0), plane_depth())
    assert columns(m[0]) == list(range(32))


def test_depth_method_occlusion():
    m = depth_agreement_masks(camera(3.2), plane_depth(), camera(0.0), occluded_train_depth())
    # Test column j is checked against train columns j+32 and j+33: both occluded for j in 10..18.
    assert columns(m[0]) == [j for j in range(32) if not 10 <= j <= 18]


def test_depth_method_needs_agreeing_depth_and_test_depth():
    test_depth = plane_depth()
    test_depth[:, :, :5] = 0  # unknown test depth -> invalid
    train_depth = plane_depth() * 1.05  # 5 % off: outside rel_tol 0.01, inside 0.1
    assert not depth_agreement_masks(camera(3.2), test_depth, camera(0.0), train_depth, rel_tol=0.01).any()
    m = depth_agreement_masks(camera(3.2), test_depth, camera(0.0), train_depth, rel_tol=0.1)
    assert columns(m[0]) == list(range(5, 32))


def test_depth_method_two_train_views_union():
    train = Cameras(torch.cat([camera(0.0).K, camera(6.4).K]), torch.cat([camera(0.0).viewmats, camera(6.4).viewmats]),
                    W, H)
    m = depth_agreement_masks(camera(3.2), plane_depth(), train, plane_depth(2))
    assert bool(m.all())


def test_splat_method_half_seen_and_occlusion_hole():
    train_cam = camera(0.0)
    depth = occluded_train_depth()
    init = point_init(train_cam, depth)
    test = scene(camera(3.2), None, "test")
    vis = compute_visibility(test, init=init)
    assert vis.method == "splat"
    # Plane points land on the centres of test columns k - 32; the plane behind the occluder (train columns
    # 42..51 -> test 10..19) is missing, a gap too wide for the closing radius.
    assert columns(vis.masks[0]) == [j for j in range(32) if not 10 <= j <= 19]
    assert torch.allclose(vis.depth[0][:, :10], torch.full((H, 10), Z))
    assert (vis.depth[0][:, 32:] == 0).all()


def test_splat_closing_fills_small_holes_only():
    train_cam = camera(0.0)
    depth = plane_depth()
    valid = torch.ones(1, H, W, dtype=torch.bool)
    valid[:, ::2, ::3] = False  # sparse one-pixel holes
    init = point_init(train_cam, depth, valid)
    test = scene(camera(3.2), None, "test")
    raw = splat_depth(test.cameras, init.points[init.valid]) > 0
    assert not raw[0, :, :32].all()
    filled = visibility_masks(init, test, closing_radius=1)
    assert columns(filled[0]) == list(range(32))
    assert torch.equal(closing(raw, 0), raw)


def test_auto_method_scene_masks_and_errors():
    train_cam, test_cam = camera(0.0), camera(3.2)
    masks = torch.zeros(1, H, W, dtype=torch.bool)
    masks[:, :, 20:40] = True
    test = scene(test_cam, plane_depth(), "test", masks=masks)
    train = scene(train_cam, plane_depth(), "train")
    vis = compute_visibility(test, train=train)
    assert vis.method == "depth" and vis.depth is None
    assert columns(vis.masks[0]) == list(range(20, 32))
    assert columns(compute_visibility(test, train=train, use_masks=False).masks[0]) == list(range(32))
    # Without train depth, the initialisation's depth maps stand in for them.
    init = point_init(train_cam, occluded_train_depth())
    vis = compute_visibility(test, init=init, train=scene(train_cam, None, "train"), use_masks=False)
    assert vis.method == "depth" and columns(vis.masks[0]) == [j for j in range(32) if not 10 <= j <= 18]
    with pytest.raises(InputError, match="splat method needs"):
        compute_visibility(scene(test_cam, None, "test"), train=train)
    with pytest.raises(InputError, match="depth method needs"):
        compute_visibility(scene(test_cam, None, "test"), init=init, method="depth")
    with pytest.raises(InputError, match="unknown method"):
        compute_visibility(test, train=train, method="magic")
