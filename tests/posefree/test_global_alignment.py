"""Global alignment without network weights: pairwise maps made from the synthetic scene's ground truth."""


import pytest
import torch

from feat2gs.errors import InputError
from feat2gs.metrics.points import point_metrics
from feat2gs.posefree.alignment import AlignmentOptions, estimate_focal, global_alignment, occluding_points
from feat2gs.posefree.graph import check_connected, make_pairs
from feat2gs.posefree.metrics import pairwise_pose_errors, pose_metrics
from feat2gs.posefree.pairwise import PairwisePrediction
from posefree_testlib import gt_pairwise, synthetic_scene


@pytest.fixture(scope="module")
def scene():
    return synthetic_scene(num_views=4, width=64, height=48)


@pytest.fixture(scope="module")
def aligned(scene):
    pred, outlier = gt_pairwise(scene, noise=0.005, outlier_frac=0.05)
    return pred, outlier, global_alignment(pred, AlignmentOptions(steps=300))


def test_recovers_relative_poses_and_focal(scene, aligned):
    _, _, res = aligned
    err = pairwise_pose_errors(res.cameras, scene.cameras)
    assert err["rel_rot_deg_max"] < 1.0, err
    assert err["rel_trans_dir_deg_max"] < 2.0, err
    f_gt = float(scene.cameras.K[0, 0, 0])
    assert (res.cameras.K[:, 0, 0] / f_gt - 1).abs().max() < 0.02, (res.cameras.K[:, 0, 0], f_gt)
    assert res.history[-1] < res.history[0]  # the optimiser improved on the MST initialisation
    pm = pose_metrics(res.cameras, scene.cameras)
    assert pm["ate_rel"] < 0.01, pm


def test_cleaned_points_accuracy_near_the_injected_noise(scene, aligned):
    _, outlier, res = aligned
    gt = scene.cameras.unproject(scene.depths)
    noise_scale = 0.005 * float(scene.depths[scene.depths > 0].mean())  # injected std per axis, scene units
    # every kept point, including the injected outliers the cleaning leaves (their weight is ~0, so their
    # depth stays where the outlier put it): the mean is near the noise, the median well below it
    m = point_metrics(res.points[res.valid], gt[res.valid], align=True, corresponding=True)
    assert m["accuracy"] < 1.25 * noise_scale and m["completeness"] < 1.25 * noise_scale, (m, noise_scale)
    assert m["accuracy_median"] < 0.6 * noise_scale, (m, noise_scale)
    # the inlier pixels: the alignment averages the pairs' noisy maps, so below the injected noise
    keep = res.valid & ~outlier
    m = point_metrics(res.points[keep], gt[keep], align=True, corresponding=True)
    assert m["accuracy"] < 0.5 * noise_scale, (m, noise_scale)
    # cleaning (tolerance 0.1 %, below the noise) drops about half of the outliers and a third of all pixels
    assert float((res.valid & outlier).sum() / outlier.sum()) < 0.7
    assert res.valid.float().mean() > 0.6


def test_shared_and_known_focal(scene):
    pred, _ = gt_pairwise(scene, noise=0.002, outlier_frac=0.0, seed=1)
    res = global_alignment(pred, AlignmentOptions(steps=100, shared_focal=True))
    f = res.cameras.K[:, 0, 0]
    assert torch.allclose(f, f[0].expand_as(f))
    assert abs(float(f[0]) / float(scene.cameras.K[0, 0, 0]) - 1) < 0.02
    f_known = float(scene.cameras.K[0, 0, 0])
    res = global_alignment(pred, AlignmentOptions(steps=50, focal=f_known))
    assert torch.allclose(res.cameras.K[:, 0, 0], torch.tensor(f_known))


def test_estimate_focal_is_exact_on_clean_maps(scene):
    cam = scene.cameras.unproject(scene.depths)  # world; bring view 0 to its camera frame
    R, t = scene.cameras.viewmats[0, :3, :3], scene.cameras.viewmats[0, :3, 3]
    pts = cam[0] @ R.T + t
    f = estimate_focal(pts[None])
    assert abs(float(f) - float(scene.cameras.K[0, 0, 0])) < 1e-3 * float(scene.cameras.K[0, 0, 0])


def test_cleaning_drops_points_in_front_of_a_confident_view():
    from feat2gs.scene import Cameras
    K = torch.tensor([[[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]]).repeat(2, 1, 1)
    vm = torch.eye(4).repeat(2, 1, 1)
    cams = Cameras(K, vm, 16, 16)
    depth = torch.full((2, 16, 16), 2.0)
    depth[0, 4, 4] = 1.0  # a floater of view 0, in front of view 1's surface
    pts = cams.unproject(depth)
    conf = torch.full((2, 16, 16), 2.0)
    conf[0, 4, 4] = 1.5
    bad = occluding_points(cams, depth, pts, conf)
    assert bad[0, 4, 4] and int(bad.sum()) == 1
    conf[0, 4, 4] = 3.0  # more confident than view 1: kept
    assert not occluding_points(cams, depth, pts, conf).any()


def test_graphs():
    assert make_pairs(3) == [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)]
    assert make_pairs(4, "swin-1", symmetrize=False) == [(0, 1), (1, 2), (2, 3)]
    assert (3, 0) not in make_pairs(4, "swin-1") and (0, 3) in make_pairs(4, "swin-1-cyclic")
    desc = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    assert make_pairs(4, "knn-1", symmetrize=False, descriptors=desc) == [(0, 1), (2, 3)]
    with pytest.raises(InputError, match="disconnected"):
        check_connected(4, make_pairs(4, "knn-1", descriptors=desc))
    with pytest.raises(InputError, match="at least 2 views"):
        make_pairs(1)
    with pytest.raises(InputError, match="bad scene graph"):
        make_pairs(3, "swin-x")


def test_bad_pairwise_input(scene):
    pred, _ = gt_pairwise(scene, outlier_frac=0.0)
    with pytest.raises(InputError, match="pts_j"):
        PairwisePrediction(pred.pairs, pred.pts_i, pred.pts_j[:, :-1], pred.conf_i, pred.conf_j, pred.num_views)
    one_way = [k for k, (i, j) in enumerate(pred.pairs) if i < j]
    sub = PairwisePrediction([pred.pairs[k] for k in one_way], pred.pts_i[one_way], pred.pts_j[one_way],
                             pred.conf_i[one_way], pred.conf_j[one_way], pred.num_views)
    with pytest.raises(InputError, match="never the first view"):
        global_alignment(sub, AlignmentOptions(steps=1))
