import pytest

from feat2gs.config import load_config
from feat2gs.errors import InputError


def test_aliases_and_overrides():
    c = load_config(["scene=synthetic", "backbone=random-vit", "mode=a", "init=mvs", "train.steps=12",
                     "init.options.num_planes=8", "renderer=cpu"])
    assert c.scene.path == "synthetic" and c.backbone.name == "random-vit" and c.probe.mode == "A"
    assert c.init.name == "mvs" and c.train.steps == 12 and c.init.options.num_planes == 8
    assert c.render.backend == "cpu"


def test_demo_preset_loads():
    c = load_config([], preset="demo")
    assert c.scene.path == "synthetic"


@pytest.mark.parametrize("override,field", [
    ("mode=Q", "probe.mode"), ("train.stepz=3", "train.stepz"), ("train.steps=-2", "train.steps"),
    ("eval.lpips=squeeze", "eval.lpips"), ("nonsense", "nonsense"), ("split.n_train=0", "split.n_train"),
])
def test_bad_overrides_name_the_field(override, field):
    with pytest.raises(InputError) as e:
        load_config([override])
    assert field in str(e.value)
