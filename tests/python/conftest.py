"""Fixtures for the llmkit Python tests.

The package under test is whatever `import llmkit` finds: ctest puts the build
tree first (PYTHONPATH=<build>/python); an installed wheel works too.
"""

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared test data folder (LLMKIT_DATA_DIR). Missing data fails under CI, else skips."""
    raw = os.environ.get("LLMKIT_DATA_DIR", "")
    path = Path(raw) if raw else None
    if path is None or not (path / "MANIFEST.md").is_file():
        why = (f"LLMKIT_DATA_DIR={raw!r} does not hold the test data (no MANIFEST.md)" if raw
               else "LLMKIT_DATA_DIR is not set")
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so the data is required")
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)
