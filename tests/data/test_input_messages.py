"""Bad input files that used to give misleading messages: each now names the file and the problem."""

import numpy as np
import pytest
import torch

from feat2gs.data import load_scene, make_synthetic_scene
from feat2gs.errors import InputError

from data_testlib import write_idr


class Opaque:
    """An arbitrary pickled object in a checkpoint."""


@pytest.fixture(scope="module")
def toy():
    return make_synthetic_scene(seed=1, num_views=4, width=32, height=24, supersample=1)


def test_idr_without_scale_mats_is_an_error(tmp_path, toy):
    root = write_idr(tmp_path / "idr", toy)
    cams = dict(np.load(root / "cameras_sphere.npz"))
    np.savez(root / "cameras_sphere.npz", **{k: v for k, v in cams.items() if not k.startswith("scale_mat")})
    with pytest.raises(InputError, match=r"cameras_sphere.npz:scale_mat_0: missing .*bounding sphere"):
        load_scene(root)


def test_dangling_image_symlink_is_named(tmp_path, toy):
    root = write_idr(tmp_path / "idr", toy)
    (root / "image" / "000009.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(InputError, match=r"000009.png: broken symbolic link"):
        load_scene(root)


def test_checkpoint_with_pickled_objects_gives_no_unsafe_advice(tmp_path):
    from backbones.checkpoint import torch_load

    path = tmp_path / "ck.pth"
    torch.save({"x": Opaque()}, path)  # a pickled class that weights_only refuses
    with pytest.raises(InputError) as e:
        torch_load(path)
    assert str(path) in str(e.value) and "weights_only" not in str(e.value)
    assert "pickled objects" in str(e.value)
