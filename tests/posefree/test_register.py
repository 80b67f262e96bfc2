"""sim(3) composition of cameras (tested with s = 3.7), view registration, pose metrics."""

import math

import pytest
import torch

from feat2gs.errors import InputError
from feat2gs.geometry.pose import so3_exp
from feat2gs.geometry.umeyama import Sim3, apply_sim3
from feat2gs.posefree.metrics import pose_metrics
from feat2gs.posefree.register import register_views, transform_cameras
from posefree_testlib import synthetic_scene

S = 3.7


def _sim(s=S):
    R = so3_exp(torch.tensor([0.3, -0.5, 0.2], dtype=torch.float64))
    return Sim3(torch.tensor(s, dtype=torch.float64), R, torch.tensor([1.5, -2.0, 0.7], dtype=torch.float64))


def test_moved_cameras_see_moved_points_at_the_same_pixels():
    scene = synthetic_scene(num_views=3, width=32, height=24)
    pts = scene.cameras.unproject(scene.depths).reshape(-1, 3)[::7]
    sim = _sim()
    moved = transform_cameras(scene.cameras, sim)
    uv0, z0 = scene.cameras.project(pts)
    uv1, z1 = moved.project(apply_sim3(pts.double(), *sim).float())
    torch.testing.assert_close(uv1, uv0, atol=2e-3, rtol=1e-5)
    torch.testing.assert_close(z1, S * z0, atol=1e-4 * S * float(z0.max()), rtol=0)
    # the camera centres follow the point map: c' = s R c + t (not R c + s t)
    torch.testing.assert_close(moved.centers.double(), apply_sim3(scene.cameras.centers.double(), *sim),
                               atol=1e-4, rtol=0)
    s, R, t = sim
    wrong = scene.cameras.centers.double() @ R.T + s * t
    assert (moved.centers.double() - wrong).norm(dim=-1).min() > 1.0


def test_register_views_recovers_a_known_similarity_from_points_and_from_cameras():
    scene = synthetic_scene(num_views=5, width=32, height=24)
    ref = scene.cameras
    joint = transform_cameras(ref, Sim3(*_inverse(_sim())))  # the "joint reconstruction" frame
    train, other = [0, 2, 4], [1, 3]
    pts_ref = scene.cameras.subset(train).unproject(scene.depths[train]).reshape(-1, 3)
    pts_joint = apply_sim3(pts_ref.double(), *_inverse(_sim()))
    for kw in ({"src_points": pts_joint, "dst_points": pts_ref.double()}, {}):
        reg, sim, info = register_views(joint.subset(train), joint.subset(other), ref.subset(train), **kw)
        torch.testing.assert_close(reg.viewmats, ref.subset(other).viewmats, atol=2e-4, rtol=0)
        assert abs(info["scale"] - S) < 1e-3 and info["train_centre_rms"] < 1e-4
        assert pose_metrics(reg, ref.subset(other))["rpe_rot_deg"] < 0.05


def _inverse(sim):
    return Sim3(*sim).inverse()


def test_pose_metrics_are_similarity_invariant_and_see_perturbations():
    scene = synthetic_scene(num_views=4, width=32, height=24)
    ref = scene.cameras
    est = transform_cameras(ref, _sim())
    m = pose_metrics(est, ref)
    assert m["ate"] < 1e-4 and m["rpe_rot_deg"] < 1e-2 and m["rel_trans_dir_deg_max"] < 1e-2
    assert abs(m["sim3_scale"] - 1 / S) < 1e-5
    # move one camera centre by 0.1 along x (reference units): ATE sees it (a similarity absorbs a part)
    vm = ref.viewmats.clone()
    vm[2, :3, 3] -= vm[2, :3, :3] @ torch.tensor([0.1, 0.0, 0.0])
    m = pose_metrics(ref.with_viewmats(vm), ref)
    assert 0.01 < m["ate"] < 0.1 and m["rpe_rot_deg"] < 1e-3 and m["rpe_trans"] > 0.02
    # rotate one camera by 2 degrees about its optical axis: relative rotations see exactly 2 degrees
    vm = ref.viewmats.clone()
    vm[1, :3, :3] = so3_exp(torch.tensor([0.0, 0.0, math.radians(2.0)])) @ vm[1, :3, :3]
    m = pose_metrics(ref.with_viewmats(vm), ref)
    assert abs(m["rel_rot_deg_max"] - 2.0) < 1e-3
    with pytest.raises(InputError):
        pose_metrics(ref.subset([0]), ref.subset([0]))
