"""Shared fixtures of the backbone tests."""

from pathlib import Path

import pytest


@pytest.fixture
def fake_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache (HF_HUB_CACHE) for this test; returns ``install(spec, files)``, which
    writes ``files`` (relative name -> bytes or a callable(path) that writes the file) as the snapshot of
    ``spec.repo_id`` at ``spec.revision`` (or ``refs/main``) the way ``hf_hub_download`` lays it out, and
    returns the snapshot folder. Without ``install`` the cache is empty (weights missing)."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))

    def install(spec, files) -> Path:
        repo = cache / ("models--" + spec.repo_id.replace("/", "--"))
        commit = spec.revision or "0123456789abcdef0123456789abcdef01234567"
        snap = repo / "snapshots" / commit
        for name, content in files.items():
            path = snap / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if callable(content):
                content(path)
            else:
                path.write_bytes(content)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        return snap

    return install
