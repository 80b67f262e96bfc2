"""Train/test splits: the documented rules, determinism, explicit overrides, the farthest-view distance
against a brute-force reference, the DTU preset, and errors naming the split field."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from feat2gs.data import DTU_SPARSE_TEST, DTU_SPARSE_TRAIN, dtu_sparse_split, make_split, view_distances
from feat2gs.data.synthetic import arc_cameras
from feat2gs.errors import InputError
from feat2gs.scene import Cameras


@pytest.fixture(scope="module")
def cams():
    return arc_cameras(12, 64, 48)


def test_train_views_spread_evenly(cams):
    assert make_split(cams, 3).train == (0, 6, 11)  # round(linspace(0, 11, 3)) = 0, 5.5 -> 6, 11
    assert make_split(cams, 4).train == (0, 4, 7, 11)
    assert make_split(cams, 1).train == (5,)  # the middle view
    assert make_split(cams, 12, n_test=0).train == tuple(range(12))
    for n in range(1, 12):
        sp = make_split(cams, n)
        assert len(sp.train) == n and len(set(sp.train)) == n
        assert set(sp.train) | set(sp.test) == set(range(12)) and not set(sp.train) & set(sp.test)
        gaps = np.diff(sp.train)
        assert n < 2 or gaps.max() - gaps.min() <= 1


def test_test_rules(cams):
    sp = make_split(cams, 3, test="all")
    assert sp.test == (1, 2, 3, 4, 5, 7, 8, 9, 10)
    sp = make_split(cams, 3, test="even", n_test=3)
    assert sp.test == (1, 5, 10)  # positions 0, 4, 8 of the 9 held-out views
    assert make_split(cams, 3, test="even", n_test=9).test == make_split(cams, 3).test
    assert make_split(cams, 3, test="even", n_test=0).test == ()
    assert "test=even(3)" in sp.rule and "train=even(3 of 12)" in sp.rule
    # determinism
    assert make_split(cams, 5, test="farthest", n_test=2) == make_split(cams, 5, test="farthest", n_test=2)


def test_farthest_matches_brute_force(cams):
    """Distance = centre distance / mean distance of the centres from their centroid + angle between optical
    axes (radians); a held-out view's distance to the train set is the minimum over train views."""
    C = cams.centers.double().numpy()
    Z = cams.viewmats[:, 2, :3].double().numpy()
    scale = np.linalg.norm(C - C.mean(0), axis=1).mean()
    D = np.zeros((12, 12))
    for a in range(12):
        for b in range(12):
            cosang = np.clip(Z[a] @ Z[b] / np.linalg.norm(Z[a]) / np.linalg.norm(Z[b]), -1, 1)
            D[a, b] = np.linalg.norm(C[a] - C[b]) / scale + math.acos(cosang)
    np.testing.assert_allclose(view_distances(cams).numpy(), D, atol=1e-5)
    train = [3, 4]
    held = [v for v in range(12) if v not in train]
    to_train = {v: min(D[v, t] for t in train) for v in held}
    expect = sorted(sorted(held, key=lambda v: (-round(to_train[v], 9), v))[:3])
    sp = make_split(cams, train=train, test="farthest", n_test=3)
    assert sp.test == tuple(expect) == (9, 10, 11)  # the far end of the arc
    assert make_split(cams, train=train, test="farthest").test == tuple(held)


def test_farthest_uses_angles():
    """Cameras at one centre differing only in heading: the angle term alone ranks them."""
    vms = []
    for deg in (0, 5, 10, 40, 80):
        a = math.radians(deg)
        m = torch.eye(4)
        m[:3, :3] = torch.tensor([[math.cos(a), 0, -math.sin(a)], [0, 1, 0], [math.sin(a), 0, math.cos(a)]])
        vms.append(m)
    cams = Cameras(torch.eye(3).expand(5, 3, 3).clone() * torch.tensor([50.0, 50.0, 1.0])[:, None],
                   torch.stack(vms), 32, 32)
    assert make_split(cams, train=[0], test="farthest", n_test=1).test == (4,)
    assert make_split(cams, train=[0, 4], test="farthest", n_test=1).test == (3,)  # 40 deg: 40 from 0, 40 from 80
    D = view_distances(cams)
    assert abs(float(D[0, 4]) - math.radians(80)) < 1e-5


def test_explicit_lists_override(cams):
    sp = make_split(cams, 3, train=[7, 2], test_indices=[0, 11])
    assert sp.train == (2, 7) and sp.test == (0, 11)
    assert make_split(cams, None, train=[1, 2], test="even", n_test=2).test == (0, 11)
    with pytest.raises(InputError, match=r"split.train: view indices \[12\] out of range"):
        make_split(cams, train=[0, 12])
    with pytest.raises(InputError, match=r"split.train: repeated view indices"):
        make_split(cams, train=[1, 1])
    with pytest.raises(InputError, match=r"split.test_indices: views \[2\] are also train views"):
        make_split(cams, train=[2, 5], test_indices=[2, 3])
    with pytest.raises(InputError, match="split.n_train: give n_train or an explicit train list"):
        make_split(cams)
    with pytest.raises(InputError, match="split.test: unknown test rule 'random'"):
        make_split(cams, 3, test="random")
    with pytest.raises(InputError, match="split.n_test: test='even' needs n_test"):
        make_split(cams, 3, test="even")
    with pytest.raises(InputError, match="split.n_test: test='all' takes all 9 held-out views"):
        make_split(cams, 3, test="all", n_test=2)
    with pytest.raises(InputError, match="split.n_train: need at least one train view"):
        make_split(cams, 0)


def test_dtu_preset():
    assert DTU_SPARSE_TRAIN[:3] == (25, 22, 28)
    assert len(DTU_SPARSE_TEST) == 25 and DTU_SPARSE_TEST[:4] == (1, 2, 9, 10)
    sp = dtu_sparse_split(3)
    assert sp.train == (22, 25, 28) and sp.test == DTU_SPARSE_TEST
    assert dtu_sparse_split(9).train == (0, 8, 13, 22, 25, 28, 40, 44, 48)
    with pytest.raises(InputError, match="split.n_train"):
        dtu_sparse_split(4)
    with pytest.raises(InputError, match="49 DTU views"):
        dtu_sparse_split(3, arc_cameras(12, 8, 8))
