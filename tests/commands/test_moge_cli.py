"""``feat2gs moge IMAGE_OR_FOLDER --out DIR`` with tiny random MoGe checkpoints: every output file is checked
against MoGe's ``infer`` run independently on the same image; bad inputs give clear errors."""

import json
import logging
import math

import numpy as np
import pytest
import torch
from plyfile import PlyData

from backbones.moge.load import build_model, calibrate_mask, load_checkpoint, save_checkpoint, tiny_config
from feat2gs.cli import build_parser, main
from feat2gs.commands.moge import run_moge
from feat2gs.io.colormap import colorize_depth, colormap, oklab_to_srgb
from feat2gs.io.depth_png import decode_depth_png, encode_depth_png
from feat2gs.io.images import read_image, read_image_array, write_image, write_png


def _tiny_checkpoint(path, version, mask_fraction=0.6):
    """A tiny random model whose mask keeps about ``mask_fraction`` of the pixels, saved as a model.pt."""
    torch.manual_seed(0)
    cfg = tiny_config(version)
    model = build_model(cfg).eval()
    calibrate_mask(model, torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(1)), mask_fraction)
    save_checkpoint(model, cfg, path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _tiny_checkpoint(tmp_path_factory.mktemp("moge") / "model.pt", "v2")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A folder with two images of different sizes, a text file and a corrupt PNG."""
    d = tmp_path_factory.mktemp("imgs")
    g = torch.Generator().manual_seed(2)
    write_png(d / "a.png", torch.rand(3, 40, 56, generator=g))
    write_image(d / "b.jpg", torch.rand(3, 30, 30, generator=g))
    (d / "notes.txt").write_text("not an image")
    (d / "broken.png").write_bytes(b"\x89PNG but not really")
    return d


def _srgb_luminance(rgb):
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722])


def test_colormap_is_perceptually_ordered():
    t = np.linspace(0, 1, 256)
    rgb = colormap(t)
    assert rgb.shape == (256, 3) and (rgb >= 0).all() and (rgb <= 1).all()
    lum = _srgb_luminance(rgb)
    assert (np.diff(lum) > 0).all() and lum[0] < 0.05 and lum[-1] > 0.7
    # Oklab white and black are sRGB white and black (the conversion constants)
    np.testing.assert_allclose(oklab_to_srgb(np.array([[1.0, 0, 0], [0.0, 0, 0]])), [[1, 1, 1], [0, 0, 0]],
                               atol=2e-4)
    depth = np.array([[1.0, 2.0], [4.0, 0.0]])
    vis = colorize_depth(depth, depth > 0)
    assert (vis[1, 1] == 0).all()
    assert _srgb_luminance(vis[0, 0]) > _srgb_luminance(vis[0, 1]) > _srgb_luminance(vis[1, 0])  # near bright


def test_depth_png_encoding_round_trip():
    g = np.random.default_rng(0)
    depth = g.uniform(0.5, 80.0, (20, 30))
    valid = g.random((20, 30)) < 0.7
    q, enc = encode_depth_png(depth, valid)
    assert q.dtype == np.uint16 and (q[~valid] == 0).all() and q[valid].min() == 1 and q[valid].max() == 65535
    back, ok = decode_depth_png(q, enc.as_dict("metres"))
    assert (ok == valid).all()
    step = (depth[valid].max() - depth[valid].min()) / 65534
    assert np.abs(back[valid] - depth[valid]).max() <= 0.5 * step + 1e-12
    q, enc = encode_depth_png(np.full((3, 3), 2.5), np.ones((3, 3), bool))  # constant depth
    assert decode_depth_png(q, enc.as_dict("m"))[0].tolist() == [[2.5] * 3] * 3
    q, enc = encode_depth_png(depth, np.zeros_like(valid))
    assert (q == 0).all() and enc.min is None


def test_folder_outputs_match_infer(tmp_path, ckpt, images, caplog, capsys):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="feat2gs.moge"):
        assert main(["moge", str(images), "--out", str(out), "--weights", str(ckpt), "--device", "cpu"]) == 0
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "notes.txt" in warned and "broken.png" in warned
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    assert "wrote 2 result folder(s)" in capsys.readouterr().out

    model = load_checkpoint(ckpt)
    for name, src in (("a", images / "a.png"), ("b", images / "b.jpg")):
        d = out / name
        assert sorted(p.name for p in d.iterdir()) == ["camera.json", "depth.png", "depth_vis.png", "mask.png",
                                                       "normal.png", "points.ply"]
        image = read_image(src)
        ref = model.infer(image, apply_mask=False)
        valid = (ref.mask & torch.isfinite(ref.depth) & (ref.depth > 0)).numpy()
        assert 0.2 < valid.mean() < 0.95
        cam = json.loads((d / "camera.json").read_text())
        H, W = image.shape[1:]
        assert (cam["width"], cam["height"]) == (W, H) and cam["version"] == "v2"
        assert cam["depth_units"] == "metres" and cam["metric_scale"] == pytest.approx(float(ref.metric_scale))
        K = np.array(cam["intrinsics_pixel"])
        np.testing.assert_allclose(K, ref.pixel_intrinsics().numpy(), rtol=1e-5)
        np.testing.assert_allclose(K[:2, 2], [W / 2, H / 2])
        assert cam["fov_x_deg"] == pytest.approx(math.degrees(2 * math.atan(W / 2 / K[0, 0])), rel=1e-5)
        assert cam["fov_y_deg"] == pytest.approx(math.degrees(2 * math.atan(H / 2 / K[1, 1])), rel=1e-5)
        np.testing.assert_allclose(np.array(cam["intrinsics_normalized"]) * [[W], [H], [1]], K, rtol=1e-5)
        # depth.png: 16 bit, invalid = 0, decodes to the depth within half a quantisation step
        q = np.round(read_image_array(d / "depth.png")[..., 0] * 65535).astype(np.uint16)
        depth, ok = decode_depth_png(q, cam["depth_png"])
        assert (ok == valid).all()
        ref_d = ref.depth.numpy()[valid]
        step = (ref_d.max() - ref_d.min()) / 65534
        assert np.abs(depth[valid] - ref_d).max() <= 0.5 * step * (1 + 1e-3) + 1e-6
        mask = read_image_array(d / "mask.png")[..., 0] > 0.5
        assert (mask == valid).all()
        # normals as (n_x, -n_y, -n_z) / 2 + 1/2, 8-bit
        nrm = read_image_array(d / "normal.png")[..., :3]
        want = ref.normal.numpy() * [0.5, -0.5, -0.5] + 0.5
        assert np.abs(nrm[valid] - want[valid]).max() <= 0.5 / 255 + 1e-6 and (nrm[~valid] == 0).all()
        vis = read_image_array(d / "depth_vis.png")[..., :3]
        assert (vis[~valid] == 0).all() and vis[valid].max() > 0
        # points.ply: the valid pixels' camera-frame points (OpenCV axes) with the pixel colours
        v = PlyData.read(str(d / "points.ply"))["vertex"]
        assert v.count == valid.sum() == cam["num_points"]
        xyz = np.stack([v["x"], v["y"], v["z"]], -1)
        np.testing.assert_allclose(xyz, ref.points.numpy()[valid], rtol=1e-5, atol=1e-6)
        assert (xyz[:, 2] > 0).all()
        rgb = np.stack([v["red"], v["green"], v["blue"]], -1)
        np.testing.assert_array_equal(rgb, np.round(image.permute(1, 2, 0).numpy()[valid] * 255).astype(np.uint8))


def test_known_fov_resolution_and_single_file(tmp_path, ckpt, images, capsys):
    out = tmp_path / "out"
    run_moge(str(images / "a.png"), str(out), weights=str(ckpt), fov_x=60.0, resolution_level=0, device="cpu",
             progress=True)
    assert [p.name for p in out.iterdir()] == ["a"]
    cam = json.loads((out / "a" / "camera.json").read_text())
    assert cam["fov_x_deg"] == pytest.approx(60.0, abs=1e-4)
    ref = load_checkpoint(ckpt).infer(read_image(images / "a.png"), resolution_level=0, fov_x=60.0,
                                      apply_mask=False)
    np.testing.assert_allclose(cam["intrinsics_pixel"], ref.pixel_intrinsics().numpy(), rtol=1e-5)
    assert "moge: 100%" in capsys.readouterr().err  # the progress bar (forced on)


def test_v1_checkpoint_and_name_collisions(tmp_path, images):
    ckpt = _tiny_checkpoint(tmp_path / "v1.pt", "v1")
    src = tmp_path / "src"
    src.mkdir()
    img = read_image(images / "a.png")
    write_png(src / "x.png", img)
    write_image(src / "x.jpg", img)
    out = tmp_path / "out"
    run_moge(str(src), str(out), variant="v1-vitl", weights=str(ckpt), device="cpu")
    assert sorted(p.name for p in out.iterdir()) == ["x_jpg", "x_png"]
    cam = json.loads((out / "x_png" / "camera.json").read_text())
    assert cam["version"] == "v1" and cam["metric_scale"] is None and cam["depth_units"].startswith("relative")
    assert not (out / "x_png" / "normal.png").exists()


def test_bad_inputs_give_clear_errors(tmp_path, ckpt, images, capsys):
    def fails(*argv):
        assert main(["moge", *map(str, argv), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
        return capsys.readouterr().err

    assert "notes.txt: not an image file" in fails(images / "notes.txt", "--weights", ckpt)
    assert "broken.png: cannot decode image" in fails(images / "broken.png", "--weights", ckpt)
    assert "no such image file or folder" in fails(tmp_path / "missing.png", "--weights", ckpt)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    assert "no image files" in fails(empty, "--weights", ckpt)
    # checkpoints: a non-checkpoint file, a missing file, config / weights mismatch, wrong version
    assert "a.png: not a readable PyTorch checkpoint" in fails(images / "a.png", "--weights", images / "a.png")
    assert "--weights" in fails(images / "a.png", "--weights", tmp_path / "none.pt")
    bad = tmp_path / "mismatch.pt"
    torch.save({"model_config": tiny_config("v2", dim=32), "model": load_checkpoint(ckpt).state_dict()}, bad)
    err = fails(images / "a.png", "--weights", bad)
    assert "mismatch.pt: weights do not match" in err and "shape mismatch" in err
    assert "expected a MoGe v1 config" in fails(images / "a.png", "--weights", ckpt, "--variant", "v1-vitl")
    assert "--variant: unknown MoGe variant 'v3'" in fails(images / "a.png", "--weights", ckpt, "--variant", "v3")
    assert "--resolution-level" in fails(images / "a.png", "--weights", ckpt, "--resolution-level", "12")
    assert "--fov-x" in fails(images / "a.png", "--weights", ckpt, "--fov-x", "200")
    with pytest.raises(SystemExit):  # argparse: --out is required
        build_parser().parse_args(["moge", str(images)])


def test_missing_weights_name_the_weights_flag(tmp_path, fake_hf_cache):
    from feat2gs.errors import WeightsNotFoundError
    from feat2gs.io.images import write_image

    write_image(tmp_path / "a.png", torch.rand(3, 16, 16))
    with pytest.raises(WeightsNotFoundError) as e:
        run_moge(str(tmp_path / "a.png"), str(tmp_path / "out"), device="cpu")
    assert "--weights PATH" in str(e.value) and "backbone.weights" not in str(e.value)
