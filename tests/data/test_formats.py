"""Scene formats brought by users: COLMAP (text and binary), transforms.json, MVSNet/DTU, the Feat2GS benchmark
layout. Round trips through our writers against the known cameras of the synthetic scene, undistortion against an
analytic distortion model, lazy loading, format selection, bad input, and ``feat2gs data check``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from feat2gs.cli import main
from feat2gs.config import load_config
from feat2gs.data import (SceneCatalogue, detect_format, load_scene, make_synthetic_scene, open_scene, write_colmap,
                          write_colmap_scene, write_mvsnet, write_transforms_scene)
from feat2gs.data import catalogue as catalogue_module
from feat2gs.errors import InputError
from feat2gs.io.colmap import (ColmapCamera, ColmapImage, ColmapPoints, read_cameras_bin, read_cameras_text,
                               read_images_bin, read_images_text, read_points3d_bin, read_points3d_text,
                               write_cameras_bin, write_cameras_text, write_images_bin, write_images_text,
                               write_points3d_bin, write_points3d_text)
from feat2gs.io.images import write_png
from feat2gs.io.pfm import read_pfm, write_pfm
from feat2gs.pipeline import open_working_scene


@pytest.fixture(scope="module")
def scene():
    """5 views, 64x48, with GT depth, masks and points (a few pixels masked out, to see masks travel)."""
    s = make_synthetic_scene(seed=3, num_views=5, width=64, height=48)
    s.masks[:, :3, :5] = False
    return s


def assert_same_cameras(a, b, tol=1e-6):
    assert (a.width, a.height) == (b.width, b.height)
    assert float((a.K - b.K).abs().max()) <= tol * max(1.0, float(a.K.abs().max()) * 1e-1)
    assert float((a.viewmats - b.viewmats).abs().max()) <= tol


def assert_same_reprojection(a, b, points):
    """Same pixel (to 1e-3 px) in every view for the points in front of it (z > 0.5)."""
    uv_a, z_a = a.project(points)
    uv_b, z_b = b.project(points)
    front = z_b > 0.5
    assert front.float().mean() > 0.5
    assert float((uv_a - uv_b).abs()[front].max()) < 1e-3  # pixels
    assert float((z_a - z_b).abs().max()) < 1e-5


def _write(kind, s, root):
    if kind == "colmap-text":
        write_colmap_scene(s, root)
    elif kind == "colmap-bin":
        write_colmap_scene(s, root, binary=True)
    elif kind == "transforms":
        write_transforms_scene(s, root)
    elif kind == "mvsnet":
        write_mvsnet(s, root)
    elif kind == "feat2gs":
        write_mvsnet(s, root / "DTU" / "scan9")
        (root / "dataset_split.json").write_text(json.dumps(
            {"DTU": {"scan9": {"train": ["00000000", "00000004"], "test": ["00000001", "00000003"]}}}))
        root = root / "DTU" / "scan9"
    return root


FORMAT_OF = {"colmap-text": "colmap", "colmap-bin": "colmap", "transforms": "transforms", "mvsnet": "mvsnet",
             "feat2gs": "feat2gs"}


@pytest.mark.parametrize("kind", list(FORMAT_OF))
def test_round_trip(kind, scene, tmp_path):
    root = _write(kind, scene, tmp_path / "s")
    assert detect_format(root) == FORMAT_OF[kind]
    back = load_scene(root)
    assert back.num_views == scene.num_views
    assert_same_cameras(back.cameras, scene.cameras)
    pts = scene.points[:: max(1, len(scene.points) // 500)]
    assert_same_reprojection(back.cameras, scene.cameras, pts)
    assert float((back.images - scene.images).abs().max()) <= 0.5 / 255 + 1e-6  # 8-bit PNG
    if kind in ("transforms", "mvsnet", "feat2gs"):  # these formats carry GT depth and masks
        assert torch.equal(back.depths, scene.depths)
        assert torch.equal(back.masks, scene.masks)
    else:
        assert back.depths is None and back.masks is None
    if kind in ("mvsnet", "feat2gs"):
        torch.testing.assert_close(back.depth_range, scene.depth_range, rtol=0, atol=0)
    if kind == "feat2gs":
        assert back.meta["splits"] == {"feat2gs": {"train": [0, 4], "test": [1, 3]}}
        assert back.meta["inner_format"] == "mvsnet"
        assert load_scene(root, format="mvsnet").meta.get("splits") is None
    # and with scene.format= instead of detection
    again = load_scene(root, format=FORMAT_OF[kind], views=[3, 1])
    assert again.image_names == [back.image_names[3], back.image_names[1]]


def test_colmap_sparse_points_and_depth_range(scene, tmp_path):
    pts = scene.points[::7]
    write_colmap(tmp_path, scene.cameras, scene.image_names, scene.images, pts,
                 np.full((len(pts), 3), 200, np.uint8))
    back = load_scene(tmp_path)
    torch.testing.assert_close(back.sparse_points, pts, rtol=0, atol=0)
    # the range of the points inside each view (some occluded) brackets its GT depths
    for v in range(scene.num_views):
        d = scene.depths[v][scene.depths[v] > 0]
        near, far = back.depth_range[v]
        assert 0.5 * float(d.min()) < float(near) < float(far) < 2 * float(d.max())
        assert float(((d >= near) & (d <= far)).float().mean()) > 0.95


def test_colmap_depth_range_from_tracks(scene, tmp_path):
    """With tracks, a view's range comes from the points it observes: here view 1's own surface points."""
    from feat2gs.io.colmap import read_model

    pts = scene.cameras.unproject(scene.depths)[1][scene.depths[1] > 0][::5]
    write_colmap(tmp_path, scene.cameras, scene.image_names, scene.images, pts)
    _, ims, P = read_model(tmp_path / "sparse" / "0")
    ims[2].point3D_ids, ims[2].xys = P.ids.astype(np.int64), np.zeros((len(P), 2))  # image id 2 = view 1
    write_images_text(tmp_path / "sparse" / "0" / "images.txt", list(ims.values()))
    rng = open_scene(tmp_path).depth_range[1]
    d = pts @ scene.cameras.viewmats[1, :3, :3].T + scene.cameras.viewmats[1, :3, 3]
    expect = torch.quantile(d[:, 2].double(), torch.tensor([0.001, 0.999], dtype=torch.float64)).float()
    torch.testing.assert_close(rng, expect, rtol=1e-5, atol=1e-5)


def test_colmap_downsampled_images_scale_intrinsics(scene, tmp_path):
    write_colmap_scene(scene, tmp_path)
    half = scene.resized(32, 24)
    for v in range(scene.num_views):
        write_png(tmp_path / "images_2" / f"{scene.image_names[v]}.png", half.images[v])
    back = load_scene(tmp_path, factor=2)
    assert_same_cameras(back.cameras, half.cameras)


# ---------------------------------------------------------------------------------------------- undistortion
def _distort(model, p, x, y):
    """Analytic distortion of normalised coordinates (COLMAP's definitions), independent of OpenCV."""
    if model == "OPENCV_FISHEYE":
        k1, k2, k3, k4 = p[4:]
        r = np.hypot(x, y)
        th = np.arctan(r)
        thd = th * (1 + k1 * th ** 2 + k2 * th ** 4 + k3 * th ** 6 + k4 * th ** 8)
        s = np.where(r > 1e-12, thd / np.maximum(r, 1e-12), 1.0)
        return x * s, y * s
    k = {"SIMPLE_RADIAL": lambda: [p[3], 0, 0, 0], "RADIAL": lambda: [p[3], p[4], 0, 0],
         "OPENCV": lambda: list(p[4:8]), "FULL_OPENCV": lambda: list(p[4:12])}[model]() + [0] * 8
    k1, k2, p1, p2, k3, k4, k5, k6 = k[:8]
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3) / (1 + k4 * r2 + k5 * r2 ** 2 + k6 * r2 ** 3)
    return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)


MODELS = {
    "OPENCV": [150.0, 148.0, 81.3, 58.7, 0.05, 0.0, 0.0, 0.0],  # the acceptance case: k1 = 0.05
    "OPENCV-tangential": [150.0, 148.0, 81.3, 58.7, -0.08, 0.02, 0.003, -0.002],
    "SIMPLE_RADIAL": [150.0, 81.3, 58.7, -0.1],
    "RADIAL": [150.0, 81.3, 58.7, -0.1, 0.03],
    "FULL_OPENCV": [150.0, 148.0, 81.3, 58.7, -0.1, 0.02, 0.001, 0.002, 0.005, 0.05, -0.01, 0.002],
    "OPENCV_FISHEYE": [150.0, 148.0, 81.3, 58.7, 0.05, -0.02, 0.01, -0.003],
}


@pytest.mark.parametrize("case", list(MODELS))
def test_undistortion_reprojects_within_half_a_pixel(case, tmp_path):
    model, params = case.split("-")[0], np.array(MODELS[case])
    W, H, sigma = 160, 120, 1.2
    fx, fy = (params[0], params[0]) if model in ("SIMPLE_RADIAL", "RADIAL") else params[:2]
    cx, cy = (params[1], params[2]) if model in ("SIMPLE_RADIAL", "RADIAL") else params[2:4]
    # 3D points (camera at the origin, identity pose) whose pinhole pixels spread over the image
    uu, vv = np.meshgrid(np.linspace(20, W - 20, 5), np.linspace(18, H - 18, 4))
    x, y = (uu.ravel() - cx) / fx, (vv.ravel() - cy) / fy
    depth = 2.0 + 0.1 * np.arange(x.size)
    X = np.stack([x * depth, y * depth, depth], 1)
    xd, yd = _distort(model, params, x, y)
    ud, vd = fx * xd + cx, fy * yd + cy  # where the distorted camera sees them (pixel-centre convention)
    jj, ii = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    raw = sum(np.exp(-((jj - a) ** 2 + (ii - b) ** 2) / (2 * sigma ** 2)) for a, b in zip(ud, vd))
    write_png(tmp_path / "images" / "a.png", np.repeat(np.clip(raw, 0, 1)[..., None], 3, 2), bit_depth=16)
    mdir = tmp_path / "sparse" / "0"
    mdir.mkdir(parents=True)
    write_cameras_text(mdir / "cameras.txt", [ColmapCamera(1, model, W, H, params)])
    write_images_text(mdir / "images.txt", [ColmapImage(1, np.array([1.0, 0, 0, 0]), np.zeros(3), 1, "a.png")])
    s = load_scene(tmp_path)
    assert s.meta["undistorted"]
    uv, z = s.cameras.project(torch.from_numpy(X).float())
    img = s.images[0, 0].numpy()
    errors = []
    for u, v in uv[0].numpy():
        j0, i0 = int(u), int(v)
        win = img[i0 - 5:i0 + 6, j0 - 5:j0 + 6]
        cj, ci = np.meshgrid(np.arange(j0 - 5, j0 + 6) + 0.5, np.arange(i0 - 5, i0 + 6) + 0.5)
        errors.append(math.hypot((win * cj).sum() / win.sum() - u, (win * ci).sum() / win.sum() - v))
        assert s.masks[0, i0, j0]
    assert max(errors) < 0.5, errors
    if case == "OPENCV":  # pincushion: the corners of the pinhole image are outside the distorted one
        assert not s.masks[0, 0, 0] and not s.masks[0, -1, -1]
        assert s.masks.float().mean() > 0.9


# ---------------------------------------------------------------------------------------------- lazy loading
def test_lazy_loading_decodes_only_the_views_asked_for(scene, tmp_path, monkeypatch):
    root = _write("transforms", scene, tmp_path / "t")
    eager = load_scene(root)
    calls = []
    real = catalogue_module.read_image
    monkeypatch.setattr(catalogue_module, "read_image", lambda p, bg=None: calls.append(p) or real(p, bg))
    cat = open_scene(root)
    assert calls == [] and cat.num_views == 5 and cat.has_depths and cat.has_masks  # cameras without pixels
    lazy = cat.load([4, 1], long_side=40, multiple=8)
    assert len(calls) == 2
    ref = eager.subset([4, 1]).resized_long_side(40, 8)
    assert (lazy.width, lazy.height) == (40, 32)
    assert lazy.depth_range is None and ref.depth_range is None
    for f in ("images", "depths", "masks"):
        assert torch.equal(getattr(lazy, f), getattr(ref, f)), f
    assert torch.equal(lazy.cameras.K, ref.cameras.K) and torch.equal(lazy.cameras.viewmats, ref.cameras.viewmats)


def test_pipeline_decodes_only_split_views(scene, tmp_path, monkeypatch):
    from feat2gs.pipeline import prepare_scene

    root = _write("transforms", scene, tmp_path / "t")
    calls = []
    real = catalogue_module.read_image
    monkeypatch.setattr(catalogue_module, "read_image", lambda p, bg=None: calls.append(p) or real(p, bg))
    cfg = load_config([f"scene.path={root}", "scene.long_side=32", "split.n_train=2", "split.test=even",
                       "split.n_test=1", "init.block=4"])
    prep = prepare_scene(cfg)
    assert len(calls) == 3 and prep.info["views"] == 5
    assert prep.info["train_views"] == ["images/view000.png", "images/view004.png"]


# ---------------------------------------------------------------------------------------------- format selection
def test_format_selection_and_errors(scene, tmp_path):
    both = tmp_path / "both"
    _write("colmap-text", scene, both)
    write_transforms_scene(scene, both)
    with pytest.raises(InputError, match=r"ambiguous scene format.*scene\.format=colmap"):
        detect_format(both)
    assert load_scene(both, format="transforms").meta["format"] == "transforms"
    with pytest.raises(InputError, match=r"scene\.format: unknown format 'ply'; supported: .*colmap.*transforms.*"
                                         r"mvsnet.*README 'Formats'"):
        open_scene(both, "ply")
    cfg = load_config([f"scene.path={both}", "scene.format=colmap"])
    assert open_working_scene(cfg).format == "colmap"
    cfg = load_config([f"scene.path={both}", "scene.options.format=transforms"])  # the older spelling
    assert open_working_scene(cfg).format == "transforms"
    with pytest.raises(InputError, match="scene.format"):
        open_working_scene(load_config([f"scene.path={both}"]))


def test_detection_prefers_complete_models(scene, tmp_path):
    """LLFF's partial COLMAP model (cameras.bin without images.bin) does not compete with poses_bounds.npy; a
    folder with only the partial model is COLMAP and the loader names the missing file."""
    root = _write("colmap-bin", scene, tmp_path / "c")
    (root / "sparse" / "0" / "images.bin").unlink()
    assert detect_format(root) == "colmap"
    with pytest.raises(InputError, match=r"sparse/0/images\.bin: not found"):
        load_scene(root)


def test_llff_with_its_colmap_model_is_llff(scene, tmp_path):
    from data_testlib import write_llff

    root = write_llff(tmp_path / "l", scene, {1: scene}, full_size=(64, 48))
    write_colmap(root, scene.cameras, [f"image{v:03d}.png" for v in range(5)])
    assert detect_format(root) == "llff"  # nerf_llff_data ships poses_bounds.npy and sparse/0 together
    (root / "images").mkdir()
    for p in sorted((root / "images_1").iterdir()):
        (root / "images" / p.name).write_bytes(p.read_bytes())
    assert_same_cameras(load_scene(root, format="colmap").cameras, scene.cameras)


def test_blender_rgba_frames_global_fov_and_splits(scene, tmp_path):
    """Blender's layout: transforms_{train,test}.json, camera_angle_x, paths without extension, RGBA frames."""
    W, H = scene.width, scene.height
    fx = float(scene.cameras.K[0, 0, 0])
    c2w = np.linalg.inv(scene.cameras.viewmats.double().numpy()) @ np.diag([1.0, -1, -1, 1])
    alpha = np.zeros((H, W), np.float32)
    alpha[10:30, 20:40] = 1.0
    for split, views in (("train", [0, 2, 4]), ("test", [1, 3])):
        frames = []
        for v in views:
            rgba = np.concatenate([scene.images[v].permute(1, 2, 0).numpy(), alpha[..., None]], 2)
            write_png(tmp_path / split / f"r_{v}.png", rgba, bit_depth=16)
            frames.append({"file_path": f"./{split}/r_{v}", "transform_matrix": c2w[v].tolist()})
        (tmp_path / f"transforms_{split}.json").write_text(json.dumps(
            {"camera_angle_x": 2 * math.atan(W / (2 * fx)), "frames": frames}))
    s = load_scene(tmp_path, background=[0.0, 1.0, 0.0])
    assert s.image_names == ["train/r_0", "train/r_2", "train/r_4", "test/r_1", "test/r_3"]
    assert s.meta["splits"] == {"blender": {"train": [0, 1, 2], "test": [3, 4]}}
    order = [0, 2, 4, 1, 3]
    torch.testing.assert_close(s.cameras.K, scene.cameras.K[order], rtol=1e-5, atol=1e-4)  # centred pp
    torch.testing.assert_close(s.cameras.viewmats, scene.cameras.viewmats[order], rtol=0, atol=1e-6)
    assert torch.allclose(s.images[0, :, 15, 25], scene.images[0, :, 15, 25], atol=1e-4)  # opaque: the colour
    assert torch.allclose(s.images[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]))  # transparent: the background


def test_transforms_png_depth_in_millimetres(scene, tmp_path):
    """nerfstudio's depth convention: 16-bit PNG times depth_unit_scale_factor (1e-3 by default: millimetres)."""
    root = tmp_path / "t"
    write_transforms_scene(scene, root)
    data = json.loads((root / "transforms.json").read_text())
    mm = np.round(scene.depths.numpy() * 1000).astype(np.uint16)
    for v, fr in enumerate(data["frames"]):
        write_png(root / "depths" / f"d{v}.png", mm[v], bit_depth=16)
        fr["depth_file_path"] = f"depths/d{v}.png"
    (root / "transforms.json").write_text(json.dumps(data))
    back = load_scene(root)
    assert float((back.depths - scene.depths).abs().max()) <= 0.5e-3 + 1e-6
    data["depth_unit_scale_factor"] = 1.0
    (root / "transforms.json").write_text(json.dumps(data))
    torch.testing.assert_close(load_scene(root, views=[2]).depths[0], torch.from_numpy(mm[2].astype(np.float32)))


# ---------------------------------------------------------------------------------------------- bad input
def test_missing_frame_files(scene, tmp_path):
    root = _write("transforms", scene, tmp_path / "t")
    (root / "images" / "view001.png").unlink()
    with pytest.raises(InputError, match=r"transforms\.json: 1 frame\(s\) name missing image files: "
                                         r"frames\[1\]\.file_path=images/view001\.png"):
        load_scene(root)
    cat = open_scene(root, skip_missing=True)
    assert cat.num_views == 4 and cat.meta["missing_frames"] == 1 and "1 frame(s)" in cat.warnings[0]
    croot = _write("colmap-text", scene, tmp_path / "c")
    (croot / "images" / "view002.png").unlink()
    with pytest.raises(InputError, match=r"images\.txt: 1 image\(s\) named in the model are not in .*view002\.png"):
        load_scene(croot)
    assert open_scene(croot, skip_missing=True).num_views == 4


def test_nan_and_bad_transforms(scene, tmp_path):
    root = _write("transforms", scene, tmp_path / "t")
    data = json.loads((root / "transforms.json").read_text())
    good = json.dumps(data)
    data["frames"][2]["transform_matrix"][1][3] = float("nan")
    (root / "transforms.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"transforms\.json:frames\[2\]\.transform_matrix: contains NaN"):
        load_scene(root)
    data = json.loads(good)
    data["frames"][1]["transform_matrix"][0][0] = 2.0  # scaled: not a rotation
    (root / "transforms.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"frames\[1\]\.transform_matrix: rotation is not orthonormal"):
        load_scene(root)
    data = json.loads(good)
    data["frames"][0]["fl_x"] = "wide"
    (root / "transforms.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"frames\[0\]\.fl_x: not a number"):
        load_scene(root)


def test_unsupported_camera_model_and_bad_colmap_text(scene, tmp_path):
    root = _write("colmap-text", scene, tmp_path / "c")
    cams = root / "sparse" / "0" / "cameras.txt"
    text = cams.read_text()
    lines = text.splitlines()
    first = lines[3].split()
    lines[3] = " ".join([first[0], "FOV", first[2], first[3], first[4], first[5], first[6], first[7], "0.1"])
    cams.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"cameras\.txt \(camera 1\)\.model: unsupported camera model FOV; "
                                         r"supported: .*OPENCV_FISHEYE"):
        load_scene(root)
    cams.write_text(text)
    imgs = root / "sparse" / "0" / "images.txt"
    ilines = imgs.read_text().splitlines()
    f = ilines[4].split()
    f[5] = "nan"
    ilines[4] = " ".join(f)
    imgs.write_text("\n".join(ilines) + "\n")
    with pytest.raises(InputError, match=r"images\.txt:5 \(image 1\)\.pose: qvec/tvec contains NaN"):
        load_scene(root)


def test_colmap_text_and_binary_agree(tmp_path):
    rng = np.random.default_rng(0)
    cams = [ColmapCamera(i + 1, m, 640, 480, rng.uniform(0.1, 2, n)) for i, (m, n) in enumerate(
        [("SIMPLE_PINHOLE", 3), ("OPENCV", 8), ("FULL_OPENCV", 12), ("OPENCV_FISHEYE", 8)])]
    ims = [ColmapImage(7, np.array([0.5, 0.5, 0.5, 0.5]), rng.normal(size=3), 2, "sub dir/a b.jpg",
                       rng.uniform(0, 500, (3, 2)), np.array([4, -1, 9])),
           ColmapImage(3, np.array([1.0, 0, 0, 0]), rng.normal(size=3), 1, "c.png")]
    pts = ColmapPoints(np.array([4, 9], np.uint64), rng.normal(size=(2, 3)),
                       np.array([[1, 2, 3], [250, 0, 9]], np.uint8),
                       np.array([0.5, 1.5]), np.array([0, 2, 3]), np.array([7, 3, 7], np.int32),
                       np.array([0, 5, 2], np.int32))
    write_cameras_text(tmp_path / "c.txt", cams), write_cameras_bin(tmp_path / "c.bin", cams)
    write_images_text(tmp_path / "i.txt", ims), write_images_bin(tmp_path / "i.bin", ims)
    write_points3d_text(tmp_path / "p.txt", pts), write_points3d_bin(tmp_path / "p.bin", pts)
    ct, cb = read_cameras_text(tmp_path / "c.txt"), read_cameras_bin(tmp_path / "c.bin")
    assert ct.keys() == cb.keys() and all(np.array_equal(ct[k].params, cb[k].params) and ct[k].model == cb[k].model
                                          for k in ct)
    it, ib = read_images_text(tmp_path / "i.txt"), read_images_bin(tmp_path / "i.bin")
    for k in (7, 3):
        assert it[k].name == ib[k].name and np.array_equal(it[k].qvec, ib[k].qvec)
        assert np.array_equal(it[k].xys, ib[k].xys) and np.array_equal(it[k].point3D_ids, ib[k].point3D_ids)
    assert it[7].name == "sub dir/a b.jpg" and len(it[3].xys) == 0
    pt, pb = read_points3d_text(tmp_path / "p.txt"), read_points3d_bin(tmp_path / "p.bin")
    for f in ("ids", "xyz", "rgb", "error", "track_offsets", "track_image_ids", "track_point2D_idx"):
        assert np.array_equal(getattr(pt, f), getattr(pb, f)), f


def test_pfm_round_trip(tmp_path):
    a = np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32)
    np.testing.assert_array_equal(read_pfm(write_pfm(tmp_path / "a.pfm", a)), a)
    (tmp_path / "b.pfm").write_bytes(b"Pf\n5 7\n-1.0\n" + a.tobytes()[:20])
    with pytest.raises(InputError, match="b.pfm: truncated"):
        read_pfm(tmp_path / "b.pfm")


def test_feat2gs_split_errors_and_imageless_scenes(scene, tmp_path):
    root = _write("feat2gs", scene, tmp_path / "f")
    (tmp_path / "f" / "dataset_split.json").write_text(json.dumps(
        {"DTU": {"scan9": {"train": ["00000000", "00000042"], "test": ["00000001"]}}}))
    with pytest.raises(InputError,
                       match=r"dataset_split\.json:\[DTU\]\[scan9\]\.train: image '00000042' is not a view"):
        load_scene(root)
    bare = tmp_path / "f" / "DTU" / "scan10"
    write_png(bare / "images" / "000.png", scene.images[0])
    (tmp_path / "f" / "dataset_split.json").write_text(json.dumps({"DTU": {"scan10": {"train": ["000"], "test": []}}}))
    with pytest.raises(InputError, match="scan10: Feat2GS scenes ship images only"):
        load_scene(bare)


# ---------------------------------------------------------------------------------------------- data check
def test_data_check(scene, tmp_path, capsys):
    root = _write("feat2gs", scene, tmp_path / "f")
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    for fact in ("format: feat2gs (cameras from mvsnet)", "views: 5", "image size: 64x48", "intrinsics: fx",
                 "depth range: near", "scene scale:", "splits: feat2gs (2 train / 2 test)", "masks: yes",
                 "GT depth: yes", "warnings: none"):
        assert fact in out, fact
    # a camera turned away from the others sees nothing in common with them
    vm = scene.cameras.viewmats.clone()
    vm[2, :3, :3] = torch.diag(torch.tensor([-1.0, 1.0, -1.0])) @ vm[2, :3, :3]
    vm[2, :3, 3] = torch.diag(torch.tensor([-1.0, 1.0, -1.0])) @ vm[2, :3, 3]
    away = tmp_path / "away"
    write_colmap(away, scene.cameras.with_viewmats(vm), scene.image_names, scene.images)
    assert main(["data", "check", str(away), "--decode"]) == 0
    out = capsys.readouterr().out
    assert "1 view(s) see nothing in common with any other view: view002.png" in out
    assert "decoded: all 5 views decode" in out
    (away / "sparse" / "0" / "images.txt").unlink()
    assert main(["data", "check", str(away)]) == 2
    assert "images.bin: not found" in capsys.readouterr().err


def test_data_export_converts(scene, tmp_path, capsys):
    src = _write("mvsnet", scene, tmp_path / "m")
    assert main(["data", "export", str(src), "--to", "transforms", str(tmp_path / "t")]) == 0
    back = load_scene(tmp_path / "t")
    assert_same_cameras(back.cameras, scene.cameras)
    assert torch.equal(back.depths, scene.depths)


def test_catalogue_from_memory_scene(scene):
    cat = SceneCatalogue.from_scene(scene, "memory")
    sub = cat.load([3, 0], long_side=32)
    ref = scene.subset([3, 0]).resized_long_side(32)
    assert torch.equal(sub.images, ref.images) and sub.image_names == ["view003", "view000"]


# ---------------------------------------------------------------------------------------------- shared scenes
@pytest.mark.shared_data
@pytest.mark.parametrize("rel,fmt", [("llff/fern", "llff"), ("middlebury/templeSparseRing", "middlebury"),
                                     ("dtu/scan37", "idr")])
def test_shared_scenes_detect_select_and_check(shared_data, rel, fmt, capsys):
    path = shared_data / rel
    assert detect_format(path) == fmt
    cat = open_scene(path)
    sel = open_scene(path, fmt)
    assert_same_cameras(cat.cameras, sel.cameras, tol=0)
    cfg = load_config([f"scene.path={path}", f"scene.format={fmt}"])
    assert open_working_scene(cfg).num_views == cat.num_views
    one = cat.load([cat.num_views - 1], long_side=64)
    assert one.num_views == 1 and max(one.width, one.height) == 64
    assert main(["data", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"format: {fmt}" in out and f"views: {cat.num_views}" in out and "warnings: none" in out
