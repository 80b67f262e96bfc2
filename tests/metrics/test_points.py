import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from feat2gs.errors import InputError
from feat2gs.metrics.points import nearest_distances, point_metrics


def plane_grid(n=200, spacing=0.005):
    """A dense square grid on the z = 0 plane, centred at the origin."""
    a = (np.arange(n) - (n - 1) / 2) * spacing
    x, y = np.meshgrid(a, a, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), np.zeros(n * n)], 1)


def test_nearest_distances_match_brute_force():
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(700, 3)), rng.normal(size=(900, 3))
    brute = torch.cdist(torch.from_numpy(q), torch.from_numpy(r)).min(1).values.numpy()
    np.testing.assert_allclose(nearest_distances(q, r), brute, atol=1e-12)


def test_unaligned_metrics_match_brute_force():
    rng = np.random.default_rng(1)
    pred, gt = rng.normal(size=(500, 3)), rng.normal(size=(800, 3)) * 1.2
    m = point_metrics(pred, gt, align=False, corresponding=False, units="mm")
    D = torch.cdist(torch.from_numpy(pred), torch.from_numpy(gt))
    acc, comp = D.min(1).values.numpy(), D.min(0).values.numpy()
    assert m["accuracy"] == pytest.approx(acc.mean(), rel=1e-12)
    assert m["accuracy_median"] == pytest.approx(np.median(acc), rel=1e-12)
    assert m["completeness"] == pytest.approx(comp.mean(), rel=1e-12)
    assert m["completeness_median"] == pytest.approx(np.median(comp), rel=1e-12)
    assert m["overall"] == pytest.approx(0.5 * (acc.mean() + comp.mean()))
    assert m["distance"] is None and m["units"] == "mm" and m["alignment"] is None
    assert (m["num_pred"], m["num_gt"]) == (500, 800)


def test_plane_shifted_along_normal():
    gt = plane_grid()
    d = 0.03
    pred = gt + np.array([0.0, 0.0, d])
    m = point_metrics(pred, gt, align=False)
    for key in ("accuracy", "accuracy_median", "completeness", "completeness_median", "distance", "distance_median"):
        assert m[key] == pytest.approx(d, rel=1e-9), key
    aligned = point_metrics(pred, gt, align=True)
    for key in ("accuracy", "completeness", "distance"):
        assert aligned[key] < 1e-9, key
    assert aligned["alignment"]["scale"] == pytest.approx(1.0, abs=1e-9)
    assert aligned["alignment"]["translation"][2] == pytest.approx(-d, abs=1e-9)


def test_similarity_transformed_prediction_aligns_to_zero():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(2000, 3))
    R = Rotation.random(random_state=3).as_matrix()
    pred = 0.4 * gt @ R.T + np.array([1.0, -2.0, 0.5])
    raw = point_metrics(pred, gt, align=False)
    aligned = point_metrics(torch.from_numpy(pred).float(), torch.from_numpy(gt).float(), align=True)
    assert raw["distance"] > 1.0
    assert aligned["accuracy"] < 1e-5 and aligned["completeness"] < 1e-5 and aligned["distance"] < 1e-5
    assert aligned["alignment"]["scale"] == pytest.approx(1 / 0.4, rel=1e-5)


@pytest.mark.parametrize("align", [False, True])
def test_gaussian_noise_on_dense_plane(align):
    gt = plane_grid(n=250, spacing=0.004)  # 1 x 1 plane, spacing << sigma
    sigma = 0.02
    rng = np.random.default_rng(5)
    pred = gt + rng.normal(scale=sigma, size=gt.shape)
    m = point_metrics(pred, gt, align=align)
    # Accuracy: distance to a dense plane = |normal component| -> E = sigma sqrt(2/pi) (plane borders add ~1%).
    assert m["accuracy"] == pytest.approx(sigma * math.sqrt(2 / math.pi), rel=0.03)
    # Distance to the own GT point: the mean of a 3D isotropic Gaussian's norm = 2 sigma sqrt(2/pi).
    assert m["distance"] == pytest.approx(2 * sigma * math.sqrt(2 / math.pi), rel=0.01)
    # Completeness: every GT point has many noisy predictions near it, so it is well below the accuracy.
    assert 0 < m["completeness"] < m["accuracy"]


def test_scale_converts_units():
    gt = plane_grid(n=50)
    pred = gt + np.array([0.0, 0.0, 0.01])
    m = point_metrics(pred, gt, align=False, scale=1000.0, units="mm")
    assert m["accuracy"] == pytest.approx(10.0) and m["units"] == "mm"


def test_errors_are_clear():
    p = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(InputError, match="points.pred: is empty"):
        point_metrics(np.zeros((0, 3)), p)
    with pytest.raises(InputError, match="points.gt"):
        point_metrics(p, p[:, :2])
    bad = p.copy()
    bad[0, 0] = np.inf
    with pytest.raises(InputError, match="NaN or inf"):
        point_metrics(bad, p)
    with pytest.raises(InputError, match="equal sizes"):
        point_metrics(p, p[:5])
    with pytest.raises(InputError, match="correspondences"):
        point_metrics(p, p[:5], corresponding=False)  # align=True by default
    with pytest.raises(InputError, match="coincide"):
        point_metrics(np.ones((10, 3)), p)
    with pytest.raises(InputError, match="scale"):
        point_metrics(p, p, scale=0)
