import pytest
import torch

from feat2gs.errors import InputError, UnknownNameError
from feat2gs.init import INITIALISERS, DatasetInit, MVSInit, build_initialiser
from feat2gs.scene import Cameras, Scene
from init_scenes import look_at

W, H = 40, 30
NORMAL = torch.tensor([0.2, -0.1, 1.0], dtype=torch.float64)
NORMAL = NORMAL / NORMAL.norm()
OFFSET = 4.0  # plane n . X = OFFSET


def plane_scene(with_depth=True, masks=None) -> tuple[Scene, torch.Tensor]:
    """Two cameras looking at a plane; depth and the hit points computed analytically in float64."""
    K = torch.tensor([[35.0, 0, W / 2], [0, 33.0, H / 2], [0, 0, 1]])
    cams = Cameras(K.expand(2, 3, 3).clone(), torch.stack([look_at((-0.5, 0.1, 0.0), (0, 0, 4)),
                                                           look_at((0.6, -0.2, 0.3), (0.1, 0, 4))]), W, H)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64) + 0.5, torch.arange(W, dtype=torch.float64) + 0.5,
                            indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1)
    depths, points = [], []
    for v in range(2):
        c2w = torch.linalg.inv(cams.viewmats[v].double())
        dirs = pix @ torch.linalg.inv(cams.K[v].double()).T @ c2w[:3, :3].T  # camera z = 1
        origin = c2w[:3, 3]
        t = (OFFSET - origin @ NORMAL) / (dirs @ NORMAL)  # = z-depth
        depths.append(t)
        points.append(origin + dirs * t[..., None])
    depth = torch.stack(depths).float()
    scene = Scene(name="plane", images=torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(0)),
                  cameras=cams, image_names=["a", "b"], depths=depth if with_depth else None, masks=masks)
    return scene, torch.stack(points)


def test_registered_and_built_by_name():
    assert {"dataset", "mvs"} <= set(INITIALISERS.names())
    assert isinstance(build_initialiser("dataset", noise_std=0.1), DatasetInit)
    assert isinstance(build_initialiser("mvs", num_planes=16), MVSInit)
    with pytest.raises(InputError, match="init.options.*accepted options: noise_std"):
        build_initialiser("dataset", noise=0.1)
    with pytest.raises(UnknownNameError, match="unknown initialiser 'nope'"):
        build_initialiser("nope")


def test_exact_points_on_analytic_plane():
    scene, expected = plane_scene()
    init = DatasetInit()(scene)
    assert init.method == "dataset" and bool(init.valid.all())
    assert torch.allclose(init.points.double(), expected, atol=1e-4)
    assert torch.allclose(init.points.double() @ NORMAL, torch.full((2, H, W), OFFSET, dtype=torch.float64), atol=1e-4)
    # Each point projects back onto its own pixel centre, at its depth.
    uv, z = scene.cameras.project(init.points.reshape(2, -1, 3)[0])
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    assert torch.allclose(uv[0], torch.stack([xs, ys], -1).reshape(-1, 2), atol=1e-3)
    assert torch.allclose(z[0], scene.depths[0].reshape(-1), rtol=1e-5)
    assert torch.equal(init.colors, scene.images.permute(0, 2, 3, 1))
    assert torch.equal(init.depth, scene.depths)
    assert init.cameras is scene.cameras


def test_masks_zero_depth_and_erosion():
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[:, 5:25, 10:30] = True
    scene, _ = plane_scene(masks=masks)
    scene.depths[0, 10, 15] = 0  # unknown depth
    init = DatasetInit(fill=False)(scene)  # only the GT pixels
    expected = masks.clone()
    expected[0, 10, 15] = False
    assert torch.equal(init.valid, expected)
    assert (init.depth[~expected] == 0).all()
    eroded = DatasetInit(mask_erosion=2, fill=False)(scene)
    inner = torch.zeros_like(masks)
    inner[:, 7:23, 12:28] = True
    assert torch.equal(eroded.valid, inner & expected)
    assert torch.equal(DatasetInit(use_masks=False, fill=False)(scene).valid, scene.depths > 0)
    # dense (the default): every pixel has a point; the GT pixels keep their depth and have confidence 1,
    # the others an interpolated depth and confidence 0
    dense = DatasetInit()(scene)
    assert dense.valid.all()
    assert torch.equal(dense.confidence > 0, expected)
    assert torch.equal(dense.depth[expected], init.depth[expected])
    assert (dense.depth > 0).all()


def test_noise_std_and_seed_determinism():
    scene, _ = plane_scene()
    clean = DatasetInit()(scene)
    std = 0.05
    a = DatasetInit(noise_std=std, seed=3)(scene)
    b = DatasetInit(noise_std=std, seed=3)(scene)
    c = DatasetInit(noise_std=std, seed=4)(scene)
    assert torch.equal(a.points, b.points)
    assert not torch.allclose(a.points, c.points)
    diff = (a.points - clean.points)[a.valid]  # 2400 x 3 samples
    assert diff.std().item() == pytest.approx(std, rel=0.05)
    assert diff.mean(0).abs().max().item() < 4 * std / diff.shape[0] ** 0.5
    # The depth maps follow the noisy points.
    R, t = scene.cameras.viewmats[0, :3, :3], scene.cameras.viewmats[0, :3, 3]
    assert torch.allclose(a.depth[0], (a.points[0] @ R.T + t)[..., 2], atol=1e-5)
    assert a.meta["noise_std"] == std and a.meta["seed"] == 3


def test_errors_without_depth_or_with_bad_options():
    scene, _ = plane_scene(with_depth=False)
    with pytest.raises(InputError, match="init=dataset") as err:
        DatasetInit()(scene)
    assert "init=mvs" in str(err.value)
    with pytest.raises(InputError, match="noise_std"):
        DatasetInit(noise_std=-1)
