"""The feature cache: hits, invalidation (image, layer, size, seed), per-view reuse across splits, one entry per
ordered view set for multi-view backbones, corrupt files, atomic writes, storage precision."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors import safe_open

from backbones.base import Backbone, FeatureMap
from feat2gs.feature_cache import (FeatureCache, FeatureCacheWarning, default_cache_dir, extract_features,
                                   image_digest)

from feature_testlib import CountingExtract, random_images, tiny_backbone


@pytest.fixture
def cache(tmp_path):
    return FeatureCache(tmp_path / "cache")


def entries(cache):
    return sorted(cache.root.rglob("*.safetensors"))


def test_second_extraction_is_served_from_the_cache(cache):
    imgs = random_images(3)
    bb = tiny_backbone("random-dinov2")
    counter = CountingExtract(bb)
    first, s1 = cache.extract(bb, imgs)
    assert counter.calls == [3] and (s1.hits, s1.misses) == (0, 3) and len(entries(cache)) == 3
    # a fresh backbone object (another run) with the same options reads the files, extracting nothing
    bb2 = tiny_backbone("random-dinov2")
    counter2 = CountingExtract(bb2)
    second, s2 = cache.extract(bb2, imgs)
    assert counter2.calls == [] and (s2.hits, s2.misses) == (3, 0)
    assert torch.equal(first.features, second.features)
    assert first.extent == second.extent and first.image_size == second.image_size == (48, 64)
    assert first.meta == second.meta
    # what was returned is the backbone's output rounded to float16 (the stored precision)
    raw = tiny_backbone("random-dinov2").extract(imgs).features
    assert torch.equal(first.features, raw.half().float())
    assert (first.features - raw).abs().max() <= raw.abs().max() * 2 ** -10


def test_changed_image_invalidates_only_that_view(cache):
    imgs = random_images(3)
    cache.extract(tiny_backbone("random-dinov2"), imgs)
    changed = imgs.clone()
    changed[1, 0, 5, 7] += 1e-3  # one channel of one pixel of view 1
    bb = tiny_backbone("random-dinov2")
    counter = CountingExtract(bb)
    fm, stats = cache.extract(bb, changed)
    assert counter.calls == [1] and (stats.hits, stats.misses) == (2, 1)
    ref = tiny_backbone("random-dinov2").extract(changed).features.half().float()
    torch.testing.assert_close(fm.features, ref, atol=2e-3, rtol=0)
    # a different working resolution is a different image
    bb = tiny_backbone("random-dinov2")
    counter = CountingExtract(bb)
    cache.extract(bb, torch.nn.functional.interpolate(imgs, size=(40, 56), mode="bilinear"))
    assert counter.calls == [3]


@pytest.mark.parametrize("change", [dict(layer=0), dict(layer=[-1, 0]), dict(input_size=28), dict(seed=1)])
def test_changed_options_invalidate(cache, change):
    imgs = random_images(2)
    cache.extract(tiny_backbone("random-dinov2"), imgs)
    bb = tiny_backbone("random-dinov2", **change)
    counter = CountingExtract(bb)
    fm, stats = cache.extract(bb, imgs)
    assert counter.calls == [2] and stats.misses == 2
    assert torch.equal(fm.features, counter._extract(imgs).features.half().float())


def test_views_are_reused_across_splits(cache):
    imgs = random_images(4)
    cache.extract(tiny_backbone("random-clip"), imgs[[0, 1]])
    bb = tiny_backbone("random-clip")
    counter = CountingExtract(bb)
    fm, stats = cache.extract(bb, imgs[[2, 1, 0]])
    assert counter.calls == [1] and (stats.hits, stats.misses) == (2, 1)
    full = tiny_backbone("random-clip").extract(imgs[[2, 1, 0]]).features.half().float()
    torch.testing.assert_close(fm.features, full, atol=2e-3, rtol=0)  # batched vs. per-view rounding


def test_multi_view_backbone_caches_the_ordered_set(cache):
    imgs = random_images(3)
    bb = tiny_backbone("random-vggt", input_size=56)
    assert bb.joint_views
    counter = CountingExtract(bb)
    a, s = cache.extract(bb, imgs)
    assert counter.calls == [3] and len(entries(cache)) == 1 and s.misses == 3
    _, s = cache.extract(bb, imgs)
    assert counter.calls == [3] and s.hits == 3
    # the decoder mixes views, so another order (or subset) gives other features and is another entry
    b, s = cache.extract(bb, imgs[[1, 0, 2]])
    assert counter.calls == [3, 3] and len(entries(cache)) == 2
    assert not torch.equal(b.features[1], a.features[0])
    cache.extract(bb, imgs[:2])
    assert counter.calls == [3, 3, 2]


def corrupt_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corrupt_flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # inside the tensor data: the header still parses
    path.write_bytes(bytes(data))


def corrupt_garbage(path):
    path.write_bytes(b"not a safetensors file")


@pytest.mark.parametrize("corrupt", [corrupt_truncate, corrupt_flip_last_byte, corrupt_garbage])
def test_corrupt_file_is_detected_and_recomputed(cache, corrupt):
    imgs = random_images(2)
    good, _ = cache.extract(tiny_backbone("random-mae"), imgs)
    victim = FeatureCache.entry_key(tiny_backbone("random-mae").cache_key(), [image_digest(imgs[0])])[0]
    (path,) = [p for p in entries(cache) if p.stem == victim]
    corrupt(path)
    bb = tiny_backbone("random-mae")
    counter = CountingExtract(bb)
    with pytest.warns(FeatureCacheWarning, match="recomputing"):
        fm, stats = cache.extract(bb, imgs)
    assert counter.calls == [1] and (stats.hits, stats.misses, stats.corrupt) == (1, 1, 1)
    torch.testing.assert_close(fm.features, good.features, atol=2e-3, rtol=0)
    with warnings.catch_warnings():  # rewritten: a clean hit now
        warnings.simplefilter("error")
        _, stats = cache.extract(bb, imgs)
    assert stats.hits == 2


def test_file_layout_and_atomic_write(cache):
    imgs = random_images(1)
    bb = tiny_backbone("random-dino")
    cache.extract(bb, imgs)
    (path,) = entries(cache)
    assert path.parent.parent.name == "random-dino" and path.parent.name == path.stem[:2]
    assert not list(cache.root.rglob("*.tmp"))  # the temporary file was renamed
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["feat2gs_feature_cache"])
        assert f.get_tensor("features").dtype == torch.float16
    assert json.loads(meta["key"])["backbone"] == json.loads(json.dumps(bb.cache_key()))
    assert meta["extent"] == [0.0, 0.0, 64.0, 48.0] and meta["image_size"] == [48, 64]


def test_unwritable_cache_warns_and_still_returns_features(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = FeatureCache(blocker / "cache")  # a folder below a file cannot be created
    with pytest.warns(FeatureCacheWarning, match="cannot write"):
        fm, stats = cache.extract(tiny_backbone("random-dino"), random_images(2))
    assert fm.features.shape[0] == 2 and stats.misses == 2


class HugeValues(Backbone):
    """Features beyond the float16 range (stored as float32, exactly)."""

    name = "huge"

    def extract(self, images):
        V, _, H, W = images.shape
        f = images[:, :2, ::8, ::8] * 1e6
        return FeatureMap(f, (H, W))

    def cache_key(self):
        return {"name": "huge"}


def test_values_beyond_float16_are_stored_in_float32(cache):
    imgs = random_images(2)
    fm, _ = cache.extract(HugeValues(), imgs)
    again, stats = cache.extract(HugeValues(), imgs)
    assert stats.hits == 2 and torch.equal(fm.features, imgs[:, :2, ::8, ::8] * 1e6)
    assert torch.equal(again.features, fm.features)


def test_uncached_path_rounds_identically_and_per_pixel_is_never_cached(cache):
    imgs = random_images(2)
    cached, _ = cache.extract(tiny_backbone("random-radio"), imgs)
    direct, stats = extract_features(tiny_backbone("random-radio"), imgs, None)
    assert stats is None and torch.equal(cached.features, direct.features)
    iuv, stats = extract_features(tiny_backbone("iuvrgb"), imgs, cache)
    assert stats is None and iuv.features.dtype == torch.float32
    assert not (cache.root / "iuvrgb").exists()


def test_default_folder_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FEAT2GS_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here" / "features"
    monkeypatch.delenv("FEAT2GS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "feat2gs" / "features"
