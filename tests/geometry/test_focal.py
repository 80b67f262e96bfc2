"""Focal / shift recovery: exact recovery on synthetic point maps, agreement with a scipy least_squares
reference (MoGe's formulation), masks, conversions to intrinsics and field of view."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares

from feat2gs.errors import InputError
from feat2gs.geometry import focal as fs


pytestmark = pytest.mark.usefixtures("single_thread")  # thread count does not change results


def uv_numpy(W, H):
    """Pixel-centre offsets from the image centre over half the image diagonal, (H, W, 2)."""
    j, i = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5, indexing="xy")
    half_diag = math.hypot(W, H) / 2
    return np.stack([(j - W / 2) / half_diag, (i - H / 2) / half_diag], -1)


def synthetic_points(rng, H, W, focal, shift, noise=0.0):
    """A camera-space point map whose z is off by -shift: f * xy / (z + shift) = uv exactly."""
    uv = uv_numpy(W, H)
    yy, xx = np.meshgrid(np.linspace(0, 1, H), np.linspace(0, 1, W), indexing="ij")
    depth = (rng.uniform(1.0, 3.0) + rng.uniform(0.2, 2) * np.sin(rng.uniform(1, 6) * xx + rng.uniform(0, 6))
             + rng.uniform(0, 3) * yy + 0.3 * rng.random((H, W)))
    depth = np.maximum(depth, 0.3)
    pts = np.concatenate([uv * depth[..., None] / focal, (depth - shift)[..., None]], -1)
    if noise:
        pts = pts * (1 + noise * rng.normal(size=pts.shape))
    return pts


def subsample_numpy(a, h=64, w=64):
    """Nearest subsampling as F.interpolate(mode='nearest'): source index floor(i * H / h)."""
    H, W = a.shape[:2]
    ii = np.floor(np.arange(h) * H / h).astype(int)
    jj = np.floor(np.arange(w) * W / w).astype(int)
    return a[ii][:, jj]


def scipy_reference(uv, xyz, focal=None):
    """MoGe's solver with tight tolerances: least_squares (LM, x0 = 0) on the shift, focal eliminated."""
    xy, z = xyz[:, :2], xyz[:, 2]

    def fun(s):
        q = xy / (z + s[0])[:, None]
        f = (q * uv).sum() / (q * q).sum() if focal is None else focal
        return (f * q - uv).ravel()

    sol = least_squares(fun, x0=[0.0], method="lm", ftol=1e-15, xtol=1e-15, gtol=1e-15)
    s = float(sol.x[0])
    q = xy / (z + s)[:, None]
    f = (q * uv).sum() / (q * q).sum() if focal is None else focal
    return f, s, float((fun([s]) ** 2).sum())


def test_view_plane_uv_definition():
    for W, H in [(64, 48), (741, 500), (30, 90)]:
        uv = fs.normalized_view_plane_uv(W, H, dtype=torch.float64)
        np.testing.assert_allclose(uv.numpy(), uv_numpy(W, H), rtol=0, atol=1e-12)
        # the image corners (not pixel centres) lie on the unit circle
        half = torch.tensor([W / 2, H / 2], dtype=torch.float64) / (math.hypot(W, H) / 2)
        assert half.norm().item() == pytest.approx(1.0)
        torch.testing.assert_close(uv[-1, -1], half * torch.tensor([(W - 1) / W, (H - 1) / H], dtype=torch.float64))


def test_noise_free_recovery_is_exact():
    rng = np.random.default_rng(0)
    cases = [(96, 128, 0.6, 0.3), (128, 96, 1.0, -0.8), (100, 100, 1.8, 0.2), (80, 160, 3.0, -5.0),
             (120, 90, 0.35, 1.5)]
    for H, W, f, s in cases:
        pts = torch.tensor(synthetic_points(rng, H, W, f, s))
        r = fs.recover_focal_shift(pts)
        assert r.valid.item()
        assert r.focal.item() == pytest.approx(f, rel=1e-5)
        assert r.shift.item() == pytest.approx(s, rel=1e-5, abs=1e-7)
        assert r.focal.item() == pytest.approx(f, rel=1e-9)  # in fact to round-off
        known = fs.recover_focal_shift(pts, focal=f)
        assert known.shift.item() == pytest.approx(s, rel=1e-9, abs=1e-12)


def test_batched_and_masked():
    rng = np.random.default_rng(1)
    H, W = 90, 120
    fs_true, sh_true = [0.8, 1.2, 2.0, 1.5], [0.5, -0.3, 1.0, 0.0]
    pts = np.stack([synthetic_points(rng, H, W, f, s) for f, s in zip(fs_true, sh_true)])
    mask = rng.random((4, H, W)) < 0.7
    garbage = pts.copy()
    garbage[~mask] = rng.normal(size=((~mask).sum(), 3)) * 50  # masked pixels must not matter
    garbage[0, ~mask[0]] = np.nan
    r = fs.recover_focal_shift(torch.tensor(garbage).reshape(2, 2, H, W, 3), torch.tensor(mask).reshape(2, 2, H, W))
    assert r.focal.shape == (2, 2) and r.valid.all()
    np.testing.assert_allclose(r.focal.reshape(-1).numpy(), fs_true, rtol=1e-9)
    np.testing.assert_allclose(r.shift.reshape(-1).numpy(), sh_true, rtol=1e-8, atol=1e-10)
    # float32 input: same answer to single precision
    r32 = fs.recover_focal_shift(torch.tensor(pts, dtype=torch.float32))
    assert r32.focal.dtype == torch.float32
    np.testing.assert_allclose(r32.focal.numpy(), fs_true, rtol=1e-4)


def test_noisy_recovery_and_agreement_with_scipy():
    rng = np.random.default_rng(2)
    for trial in range(12):
        H, W = int(rng.integers(48, 160)), int(rng.integers(48, 160))
        f = float(rng.uniform(0.4, 3.0))
        pts = synthetic_points(rng, H, W, f, 0.0, noise=0.0)
        s = float(rng.uniform(-0.5, 0.9) * pts[..., 2].min())  # keep z > 0, as MoGe's exp head guarantees
        pts[..., 2] -= s
        pts *= 1 + 0.01 * rng.normal(size=pts.shape)
        mask = rng.random((H, W)) < 0.8
        r = fs.recover_focal_shift(torch.tensor(pts), torch.tensor(mask))
        # reference on the same nearest-subsampled samples
        m = subsample_numpy(mask).reshape(-1)
        xyz = subsample_numpy(pts).reshape(-1, 3)[m]
        uv = subsample_numpy(uv_numpy(W, H)).reshape(-1, 2)[m]
        f_ref, s_ref, R_ref = scipy_reference(uv, xyz)
        assert r.focal.item() == pytest.approx(f_ref, rel=1e-6)
        assert r.shift.item() == pytest.approx(s_ref, rel=1e-6, abs=1e-8)
        assert r.residual.item() <= R_ref * (1 + 1e-9) + 1e-15
        # close to the truth despite 1 % noise
        assert r.focal.item() == pytest.approx(f, rel=0.05)
        # known-focal variant
        rk = fs.recover_focal_shift(torch.tensor(pts), torch.tensor(mask), focal=f)
        _, sk_ref, _ = scipy_reference(uv, xyz, focal=f)
        assert rk.shift.item() == pytest.approx(sk_ref, rel=1e-6, abs=1e-8)


def test_solve_focal_shift_on_samples_matches_scipy():
    rng = np.random.default_rng(3)
    B, n = 16, 300
    uv = rng.uniform(-0.8, 0.8, size=(B, n, 2))
    d = rng.uniform(1, 4, size=(B, n))
    f = rng.uniform(0.5, 2.5, size=B)
    s = rng.uniform(-0.5, 0.5, size=B)
    xyz = np.concatenate([uv * d[..., None] / f[:, None, None], (d - s[:, None])[..., None]], -1)
    xyz = xyz + 0.01 * rng.normal(size=xyz.shape)
    r = fs.solve_focal_shift(torch.tensor(uv), torch.tensor(xyz))
    for b in range(B):
        f_ref, s_ref, _ = scipy_reference(uv[b], xyz[b])
        assert r.focal[b].item() == pytest.approx(f_ref, rel=1e-6)
        assert r.shift[b].item() == pytest.approx(s_ref, rel=1e-6, abs=1e-8)


def test_too_few_points_falls_back():
    pts = torch.rand(2, 20, 20, 3, dtype=torch.float64) + 1
    mask = torch.zeros(2, 20, 20, dtype=torch.bool)
    mask[1, 3, 3] = True
    r = fs.recover_focal_shift(pts, mask)
    assert not r.valid.any() and (r.focal == 1).all() and (r.shift == 0).all()


def test_intrinsics_and_fov_conversions():
    W, H = 741, 500
    f = torch.tensor([0.7, 1.3], dtype=torch.float64)
    K = fs.intrinsics_from_focal(f, W, H)
    half_diag = math.hypot(W, H) / 2
    Kp = fs.intrinsics_from_focal(f, W, H, pixel=True)
    torch.testing.assert_close(Kp[:, 0, 0], f * half_diag)
    torch.testing.assert_close(Kp[:, 1, 1], f * half_diag)
    torch.testing.assert_close(Kp[:, :2, 2], torch.tensor([[W / 2, H / 2]] * 2, dtype=torch.float64))
    torch.testing.assert_close(fs.pixel_to_normalized_intrinsics(Kp, W, H), K)
    fov_x, fov_y = fs.intrinsics_to_fov(K)
    torch.testing.assert_close(fov_x, 2 * torch.atan(W / 2 / (f * half_diag)))
    torch.testing.assert_close(fov_y, 2 * torch.atan(H / 2 / (f * half_diag)))
    torch.testing.assert_close(fs.fov_x_from_focal(f, W, H), torch.rad2deg(fov_x))
    torch.testing.assert_close(fs.focal_from_fov_x(fs.fov_x_from_focal(f, W, H), W, H), f)
    # the pixel K projects the recovered geometry back onto the pixel centres
    rng = np.random.default_rng(4)
    pts = synthetic_points(rng, 60, 80, 1.1, 0.4)
    r = fs.recover_focal_shift(torch.tensor(pts))
    Kp = fs.intrinsics_from_focal(r.focal, 80, 60, pixel=True)
    P = torch.tensor(pts).clone()
    P[..., 2] += r.shift
    proj = (Kp @ P.reshape(-1, 3).T).T
    pix = proj[:, :2] / proj[:, 2:]
    j, i = np.meshgrid(np.arange(80) + 0.5, np.arange(60) + 0.5, indexing="xy")
    np.testing.assert_allclose(pix.numpy(), np.stack([j, i], -1).reshape(-1, 2), atol=1e-8)


def test_bad_inputs():
    with pytest.raises(InputError):
        fs.recover_focal_shift(torch.rand(10, 10, 2))
    with pytest.raises(InputError):
        fs.recover_focal_shift(torch.rand(10, 10, 3), torch.ones(9, 10, dtype=torch.bool))
    with pytest.raises(InputError):
        fs.solve_focal_shift(torch.rand(5, 2), torch.rand(5, 3), focal=-1.0)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    rng = np.random.default_rng(5)
    pts = torch.tensor(np.stack([synthetic_points(rng, 64, 64, 1.0, 0.2, noise=0.01) for _ in range(8)]))
    a, b = fs.recover_focal_shift(pts), fs.recover_focal_shift(pts.cuda())
    torch.testing.assert_close(b.focal.cpu(), a.focal, rtol=1e-9, atol=0)
    torch.testing.assert_close(b.shift.cpu(), a.shift, rtol=1e-9, atol=1e-12)
