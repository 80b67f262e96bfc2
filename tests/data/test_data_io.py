"""Image files (8/16-bit PNG read/write, alpha, grey, masks, bad files) and COLMAP binary
files (the real fern model, round trips, truncation)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from PIL import Image

from feat2gs.errors import InputError
from feat2gs.io import colmap
from feat2gs.io.images import list_images, read_image, read_images, read_mask, write_image, write_png


# ---------------------------------------------------------------------------------------------- images
def test_png_roundtrips(tmp_path):
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(3, 7, 9, generator=g)
    write_png(tmp_path / "a8.png", rgb)
    torch.testing.assert_close(read_image(tmp_path / "a8.png"), torch.round(rgb * 255) / 255, atol=1e-6, rtol=0)
    write_png(tmp_path / "a16.png", rgb, bit_depth=16)
    torch.testing.assert_close(read_image(tmp_path / "a16.png"), torch.round(rgb * 65535) / 65535, atol=1e-7, rtol=0)
    # our 16-bit files are standard PNGs: Pillow reads them (as 8-bit, its limit) to the same picture
    with Image.open(tmp_path / "a16.png") as im:
        assert im.size == (9, 7)
        np.testing.assert_allclose(np.asarray(im.convert("RGB")) / 255, rgb.permute(1, 2, 0).numpy(),
                                   atol=1 / 255 + 1e-6)
    grey = torch.rand(5, 6, generator=g)
    for depth, q in ((8, 255), (16, 65535)):
        write_png(tmp_path / f"g{depth}.png", grey, bit_depth=depth)
        out = read_image(tmp_path / f"g{depth}.png")
        assert out.shape == (3, 5, 6)
        torch.testing.assert_close(out, (torch.round(grey * q) / q).expand(3, 5, 6), atol=1e-7, rtol=0)
    # numpy HWC input is accepted too
    write_png(tmp_path / "hwc.png", rgb.permute(1, 2, 0).numpy())
    assert torch.equal(read_image(tmp_path / "hwc.png"), read_image(tmp_path / "a8.png"))
    # write_image picks the format from the extension
    write_image(tmp_path / "w.png", rgb)
    assert torch.equal(read_image(tmp_path / "w.png"), read_image(tmp_path / "a8.png"))
    smooth = torch.linspace(0, 1, 32)[None, None].expand(3, 16, 32)
    write_image(tmp_path / "w.jpg", smooth)
    assert (read_image(tmp_path / "w.jpg") - smooth).abs().mean() < 0.01
    with pytest.raises(InputError, match="w.gif: cannot write .gif images"):
        write_image(tmp_path / "w.gif", rgb)


def test_alpha_and_masks(tmp_path):
    rgba = np.zeros((4, 4, 4))
    rgba[..., 0] = 1.0  # red
    rgba[..., 3] = np.linspace(0, 1, 16).reshape(4, 4)
    for depth in (8, 16):
        p = write_png(tmp_path / f"rgba{depth}.png", rgba, bit_depth=depth)
        q = (1 << depth) - 1
        a = torch.from_numpy(np.round(rgba[..., 3] * q) / q).float()
        dropped = read_image(p)
        assert torch.equal(dropped[0], torch.ones(4, 4)) and dropped[1:].abs().max() == 0
        white = read_image(p, background=(1.0, 1.0, 1.0))
        torch.testing.assert_close(white[1], 1 - a, atol=1e-6, rtol=0)  # green = 0 * a + 1 * (1 - a)
        assert torch.equal(read_mask(p), a >= 0.5)  # alpha is the mask
    soft = np.array([[0, 100, 127], [128, 200, 255]], np.uint8)
    Image.fromarray(np.stack([soft] * 3, -1)).save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").tolist() == [[False, False, False], [True, True, True]]
    Image.fromarray(soft).convert("P").save(tmp_path / "p.png")  # palette image
    assert read_image(tmp_path / "p.png").shape == (3, 2, 3)
    write_png(tmp_path / "b.png", torch.tensor([[True, False]]))
    assert read_mask(tmp_path / "b.png").tolist() == [[True, False]]


def test_bad_image_files(tmp_path):
    with pytest.raises(InputError, match="nope.png: image file not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "junk.png").write_bytes(b"garbage")
    with pytest.raises(InputError, match="junk.png: cannot decode image"):
        read_image(tmp_path / "junk.png")
    write_png(tmp_path / "t.png", torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(1)))
    (tmp_path / "t.png").write_bytes((tmp_path / "t.png").read_bytes()[:200])
    with pytest.raises(InputError, match="t.png: cannot decode image"):
        read_image(tmp_path / "t.png")
    write_png(tmp_path / "t16.png", torch.rand(3, 20, 20), bit_depth=16)
    (tmp_path / "t16.png").write_bytes((tmp_path / "t16.png").read_bytes()[:300])
    with pytest.raises(InputError, match="t16.png: cannot decode 16-bit PNG"):
        read_image(tmp_path / "t16.png")
    write_png(tmp_path / "a.png", torch.zeros(3, 4, 4))
    write_png(tmp_path / "b.png", torch.zeros(3, 4, 5))
    with pytest.raises(InputError, match="b.png: image is 5x4 but a.png is 4x4"):
        read_images([tmp_path / "a.png", tmp_path / "b.png"])
    with pytest.raises(InputError, match="empty: image folder not found"):
        list_images(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no image files"):
        list_images(tmp_path / "empty")
    with pytest.raises(InputError, match="bit_depth"):
        write_png(tmp_path / "x.png", torch.zeros(3, 2, 2), bit_depth=12)
    with pytest.raises(InputError, match="NaN"):
        write_png(tmp_path / "x.png", torch.full((3, 2, 2), float("nan")))


# ---------------------------------------------------------------------------------------------- COLMAP
def test_colmap_fern_model(shared_data):
    sparse = shared_data / "llff" / "fern" / "sparse" / "0"
    cams = colmap.read_cameras_bin(sparse / "cameras.bin")
    (cam,) = cams.values()
    assert (cam.model, cam.width, cam.height) == ("SIMPLE_RADIAL", 4032, 3024)
    np.testing.assert_allclose(cam.K, [[3260.5263328805895, 0, 2016], [0, 3260.5263328805895, 1512], [0, 0, 1]])
    assert cam.distortion.shape == (1,)
    pts = colmap.read_points3d_bin(sparse / "points3D.bin")
    assert len(pts) == 10091 and len(np.unique(pts.ids)) == 10091
    assert (pts.track_lengths >= 2).all() and pts.track_offsets[-1] == len(pts.track_image_ids)
    assert ((pts.track_image_ids >= 1) & (pts.track_image_ids <= 20)).all()  # fern has 20 images
    assert (pts.error >= 0).all() and np.isfinite(pts.xyz).all()


def test_colmap_roundtrip_and_bytes(tmp_path, shared_data):
    """Our writers reproduce COLMAP's files byte for byte; images.bin (absent from the shared data) round-trips."""
    sparse = shared_data / "llff" / "fern" / "sparse" / "0"
    pts = colmap.read_points3d_bin(sparse / "points3D.bin")
    colmap.write_points3d_bin(tmp_path / "points3D.bin", pts)
    assert (tmp_path / "points3D.bin").read_bytes() == (sparse / "points3D.bin").read_bytes()
    cams = colmap.read_cameras_bin(sparse / "cameras.bin")
    colmap.write_cameras_bin(tmp_path / "cameras.bin", list(cams.values()))
    assert (tmp_path / "cameras.bin").read_bytes() == (sparse / "cameras.bin").read_bytes()
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    images = []
    for k in range(3):
        R = Rotation.random(random_state=k).as_matrix()
        q = colmap.rotmat_to_qvec(R)
        np.testing.assert_allclose(colmap.qvec_to_rotmat(q), R, atol=1e-12)
        images.append(colmap.ColmapImage(k + 1, q, rng.normal(size=3), 1, f"img{k}.jpg", rng.random((k + 2, 2)) * 100,
                                         np.arange(k + 2) - 1))
    colmap.write_images_bin(tmp_path / "images.bin", images)
    back = colmap.read_images_bin(tmp_path / "images.bin")
    assert list(back) == [1, 2, 3]
    for a in images:
        b = back[a.id]
        assert b.name == a.name and b.camera_id == 1
        np.testing.assert_array_equal(b.xys, a.xys)
        np.testing.assert_array_equal(b.point3D_ids, a.point3D_ids)
        np.testing.assert_allclose(b.world_to_camera()[:3, :3], colmap.qvec_to_rotmat(a.qvec))
    # truncated files name themselves
    data = (tmp_path / "images.bin").read_bytes()
    (tmp_path / "images.bin").write_bytes(data[:-5])
    with pytest.raises(InputError, match="images.bin: truncated"):
        colmap.read_images_bin(tmp_path / "images.bin")
    data = (tmp_path / "points3D.bin").read_bytes()
    (tmp_path / "points3D.bin").write_bytes(data[:1000])
    with pytest.raises(InputError, match="points3D.bin: truncated"):
        colmap.read_points3d_bin(tmp_path / "points3D.bin")
    (tmp_path / "cameras.bin").write_bytes(struct.pack("<QiiQQ", 1, 1, 42, 10, 10))
    with pytest.raises(InputError, match="cameras.bin: camera 1: unknown camera model id 42"):
        colmap.read_cameras_bin(tmp_path / "cameras.bin")
    with pytest.raises(InputError, match="missing.bin: file not found"):
        colmap.read_cameras_bin(tmp_path / "missing.bin")
