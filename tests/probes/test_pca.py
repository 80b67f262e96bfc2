import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA

from probes.pca import PCA


def _data(n=500, c=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(c, c, generator=g)
    scales = torch.logspace(1, -2, c)
    return (torch.randn(n, c, generator=g) * scales) @ basis + 3.0


def test_matches_sklearn_components_and_variance():
    x = _data()
    ours = PCA.fit(x, 10)
    sk = SkPCA(n_components=10, svd_solver="full").fit(x.double().numpy())
    np.testing.assert_allclose(ours.explained_variance.numpy(), sk.explained_variance_, rtol=1e-4)
    # components agree up to sign
    dots = (ours.components.double().numpy() * sk.components_).sum(1)
    np.testing.assert_allclose(np.abs(dots), 1.0, atol=1e-4)
    # projections agree up to the same signs
    proj_sk = sk.transform(x.double().numpy()) * np.sign(dots)
    np.testing.assert_allclose(ours.transform(x).numpy(), proj_sk, atol=1e-3)


def test_fewer_samples_than_channels_uses_svd():
    x = _data(n=20, c=64)
    ours = PCA.fit(x, 256)
    assert ours.dim == 20
    sk = SkPCA(n_components=19, svd_solver="full").fit(x.double().numpy())
    np.testing.assert_allclose(ours.explained_variance[:19].numpy(), sk.explained_variance_, rtol=1e-3)


def test_deterministic_sign_and_reconstruction():
    x = _data()
    a, b = PCA.fit(x, 40), PCA.fit(x.clone(), 40)
    assert torch.equal(a.components, b.components)
    idx = a.components.abs().argmax(1)
    assert (a.components.gather(1, idx[:, None]) > 0).all()
    # full rank: projection is an isometry, reconstruction exact
    z = a.transform(x)
    np.testing.assert_allclose((z @ a.components + a.mean).numpy(), x.numpy(), atol=1e-3)


def test_transform_map_shape_and_centering():
    fmap = torch.randn(3, 32, 5, 7)
    tokens = fmap.permute(0, 2, 3, 1).reshape(-1, 32)
    p = PCA.fit(tokens, 8)
    out = p.transform_map(fmap)
    assert out.shape == (3, 8, 5, 7)
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert torch.allclose(out.permute(0, 2, 3, 1).reshape(-1, 8), p.transform(tokens), atol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError):
        PCA.fit(torch.randn(10), 3)
