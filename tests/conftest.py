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


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device (gsplat parity); none present")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)
