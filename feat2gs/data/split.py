"""Sparse-view train/test splits.

Views are indexed in the scene's order, which is the capture order for every loader here (LLFF and IDR: sorted
file names; Middlebury: the order of the par file; synthetic: along the camera arc), so "evenly spread over
the trajectory" means evenly spread over the indices.

:func:`make_split` rules (all deterministic, no randomness):

* train: ``n_train`` views at ``round(linspace(0, V - 1, n_train))`` -- the first and last views and evenly
  spaced ones between, so test views are interpolations; a single train view is the middle one.
* test (the held-out views, i.e. all views not in train):
  - ``"all"``: every held-out view;
  - ``"even"``: ``n_test`` held-out views evenly spaced over the held-out list
    (``round(linspace(0, M - 1, n_test))`` positions among the M held-out views);
  - ``"farthest"``: the ``n_test`` held-out views farthest from the train set, where the distance of view i
    to view j is ``|c_i - c_j| / s + angle(z_i, z_j)`` -- camera-centre distance in units of the scene scale s
    (the mean distance of all camera centres from their centroid) plus the angle in radians between the
    optical axes -- and the distance to the train set is the minimum over train views (a 1 rad turn weighs
    as much as a move of one scene scale). Ties are broken by the lower index. Feat2GS evaluates on views
    away from the sparse inputs; this rule picks the hardest ones.
* ``train=`` / ``test_indices=`` (explicit index lists) override the rules above (``n_train``, resp. ``test``
  and ``n_test``, are then ignored).

Returned index tuples are sorted. Requests that the scene cannot satisfy raise InputError naming the split
field (``split.n_train``, ``split.n_test``, ``split.train``, ``split.test_indices``, ``split.test``).

Presets: ``DTU_SPARSE_TRAIN`` / ``DTU_SPARSE_TEST`` are the DTU sparse-view protocol of pixelNeRF (Yu et al.,
CVPR 2021), reused by RegNeRF (Niemeyer et al., CVPR 2022) and its successors: train views 25, 22, 28 (then
40, 44, 48, 0, 8, 13 for 6 and 9 views); the test views are the 25 views that are neither in that list of 9 nor
in the protocol's excluded views 3-7, 16-21 and 36-39 (the same 25 for 3, 6 and 9 train views).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import InputError
from ..scene import Cameras, Scene, Split

TEST_RULES = ("all", "even", "farthest")

DTU_SPARSE_TRAIN = (25, 22, 28, 40, 44, 48, 0, 8, 13)
DTU_SPARSE_EXCLUDED = (3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 36, 37, 38, 39)
DTU_SPARSE_TEST = tuple(i for i in range(49) if i not in DTU_SPARSE_TRAIN + DTU_SPARSE_EXCLUDED)  # 25 views


def even_indices(count: int, n: int) -> list[int]:
    """``n`` distinct indices evenly spread over ``range(count)``, first and last included (n >= 2); the
    middle one for n == 1."""
    if n <= 0:
        return []
    if n == 1:
        return [(count - 1) // 2]
    return [int(i) for i in np.floor(np.linspace(0, count - 1, n) + 0.5)]


def view_distances(cameras: Cameras) -> torch.Tensor:
    """(V, V) view distance ``|c_i - c_j| / s + angle between optical axes`` (see the module docstring)."""
    c = cameras.centers.double()
    s = float((c - c.mean(0)).norm(dim=1).mean())
    s = s if s > 1e-12 else 1.0
    z = cameras.viewmats[:, 2, :3].double()  # camera z axis (viewing direction) in world coordinates
    z = z / z.norm(dim=1, keepdim=True)
    ang = torch.arccos((z @ z.T).clamp(-1.0, 1.0))
    return torch.cdist(c, c) / s + ang


def _check_indices(idx: Sequence[int], n_views: int, field: str) -> list[int]:
    out = [int(i) for i in idx]
    if len(set(out)) != len(out):
        raise InputError(field, f"repeated view indices in {out}")
    bad = [i for i in out if not 0 <= i < n_views]
    if bad:
        raise InputError(field, f"view indices {bad} out of range for a scene of {n_views} views")
    return out


def make_split(scene: Union[Scene, Cameras], n_train: Optional[int] = None, test: str = "all",
               n_test: Optional[int] = None, train: Optional[Sequence[int]] = None,
               test_indices: Optional[Sequence[int]] = None) -> Split:
    """Train/test split of a scene (or of its cameras) -- see the module docstring for the rules.

    ``n_test`` is required for ``test="even"``; for ``"farthest"`` it defaults to all held-out views (the
    same set as ``"all"``); with ``"all"`` it must be None or the number of held-out views. ``n_test=0`` gives
    an empty test set (inference-only scenes).
    """
    cameras = scene.cameras if isinstance(scene, Scene) else scene
    V = len(cameras)
    # ---- train
    if train is not None:
        tr = _check_indices(train, V, "split.train")
        if not tr:
            raise InputError("split.train", "empty train list")
        rule = f"train=explicit{sorted(tr)}"
    else:
        if n_train is None:
            raise InputError("split.n_train", "give n_train or an explicit train list")
        if int(n_train) < 1:
            raise InputError("split.n_train", f"need at least one train view, got {n_train}")
        if int(n_train) > V:
            raise InputError("split.n_train", f"{n_train} train views requested but the scene has {V} views")
        tr = even_indices(V, int(n_train))
        rule = f"train=even({n_train} of {V})"
    held = [i for i in range(V) if i not in set(tr)]
    # ---- test
    if test_indices is not None:
        te = _check_indices(test_indices, V, "split.test_indices")
        overlap = sorted(set(te) & set(tr))
        if overlap:
            raise InputError("split.test_indices", f"views {overlap} are also train views")
        rule += f"; test=explicit{sorted(te)}"
    else:
        if test not in TEST_RULES:
            raise InputError("split.test", f"unknown test rule {test!r}; expected one of {', '.join(TEST_RULES)}")
        if n_test is not None and int(n_test) < 0:
            raise InputError("split.n_test", f"must be >= 0, got {n_test}")
        if n_test is not None and int(n_test) > len(held):
            raise InputError("split.n_test", f"{n_test} test views requested but only {len(held)} views are left "
                                             f"after {len(tr)} train views (scene has {V})")
        if n_test == 0:
            te = []
        elif test == "all":
            if n_test is not None and int(n_test) != len(held):
                raise InputError("split.n_test", f"test='all' takes all {len(held)} held-out views; use "
                                                 f"test='even' or 'farthest' to pick {n_test}")
            te = held
        elif test == "even":
            if n_test is None:
                raise InputError("split.n_test", "test='even' needs n_test")
            te = [held[k] for k in even_indices(len(held), int(n_test))]
        else:  # farthest
            k = len(held) if n_test is None else int(n_test)
            d = view_distances(cameras)[held][:, tr].min(dim=1).values.tolist()
            order = sorted(range(len(held)), key=lambda m: (-round(d[m], 9), held[m]))
            te = [held[m] for m in order[:k]]
        if not te and n_test != 0:
            raise InputError("split.n_train", f"{len(tr)} train views leave no test view in a scene of {V} views")
        rule += f"; test={test}" + (f"({n_test})" if n_test is not None else "")
    return Split(tuple(sorted(tr)), tuple(sorted(te)), rule)


def dtu_sparse_split(n_train: int = 3, scene: Optional[Union[Scene, Cameras]] = None) -> Split:
    """The pixelNeRF/RegNeRF DTU split: the first ``n_train`` (3, 6 or 9) of ``DTU_SPARSE_TRAIN`` and the 25
    ``DTU_SPARSE_TEST`` views. With ``scene`` given, checks that it has the 49 DTU views."""
    if n_train not in (3, 6, 9):
        raise InputError("split.n_train", f"the DTU sparse protocol has 3, 6 or 9 train views, got {n_train}")
    if scene is not None:
        V = len(scene.cameras if isinstance(scene, Scene) else scene)
        if V != 49:
            raise InputError("split", f"the DTU sparse protocol needs the 49 DTU views, the scene has {V}")
    return Split(tuple(sorted(DTU_SPARSE_TRAIN[:n_train])), DTU_SPARSE_TEST, f"dtu-sparse-{n_train}")


# --------------------------------------------------------------------------------------------- named splits
#: split names every scene accepts; a scene may add its own (``scene.meta["splits"]``, e.g. Feat2GS'
#: ``dataset_split.json``), selected by the same ``split.name``
SPLIT_NAMES = ("default", "even", "dtu", "llff")
LLFF_TEST_EVERY = 8


def llff_split(V: int, n_train: int) -> Split:
    """The LLFF protocol of the sparse-view NeRF literature (RegNeRF, FreeNeRF, ...): every 8th view (0, 8, 16, ...)
    is a test view; ``n_train`` train views evenly spaced over the remaining ones (first and last included)."""
    test = [i for i in range(V) if i % LLFF_TEST_EVERY == 0]
    rest = [i for i in range(V) if i % LLFF_TEST_EVERY != 0]
    if not 1 <= int(n_train) <= len(rest):
        raise InputError("split.n_train", f"the llff split leaves {len(rest)} non-test views of {V}; got n_train={n_train}")
    train = [rest[k] for k in even_indices(len(rest), int(n_train))]
    return Split(tuple(train), tuple(test), f"llff(test every {LLFF_TEST_EVERY}th; {n_train} train)")


def dataset_split(scene: Scene, name: str, n_train: Optional[int] = None) -> Split:
    """A split the dataset ships (``scene.meta["splits"][name] = {"train": [...], "test": [...]}``)."""
    splits = (scene.meta or {}).get("splits") or {}
    entry = splits[name]
    V = len(scene.cameras)
    tr = _check_indices(entry["train"], V, f"split.name={name} (train)")
    te = _check_indices(entry["test"], V, f"split.name={name} (test)")
    if n_train is not None and int(n_train) != len(tr):
        raise InputError("split.n_train", f"the {name} split of {scene.name} has {len(tr)} train views, "
                                          f"n_train={n_train} was asked (set split.n_train={len(tr)})")
    return Split(tuple(sorted(tr)), tuple(sorted(te)), f"{name} (dataset)")


def default_split_name(scene: Scene) -> str:
    """What ``split.name=default`` means for a scene: its dataset split ``feat2gs`` when it ships one; the
    pixelNeRF split for the 49-view DTU scenes; the every-8th rule for LLFF scenes; ``even`` otherwise."""
    meta = scene.meta or {}
    if "feat2gs" in (meta.get("splits") or {}):
        return "feat2gs"
    fmt = str(meta.get("format", ""))
    if len(scene.cameras) == 49 and (fmt in ("idr", "dtu", "mvsnet") or "dtu" in str(scene.source).lower()):
        return "dtu"
    if fmt == "llff":
        return "llff"
    return "even"


def named_split(scene: Scene, name: str = "default", n_train: Optional[int] = None, test: str = "even",
                n_test: Optional[int] = None, train: Optional[Sequence[int]] = None,
                test_indices: Optional[Sequence[int]] = None) -> Split:
    """The split called ``name`` (see ``SPLIT_NAMES`` and the scene's own ``meta["splits"]``). Explicit
    ``train``/``test_indices`` lists override the name; ``even`` is :func:`make_split` with ``test``/``n_test``."""
    cams = scene.cameras  # a Scene or a SceneCatalogue (cameras, name, meta; no pixels needed)
    if train is not None or test_indices is not None:
        if train is None:
            train = make_split(cams, n_train, test="all").train
        return make_split(cams, n_train, test=test, n_test=n_test, train=train, test_indices=test_indices)
    own = (scene.meta or {}).get("splits") or {}
    if name == "default":
        name = default_split_name(scene)
    if name in own:
        return dataset_split(scene, name, n_train)
    if name == "dtu":
        return dtu_sparse_split(3 if n_train is None else int(n_train), cams)
    if name == "llff":
        return llff_split(len(scene.cameras), 3 if n_train is None else int(n_train))
    if name == "even":
        return make_split(cams, n_train, test=test, n_test=n_test)
    known = list(SPLIT_NAMES) + sorted(own)
    raise InputError("split.name", f"unknown split {name!r} for {scene.name}; known: {', '.join(known)}")
