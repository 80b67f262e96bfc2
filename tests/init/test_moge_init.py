"""``init=moge``: per-view affine alignment of a predicted depth to sparse points / MVS depth, unprojection with
the known cameras. Depth maps of known error (a per-view affine distortion of the synthetic scene's GT depth,
plus noise and outliers) go through the predictor hook, so the expected scale/shift are known exactly."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from backbones.moge.load import VARIANTS, build_model, save_checkpoint, tiny_config
from backbones.weights import weights_present
from feat2gs.data import load_scene
from feat2gs.errors import InputError, WeightsNotFoundError
from feat2gs.init import INITIALISERS, build_initialiser
from feat2gs.init.moge import DepthPrediction, MoGeInit, depth_edges, sparse_target_depth
from feat2gs.metrics.points import point_metrics

A = torch.tensor([0.5, 2.0, 1.3])  # per-view distortion d' = A d (1 + noise) + B
B = torch.tensor([1.0, -2.5, 0.4])
NOISE = 0.005  # relative depth noise
OUTLIERS = 0.05  # fraction of pixels whose depth is scaled by U(0.5, 1.5)


@pytest.fixture(scope="module")
def synth():
    """3 train views (96 x 72) of the synthetic scene, the distorted depth, GT points of the train pixels,
    and 3000 noisy GT points as SfM-like sparse points."""
    scene = load_scene("synthetic", num_views=6, width=96, height=72)
    train = scene.subset([0, 2, 4])
    V, H, W = train.depths.shape
    g = torch.Generator().manual_seed(0)
    clean = train.depths * (1 + NOISE * torch.randn(V, H, W, generator=g))
    bad = torch.rand(V, H, W, generator=g) < OUTLIERS
    clean = torch.where(bad, clean * torch.empty(V, H, W).uniform_(0.5, 1.5, generator=g), clean)
    distorted = A[:, None, None] * clean + B[:, None, None]
    idx = torch.randperm(scene.points.shape[0], generator=g)[:3000]
    sparse = scene.points[idx] + 0.002 * torch.randn(3000, 3, generator=g)
    gt_points = train.cameras.unproject(train.depths)
    return dict(train=train, distorted=distorted, clean=clean, sparse=sparse, gt=gt_points, gen=g)


def fixed(depth, mask=None):
    """A predictor returning a given depth map (and an all-valid mask)."""
    mask = torch.ones_like(depth, dtype=torch.bool) if mask is None else mask
    return lambda images: (depth, mask)


def acc_comp(points, gt):
    m = point_metrics(points.reshape(-1, 3), gt.reshape(-1, 3), align=False)
    return m["accuracy"], m["completeness"], m["accuracy_median"]


def check_recovered(init, tol_scale, tol_shift):
    """scale * (A d + B) + shift = d  <=>  scale * A = 1 and scale * B + shift = 0."""
    s, t = torch.tensor(init.meta["scale"]), torch.tensor(init.meta["shift"])
    torch.testing.assert_close(s * A, torch.ones(3), atol=tol_scale, rtol=0)
    torch.testing.assert_close(s * B + t, torch.zeros(3), atol=tol_shift, rtol=0)


def test_registered_and_options_checked():
    assert "moge" in INITIALISERS.names()
    with pytest.raises(InputError, match="init.options.target"):
        build_initialiser("moge", target="colmap")
    with pytest.raises(InputError, match="init.options.trunc"):
        build_initialiser("moge", trunc=-1.0)
    with pytest.raises(InputError, match="init.options.align_resolution.*'many'"):
        build_initialiser("moge", align_resolution="many")
    with pytest.raises(InputError, match="init.options.on_failure.*error, drop"):
        build_initialiser("moge", on_failure="ignore")
    with pytest.raises(InputError, match="init.options.*accepted options"):
        build_initialiser("moge", no_such_option=1)


def test_aligns_a_known_distortion_to_sparse_points(synth):
    train = replace(synth["train"], sparse_points=synth["sparse"])
    init = build_initialiser("moge", predictor=fixed(synth["distorted"]), align_resolution=24)(train)
    assert init.method == "moge" and init.meta["target"] == "sparse"  # auto: the scene has sparse points
    check_recovered(init, tol_scale=0.01, tol_shift=0.03)
    assert min(init.meta["samples"]) > 300 and max(init.meta["residual_median"]) < 2 * NOISE
    # unprojected with the known cameras: points are the back-projection of the aligned depth
    assert torch.allclose(init.points[init.valid], train.cameras.unproject(init.depth)[init.valid])
    # Acc/Comp against the GT points: far better than the unaligned map, as good as the exact inverse
    unaligned = train.cameras.unproject(synth["distorted"])
    oracle = train.cameras.unproject(synth["clean"])
    acc_u, comp_u, _ = acc_comp(unaligned, synth["gt"])
    acc, comp, acc_med = acc_comp(init.points[init.valid], synth["gt"][init.valid])
    acc_o, comp_o, acc_med_o = acc_comp(oracle, synth["gt"])
    assert acc < acc_u / 10 and comp < comp_u / 5
    assert acc < 1.15 * acc_o and comp < 1.15 * comp_o
    assert acc_med < 1.3 * acc_med_o  # the noise level (the outliers dominate the means)


def test_aligns_to_mvs_depth_without_sparse_points(synth):
    train = synth["train"]
    assert train.sparse_points is None
    init = MoGeInit(predictor=fixed(synth["distorted"]), align_resolution=24)(train)
    assert init.meta["target"] == "mvs" and 0 < init.meta["target_valid_fraction"] < 1
    check_recovered(init, tol_scale=0.03, tol_shift=0.1)  # MVS depth has ~1% errors itself
    acc_u, comp_u, _ = acc_comp(train.cameras.unproject(synth["distorted"]), synth["gt"])
    acc, comp, _ = acc_comp(init.points[init.valid], synth["gt"][init.valid])
    assert acc < acc_u / 10 and comp < comp_u / 5


def test_truncation_ignores_a_majority_of_scattered_outliers(synth):
    """60% of the sparse points are pulled towards a camera (floaters: they win their pixel's z-buffer).
    The truncated ROE still finds the consistent 40%; the untruncated L1 fit is dragged away."""
    train, g = synth["train"], synth["gen"]
    sparse = synth["sparse"].clone()
    k = int(0.6 * len(sparse))
    C = train.cameras.centers[torch.randint(0, 3, (k,), generator=g)]
    sparse[:k] = C + (sparse[:k] - C) * torch.empty(k, 1).uniform_(0.3, 1.0, generator=g)
    scene = replace(train, sparse_points=sparse)
    robust = MoGeInit(predictor=fixed(synth["distorted"]), trunc=0.05, align_resolution=20)(scene)
    check_recovered(robust, tol_scale=0.01, tol_shift=0.03)
    assert all(0.25 < f < 0.6 for f in robust.meta["inlier_fraction"])
    plain = MoGeInit(predictor=fixed(synth["distorted"]), trunc=None, align_resolution=20)(scene)
    s = torch.tensor(plain.meta["scale"])
    assert ((s * A - 1).abs() > 0.2).all()
    assert plain.meta["inlier_fraction"] == [None, None, None]


def test_uniform_weights_and_masks(synth):
    train = replace(synth["train"], sparse_points=synth["sparse"])
    V, H, W = synth["distorted"].shape
    moge_mask = torch.ones(V, H, W, dtype=torch.bool)
    moge_mask[:, :, : W // 3] = False
    scene_mask = torch.ones(V, H, W, dtype=torch.bool)
    scene_mask[:, : H // 4] = False
    init = MoGeInit(predictor=fixed(synth["distorted"], moge_mask), sample_weights="uniform",
                    align_resolution=20)(replace(train, masks=scene_mask))
    check_recovered(init, tol_scale=0.015, tol_shift=0.04)
    assert torch.equal(init.confidence > 0, moge_mask & scene_mask)  # the kept pixels
    assert init.valid.all()  # dense: the others got an interpolated depth
    ignore = MoGeInit(predictor=fixed(synth["distorted"], moge_mask), use_moge_mask=False, use_masks=False,
                      align_resolution=16)(replace(train, masks=scene_mask))
    assert ignore.valid.all()


def test_too_few_targets_error_or_drop(synth):
    train = synth["train"]
    # sparse points seen by views 0 and 1 only: keep the GT points of those views' pixels
    sparse = synth["gt"][:2].reshape(-1, 3)[::7]
    uv, z = train.cameras.project(sparse)
    inside = (z > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < 96) & (uv[..., 1] >= 0) & (uv[..., 1] < 72)
    sparse = sparse[~inside[2]]  # view 2 sees none of them
    scene = replace(train, sparse_points=sparse)
    name = train.image_names[2]
    with pytest.raises(InputError, match=rf"'{name}': 0 jointly valid.*min_samples.*on_failure=drop") as e:
        MoGeInit(predictor=fixed(synth["distorted"]), align_resolution=16)(scene)
    assert "1 of 3 views" in str(e.value)
    init = MoGeInit(predictor=fixed(synth["distorted"]), align_resolution=16, on_failure="drop")(scene)
    assert init.meta["dropped_views"] == [name] and not init.valid[2].any()
    assert init.valid[:2].float().mean() > 0.95
    check_recovered_views = torch.tensor(init.meta["scale"][:2]) * A[:2]
    torch.testing.assert_close(check_recovered_views, torch.ones(2), atol=0.01, rtol=0)
    with pytest.raises(InputError, match="no sparse"):
        MoGeInit(predictor=fixed(synth["distorted"]), target="sparse")(train)
    flat = torch.full_like(synth["distorted"], 3.0)  # constant depth: scale undetermined
    with pytest.raises(InputError, match="3 of 3 views"):
        MoGeInit(predictor=fixed(flat), align_resolution=8, on_failure="drop")(
            replace(train, sparse_points=synth["sparse"]))


def test_predictor_output_is_checked(synth):
    train = replace(synth["train"], sparse_points=synth["sparse"])
    with pytest.raises(InputError, match="predictor.*shape"):
        MoGeInit(predictor=lambda im: (torch.ones(3, 10, 10), torch.ones(3, 10, 10, dtype=torch.bool)))(train)
    with pytest.raises(InputError, match="predictor"):
        MoGeInit(predictor=lambda im: torch.ones(3, 72, 96))(train)
    pred = DepthPrediction(synth["distorted"], torch.ones(3, 72, 96, dtype=torch.bool),
                           intrinsics=train.cameras.K * torch.tensor([1.1, 1.1, 1.0]).reshape(3, 1),
                           meta={"model": "fixed"})
    init = MoGeInit(predictor=lambda im: pred, align_resolution=8)(train)
    assert init.meta["model"] == "fixed"
    known = np.degrees(2 * np.arctan(48 / train.cameras.K[:, 0, 0].numpy()))
    np.testing.assert_allclose(init.meta["fov_x_known"], known, rtol=1e-5)
    fx_pred = 1.1 * train.cameras.K[:, 0, 0].numpy()
    np.testing.assert_allclose(init.meta["fov_x_pred"], np.degrees(2 * np.arctan(48 / fx_pred)), rtol=1e-5)


def test_sparse_target_depth_matches_brute_force():
    scene = load_scene("synthetic", num_views=2, width=24, height=18, supersample=1)
    g = torch.Generator().manual_seed(3)
    pts = scene.points[torch.randperm(len(scene.points), generator=g)[:500]] + 0.3 * torch.randn(500, 3, generator=g)
    got = sparse_target_depth(scene.cameras, pts)
    K, T = scene.cameras.K.double(), scene.cameras.viewmats.double()
    want = torch.zeros(2, 18, 24, dtype=torch.float64)
    for v in range(2):
        for p in pts.double():
            c = T[v, :3, :3] @ p + T[v, :3, 3]
            if c[2] <= 0:
                continue
            u, w = (K[v, 0, 0] * c[0] / c[2] + K[v, 0, 2]).item(), (K[v, 1, 1] * c[1] / c[2] + K[v, 1, 2]).item()
            j, i = int(np.floor(u)), int(np.floor(w))
            if 0 <= i < 18 and 0 <= j < 24 and (want[v, i, j] == 0 or c[2] < want[v, i, j]):
                want[v, i, j] = c[2]
    assert (got > 0).sum() > 50
    assert torch.equal(got > 0, want > 0)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_depth_edges_match_brute_force():
    g = torch.Generator().manual_seed(0)
    depth = torch.where(torch.rand(2, 9, 11, generator=g) < 0.3, 5.0, 2.0)
    depth = depth * (1 + 0.01 * torch.rand(2, 9, 11, generator=g))
    valid = torch.rand(2, 9, 11, generator=g) < 0.8
    got = depth_edges(depth, valid, 0.1)
    want = torch.zeros_like(valid)
    for v in range(2):
        for i in range(9):
            for j in range(11):
                if not valid[v, i, j]:
                    continue
                win = [depth[v, a, b] for a in range(max(0, i - 1), min(9, i + 2))
                       for b in range(max(0, j - 1), min(11, j + 2)) if valid[v, a, b]]
                want[v, i, j] = (max(win) - min(win)) > 0.1 * depth[v, i, j]
    assert want.any() and (~want & valid).any()
    assert torch.equal(got, want)


def test_moge_model_path_with_a_tiny_checkpoint(tmp_path, synth):
    """The real MoGe predictor (random tiny weights from a model.pt) runs through the initialiser; its depth is
    MoGe's ``infer`` depth. Random weights give some views a negative scale: those are dropped."""
    from backbones.moge.load import load_checkpoint

    torch.manual_seed(0)
    cfg = tiny_config("v2")
    save_checkpoint(build_model(cfg), cfg, tmp_path / "model.pt")
    train = replace(synth["train"], sparse_points=synth["sparse"])
    moge = MoGeInit(weights=str(tmp_path), use_moge_mask=False, device="cpu", align_resolution=12, num_tokens=24,
                    on_failure="drop")
    ref = load_checkpoint(tmp_path / "model.pt").infer(train.images, num_tokens=24, apply_mask=False)
    pred = moge.get_predictor()(train.images)
    torch.testing.assert_close(pred.depth, ref.depth)
    torch.testing.assert_close(pred.intrinsics, ref.pixel_intrinsics())
    assert pred.normal.shape == (3, 72, 96, 3)
    init = moge(train)
    assert init.meta["model"] == str(tmp_path / "model.pt") and init.meta["version"] == "v2"
    assert len(init.meta["fov_x_pred"]) == 3 and all(0 < f < 180 for f in init.meta["fov_x_pred"])
    scale = torch.tensor(init.meta["scale"])
    dropped = [train.image_names[v] for v in range(3) if not scale[v] > 0]
    assert init.meta["dropped_views"] == dropped and len(dropped) < 3
    for v in range(3):
        assert init.valid[v].any() == (train.image_names[v] not in dropped)  # a dropped view stays empty
    d = scale[:, None, None] * ref.depth + torch.tensor(init.meta["shift"])[:, None, None]
    keep = init.confidence > 0  # the predicted (not interpolated) pixels
    torch.testing.assert_close(init.depth[keep], d[keep])
    # a v1 variant refuses a v2 file; a missing file / a wrong file are named
    with pytest.raises(InputError, match="MoGe v1"):
        MoGeInit(variant="v1-vitl", weights=str(tmp_path / "model.pt"))(train)
    with pytest.raises(InputError, match="init.options.variant.*unknown MoGe variant"):
        MoGeInit(variant="v9", weights=str(tmp_path / "model.pt"))(train)
    with pytest.raises(InputError, match="init.options.weights.*nope.pt"):
        MoGeInit(weights=str(tmp_path / "nope.pt"))(train)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt"):
        MoGeInit(weights=str(tmp_path / "junk.pt"))(train)
    # config / weights mismatch: the v2 state under a config with another width
    other = tiny_config("v2", dim=32)
    torch.save({"model_config": other, "model": build_model(cfg).state_dict()}, tmp_path / "mismatch.pt")
    with pytest.raises(InputError, match="(?s)mismatch.pt.*shape mismatch"):
        MoGeInit(weights=str(tmp_path / "mismatch.pt"))(train)


def test_missing_default_weights_say_how_to_get_them(synth):
    if weights_present(VARIANTS["v2-vitl-normal"].weights):
        pytest.skip("the released MoGe weights are in the Hugging Face cache")
    train = replace(synth["train"], sparse_points=synth["sparse"])
    with pytest.raises(WeightsNotFoundError, match="moge-v2-vitl-normal.*weights fetch") as e:
        MoGeInit(device="cpu")(train)
    assert "init.options.weights=PATH" in str(e.value) and "backbone.weights" not in str(e.value)


def test_real_llff_distorted_mvs_depth_aligns_to_colmap_points(shared_data):
    """Fern: a known affine distortion of the MVS depth, aligned back to the COLMAP points (real SfM points with
    occlusions and noise); the MVS depth and the COLMAP points live in one frame, so s A ~ 1 and s B + t ~ 0."""
    from feat2gs.init import MVSInit

    scene = load_scene(shared_data / "llff" / "fern").resized_long_side(128, 16)
    train = scene.subset([0, 6, 12])
    mvs = MVSInit(fill="none")(train)  # the confident pixels only
    distorted = A[:, None, None] * mvs.depth + B[:, None, None]
    init = MoGeInit(predictor=fixed(distorted, mvs.valid), align_resolution=20)(train)
    assert init.meta["target"] == "sparse" and min(init.meta["samples"]) > 100
    s, t = torch.tensor(init.meta["scale"]), torch.tensor(init.meta["shift"])
    torch.testing.assert_close(s * A, torch.ones(3), atol=0.03, rtol=0)
    depth_scale = float(mvs.depth[mvs.valid].median())
    torch.testing.assert_close((s * B + t) / depth_scale, torch.zeros(3), atol=0.03, rtol=0)
    rel = (init.depth - mvs.depth).abs() / mvs.depth
    assert rel[init.valid & mvs.valid].median() < 0.02
