"""Loaders against scenes written in each format from known cameras (the synthetic scene), format detection,
and bad input: every broken file gives an InputError naming the file and field."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from data_testlib import write_idr, write_llff, write_middlebury

from feat2gs.data import detect_format, load_scene, make_split
from feat2gs.data.idr import decompose_projection
from feat2gs.errors import InputError
from feat2gs.io.colmap import ColmapPoints, write_points3d_bin
from feat2gs.io.images import write_png


@pytest.fixture(scope="module")
def toy():
    """4 views, 64x48, colours at pixel centres, object masks."""
    from feat2gs.data import make_synthetic_scene

    return make_synthetic_scene(seed=5, num_views=4, width=64, height=48, supersample=1, mask="objects")


def assert_same_cameras(a, b, K_tol=1e-4):
    torch.testing.assert_close(a.K, b.K, rtol=K_tol, atol=K_tol)
    torch.testing.assert_close(a.viewmats, b.viewmats, rtol=1e-5, atol=1e-5)
    assert (a.width, a.height) == (b.width, b.height)


def points_file(path, xyz):
    n = len(xyz)
    write_points3d_bin(path, ColmapPoints(np.arange(1, n + 1, dtype=np.uint64), xyz.astype(np.float64),
                                          np.full((n, 3), 128, np.uint8), np.ones(n), np.zeros(n + 1, np.int64),
                                          np.zeros(0, np.int32), np.zeros(0, np.int32)))


# ---------------------------------------------------------------------------------------------- LLFF
@pytest.fixture()
def llff_dir(tmp_path, toy):
    small = toy.resized(32, 24)
    return write_llff(tmp_path / "toy_llff", toy, {2: toy, 4: small}, full_size=(128, 96))


def test_llff_roundtrip_and_folder_choice(llff_dir, toy):
    assert detect_format(llff_dir) == "llff"
    s = load_scene(llff_dir)  # the most downsampled folder: images_4, 32x24
    assert s.meta["image_dir"].endswith("images_4") and (s.width, s.height) == (32, 24)
    assert_same_cameras(s.cameras, toy.cameras.resized(32, 24))
    s2 = load_scene(llff_dir, factor=2)
    assert_same_cameras(s2.cameras, toy.cameras)
    assert load_scene(llff_dir, images="images_2").image_names == s2.image_names
    torch.testing.assert_close(s2.images, toy.images, atol=0.5 / 255 + 1e-6, rtol=0)
    torch.testing.assert_close(s2.depth_range, toy.depth_range)
    # the same world point lands at the same relative image position at both resolutions
    uv4, z4 = s.cameras.project(toy.points[::97])
    uv2, z2 = s2.cameras.project(toy.points[::97])
    torch.testing.assert_close(uv4 / torch.tensor([32.0, 24.0]), uv2 / torch.tensor([64.0, 48.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(z4, z2)
    assert s.sparse_points is None


def test_llff_sparse_points(llff_dir, toy):
    (llff_dir / "sparse" / "0").mkdir(parents=True)
    pts_path = llff_dir / "sparse" / "0" / "points3D.bin"
    points_file(pts_path, toy.points[::50].double().numpy())
    s = load_scene(llff_dir)
    torch.testing.assert_close(s.sparse_points, toy.points[::50])
    # points of another frame (mirrored behind the cameras) are refused, naming the file
    points_file(pts_path, -10 * toy.points[::50].double().numpy())
    with pytest.raises(InputError, match="points3D.bin.*not in the world frame"):
        load_scene(llff_dir)
    assert load_scene(llff_dir, sparse=False).sparse_points is None


def test_llff_bad_inputs(llff_dir):
    pb = llff_dir / "poses_bounds.npy"
    good = np.load(pb)
    np.save(pb, good[:, :15])
    with pytest.raises(InputError, match=r"poses_bounds.npy: expected shape \(N, 17\)"):
        load_scene(llff_dir)
    bad = good.copy()
    bad[2, 7] = np.nan
    np.save(pb, bad)
    with pytest.raises(InputError, match=r"poses_bounds.npy: contains NaN or inf \(first at index \(2, 7\)\)"):
        load_scene(llff_dir)
    np.save(pb, good[:3])  # fewer cameras than images
    with pytest.raises(InputError, match=r"images_4: 4 images but poses_bounds.npy has 3 poses"):
        load_scene(llff_dir)
    bad = good.copy()
    bad[1, 15:] = [5.0, 2.0]
    np.save(pb, bad)
    with pytest.raises(InputError, match=r"poses_bounds.npy\[1\].bounds"):
        load_scene(llff_dir)
    np.save(pb, good)
    with pytest.raises(InputError, match="images_3: image folder not found"):
        load_scene(llff_dir, factor=3)
    pb.write_bytes(b"not a numpy file")
    with pytest.raises(InputError, match="poses_bounds.npy: cannot read"):
        load_scene(llff_dir)


# ---------------------------------------------------------------------------------------------- IDR / NeuS
def test_decompose_projection_signs():
    rng = np.random.default_rng(0)
    for k in range(20):
        K = np.array([[rng.uniform(100, 900), 0, rng.uniform(0, 400)], [0, rng.uniform(100, 900), rng.uniform(0, 300)],
                      [0, 0, 1]])
        from scipy.spatial.transform import Rotation

        R = Rotation.random(random_state=k).as_matrix()
        t = rng.normal(size=3)
        scale = rng.uniform(0.01, 100) * (-1) ** k  # any non-zero scale, negative ones included
        K2, R2, t2 = decompose_projection(scale * K @ np.concatenate([R, t[:, None]], 1), "P")
        np.testing.assert_allclose(K2, K, rtol=1e-9, atol=1e-7)
        np.testing.assert_allclose(R2, R, atol=1e-9)
        np.testing.assert_allclose(t2, t, atol=1e-9)
    with pytest.raises(InputError, match="P: projection matrix is singular"):
        decompose_projection(np.zeros((3, 4)), "P")


@pytest.fixture()
def idr_dir(tmp_path, toy):
    S = np.diag([2.5, 2.5, 2.5, 1.0])
    S[:3, 3] = [0.0, 0.2, 0.4]
    return write_idr(tmp_path / "toy_idr", toy, scale=-3.7, scale_mat=S)


def test_idr_roundtrip(idr_dir, toy):
    assert detect_format(idr_dir) == "idr"
    s = load_scene(idr_dir)
    assert_same_cameras(s.cameras, toy.cameras)
    assert s.image_names[0] == "000000.png"
    assert torch.equal(s.masks, toy.masks)
    torch.testing.assert_close(s.images, toy.images, atol=0.5 / 255 + 1e-6, rtol=0)
    # depth range of the sphere |x - (0, 0.2, 0.4)| <= 2.5, brute force over surface samples
    g = torch.Generator().manual_seed(0)
    dirs = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    sphere = torch.tensor([0.0, 0.2, 0.4], dtype=torch.float64) + 2.5 * dirs / dirs.norm(dim=1, keepdim=True)
    _, z = s.cameras.project(sphere.float())
    torch.testing.assert_close(s.depth_range[:, 0], z.min(1).values, atol=2e-3, rtol=0)
    torch.testing.assert_close(s.depth_range[:, 1], z.max(1).values, atol=2e-3, rtol=0)
    # normalised frame: world = S @ normalised
    n = load_scene(idr_dir, normalize=True)
    mapped = n.cameras.centers * 2.5 + torch.tensor([0.0, 0.2, 0.4])
    torch.testing.assert_close(mapped, toy.cameras.centers, atol=1e-4, rtol=0)
    torch.testing.assert_close(n.depth_range, s.depth_range / 2.5, atol=1e-5, rtol=1e-5)
    assert load_scene(idr_dir, masks=False).masks is None


def test_idr_bad_inputs(idr_dir):
    cam = idr_dir / "cameras_sphere.npz"
    good = dict(np.load(cam))

    def save(**changes):
        d = {**good, **changes}
        np.savez(cam, **{k: v for k, v in d.items() if v is not None})

    save(world_mat_2=np.eye(3))
    with pytest.raises(InputError, match=r"cameras_sphere.npz:world_mat_2: expected shape \(4, 4\) or \(3, 4\)"):
        load_scene(idr_dir)
    wm = good["world_mat_1"].copy()
    wm[0, 3] = np.inf
    save(world_mat_1=wm)
    with pytest.raises(InputError, match="cameras_sphere.npz:world_mat_1: contains NaN or inf"):
        load_scene(idr_dir)
    save(world_mat_3=None, scale_mat_3=None)  # fewer cameras than images
    with pytest.raises(InputError, match="cameras_sphere.npz: 3 world_mat_. cameras but 4 images"):
        load_scene(idr_dir)
    save()
    (idr_dir / "mask" / "002.png").unlink()
    with pytest.raises(InputError, match=r"mask/000002.png: no mask for image 000002.png"):
        load_scene(idr_dir)
    shutil.copy(idr_dir / "mask" / "001.png", idr_dir / "mask" / "002.png")
    write_png(idr_dir / "mask" / "003.png", np.ones((10, 10), bool))
    with pytest.raises(InputError, match="003.png: mask is 10x10 but the images are 64x48"):
        load_scene(idr_dir)


# ---------------------------------------------------------------------------------------------- Middlebury
@pytest.fixture()
def mb_dir(tmp_path, toy):
    d = write_middlebury(tmp_path / "toy_mb", toy)
    (d / "README.txt").write_text("The (tight) bounding box for the toy model is\n(-1.1 -0.6 0.0)\n(1.1 1.0 1.0)\n")
    return d


def test_middlebury_roundtrip(mb_dir, toy):
    assert detect_format(mb_dir) == "middlebury"
    s = load_scene(mb_dir)
    assert_same_cameras(s.cameras, toy.cameras, K_tol=1e-5)
    assert s.image_names == [f"toyS{v:04d}.png" for v in range(1, 5)]
    assert s.meta["bbox"] == ([-1.1, -0.6, 0.0], [1.1, 1.0, 1.0])
    corners = torch.tensor([[x, y, z] for x in (-1.1, 1.1) for y in (-0.6, 1.0) for z in (0.0, 1.0)])
    _, z = s.cameras.project(corners)
    torch.testing.assert_close(s.depth_range, torch.stack([z.min(1).values, z.max(1).values], 1))
    (mb_dir / "README.txt").unlink()
    assert load_scene(mb_dir).depth_range is None


def test_middlebury_bad_inputs(mb_dir):
    par = mb_dir / "toyS_par.txt"
    lines = par.read_text().splitlines()
    par.write_text("\n".join(lines[:3] + [lines[3].rsplit(" ", 1)[0]] + lines[4:]))
    with pytest.raises(InputError, match=r"toyS_par.txt:4: expected a name and 21 numbers, got 21 fields"):
        load_scene(mb_dir)
    fields = lines[2].split()
    fields[5] = "nan"
    par.write_text("\n".join(lines[:2] + [" ".join(fields)] + lines[3:]))
    with pytest.raises(InputError, match=r"toyS_par.txt:3: contains NaN or inf"):
        load_scene(mb_dir)
    fields = lines[2].split()
    fields[10] = "3.0"  # r11: not a rotation
    par.write_text("\n".join(lines[:2] + [" ".join(fields)] + lines[3:]))
    with pytest.raises(InputError, match=r"toyS_par.txt:3 R: rotation is not orthonormal"):
        load_scene(mb_dir)
    par.write_text("\n".join(["3"] + lines[1:4]))  # one image without camera
    with pytest.raises(InputError, match=r"toyS_par.txt: 1 image\(s\) in the folder have no camera: toyS0004.png"):
        load_scene(mb_dir)
    par.write_text("\n".join(lines[:-1]))
    with pytest.raises(InputError, match=r"toyS_par.txt: header says 4 views but 3 camera lines follow"):
        load_scene(mb_dir)
    par.write_text("\n".join(lines))
    (mb_dir / "toyS0002.png").unlink()
    with pytest.raises(InputError, match=r"toyS0002.png: image listed in toyS_par.txt not found"):
        load_scene(mb_dir)


# ---------------------------------------------------------------------------------------------- images, all formats
@pytest.mark.parametrize("fmt", ["llff", "idr", "middlebury"])
def test_unreadable_or_mismatched_images(fmt, tmp_path, toy):
    if fmt == "llff":
        root = write_llff(tmp_path / "s", toy, {2: toy}, full_size=(128, 96))
        files = sorted((root / "images_2").iterdir())
    elif fmt == "idr":
        root = write_idr(tmp_path / "s", toy)
        files = sorted((root / "image").iterdir())
    else:
        root = write_middlebury(tmp_path / "s", toy)
        files = sorted(root.glob("*.png"))
    files[1].write_bytes(files[1].read_bytes()[:60])  # truncated PNG
    with pytest.raises(InputError, match=rf"{files[1].name}: cannot decode image"):
        load_scene(root)
    files[1].write_bytes(b"\x00" * 100)  # not an image at all
    with pytest.raises(InputError, match=rf"{files[1].name}: cannot decode image"):
        load_scene(root)
    write_png(files[1], toy.images[1, :, :40, :50])  # another size
    with pytest.raises(InputError, match=rf"{files[1].name}: image is 50x40 but {files[0].name} is 64x48"):
        load_scene(root)


def test_detect_and_options(tmp_path, toy):
    with pytest.raises(InputError, match=r"cannot tell the scene format: looked for poses_bounds.npy \(llff\)"):
        detect_format(tmp_path)
    with pytest.raises(InputError, match="nowhere: scene folder not found"):
        load_scene(tmp_path / "nowhere")
    root = write_llff(tmp_path / "s", toy, {2: toy}, full_size=(128, 96))
    with pytest.raises(InputError, match="llff.num_views: unknown option"):
        load_scene(root, num_views=3)
    (root / "cameras.npz").write_bytes(b"")
    with pytest.raises(InputError, match="ambiguous scene format"):
        load_scene(root)
    assert load_scene(root, format="llff").num_views == 4
    s = load_scene("synthetic", num_views=3, width=32, height=24, seed=2)
    assert s.num_views == 3 and s.meta["seed"] == 2
    with pytest.raises(InputError, match="synthetic.colour: unknown option"):
        load_scene("synthetic", colour=1)


def test_split_needs_enough_views(toy):
    with pytest.raises(InputError, match=r"split.n_train: 5 train views requested but the scene has 4 views"):
        make_split(toy, 5)
    with pytest.raises(InputError, match=r"split.n_test: 3 test views requested but only 2 views are left"):
        make_split(toy, 2, test="even", n_test=3)
    with pytest.raises(InputError, match=r"split.n_train: 4 train views leave no test view"):
        make_split(toy, 4)
