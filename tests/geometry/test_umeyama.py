import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from feat2gs.errors import InputError
from feat2gs.geometry.umeyama import Sim3, apply_sim3, umeyama


def random_sim3(seed: int):
    rng = np.random.default_rng(seed)
    R = Rotation.random(random_state=seed).as_matrix()
    s = float(np.exp(rng.uniform(-1, 1)))
    t = rng.normal(size=3) * 3
    return s, R, t


def cost(src, dst, s, R, t, w=None):
    r = dst - (s * src @ R.T + t)
    e = (r ** 2).sum(1)
    return float(e.sum() if w is None else (w * e).sum())


def brute_force_fit(src, dst, w=None, with_scale=True, seed=0):
    """Numerical least squares over (rotation vector, log scale, t) from several starts (independent reference)."""

    def f(x):
        R = Rotation.from_rotvec(x[:3]).as_matrix()
        s = float(np.exp(x[3])) if with_scale else 1.0
        return cost(src, dst, s, R, x[4:], w)

    rng = np.random.default_rng(seed)
    best = None
    for _ in range(8):
        x0 = np.concatenate([Rotation.random(random_state=rng.integers(1 << 30)).as_rotvec(), [0.0], dst.mean(0)])
        res = minimize(f, x0, method="BFGS", options={"gtol": 1e-10, "maxiter": 2000})
        if best is None or res.fun < best.fun:
            best = res
    return best.fun


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_exact_sim3(seed):
    s, R, t = random_sim3(seed)
    src = np.random.default_rng(10 + seed).normal(size=(50, 3))
    dst = s * src @ R.T + t
    est = umeyama(torch.from_numpy(src), torch.from_numpy(dst))
    assert isinstance(est, Sim3)
    assert float(est.scale) == pytest.approx(s, rel=1e-10)
    np.testing.assert_allclose(est.rotation.numpy(), R, atol=1e-10)
    np.testing.assert_allclose(est.translation.numpy(), t, atol=1e-9)
    assert torch.linalg.det(est.rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(apply_sim3(torch.from_numpy(src), *est).numpy(), dst, atol=1e-9)


def test_float32_input_keeps_dtype_and_accuracy():
    s, R, t = random_sim3(5)
    src = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    dst = torch.from_numpy(s * src.double().numpy() @ R.T + t).float()
    est = umeyama(src, dst)
    assert est.rotation.dtype == torch.float32
    assert (apply_sim3(src, *est) - dst).abs().max() < 1e-4


def test_noisy_fit_is_the_least_squares_optimum():
    s, R, t = random_sim3(3)
    rng = np.random.default_rng(4)
    src = rng.normal(size=(40, 3))
    dst = s * src @ R.T + t + rng.normal(scale=0.2, size=(40, 3))
    est = umeyama(src, dst)
    c = cost(src, dst, float(est.scale), est.rotation.numpy(), est.translation.numpy())
    assert c <= brute_force_fit(src, dst) + 1e-8
    # And close to the generating transform.
    assert float(est.scale) == pytest.approx(s, rel=0.1)


def test_weights_ignore_outliers_and_match_repetition():
    s, R, t = random_sim3(7)
    rng = np.random.default_rng(8)
    src = rng.normal(size=(30, 3))
    dst = s * src @ R.T + t
    dst[:5] += rng.normal(scale=5.0, size=(5, 3))  # outliers
    w = np.ones(30)
    w[:5] = 0
    est = umeyama(src, dst, weights=w)
    np.testing.assert_allclose(est.rotation.numpy(), R, atol=1e-9)
    assert float(est.scale) == pytest.approx(s, rel=1e-9)
    # Integer weights are the same as repeating rows.
    noisy = dst + rng.normal(scale=0.3, size=dst.shape)
    reps = rng.integers(1, 4, size=30)
    est_w = umeyama(src, noisy, weights=reps.astype(float))
    est_rep = umeyama(np.repeat(src, reps, 0), np.repeat(noisy, reps, 0))
    np.testing.assert_allclose(est_w.rotation.numpy(), est_rep.rotation.numpy(), atol=1e-10)
    np.testing.assert_allclose(est_w.translation.numpy(), est_rep.translation.numpy(), atol=1e-10)
    assert float(est_w.scale) == pytest.approx(float(est_rep.scale), rel=1e-10)


@pytest.mark.parametrize("with_scale", [True, False])
def test_reflected_target_gives_best_proper_rotation(with_scale):
    rng = np.random.default_rng(11)
    src = rng.normal(size=(25, 3)) * np.array([3.0, 1.5, 0.5])
    mirror = np.diag([1.0, 1.0, -1.0])
    _, R, t = random_sim3(12)
    dst = 1.7 * src @ (R @ mirror).T + t + rng.normal(scale=0.05, size=src.shape)
    est = umeyama(src, dst, with_scale=with_scale)
    assert torch.linalg.det(est.rotation.double()) == pytest.approx(1.0, abs=1e-10)
    c = cost(src, dst, float(est.scale), est.rotation.numpy(), est.translation.numpy())
    assert c <= brute_force_fit(src, dst, with_scale=with_scale) + 1e-8


def test_rigid_fit_matches_scipy_align_vectors():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(60, 3))
    _, R, t = random_sim3(2)
    dst = 2.5 * src @ R.T + t + rng.normal(scale=0.1, size=src.shape)  # scale is NOT fitted
    est = umeyama(src, dst, with_scale=False)
    assert float(est.scale) == 1.0
    rot, _ = Rotation.align_vectors(dst - dst.mean(0), src - src.mean(0))
    np.testing.assert_allclose(est.rotation.numpy(), rot.as_matrix(), atol=1e-8)


def test_sim3_matrix_and_inverse():
    s, R, t = random_sim3(9)
    sim = Sim3(torch.tensor(s, dtype=torch.float64), torch.from_numpy(R), torch.from_numpy(t))
    p = torch.randn(10, 3, dtype=torch.float64)
    y = apply_sim3(p, *sim)
    M = sim.matrix()
    np.testing.assert_allclose((p @ M[:3, :3].T + M[:3, 3]).numpy(), y.numpy(), atol=1e-12)
    np.testing.assert_allclose(apply_sim3(y, *sim.inverse()).numpy(), p.numpy(), atol=1e-12)


def test_bad_input_errors():
    p = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(InputError, match="umeyama"):
        umeyama(p, p[:9])
    with pytest.raises(InputError, match="at least 3"):
        umeyama(p[:2], p[:2])
    with pytest.raises(InputError, match="coincide"):
        umeyama(np.ones((5, 3)), p[:5])
    with pytest.raises(InputError, match="weights"):
        umeyama(p, p, weights=-np.ones(10))
    bad = p.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        umeyama(bad, p)
    with pytest.raises(InputError, match=r"\(N, 3\)"):
        umeyama(p[:, :2], p[:, :2])
