"""Shared test fixtures. The full FER-2013 copy is optional: tests that need it skip without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _find_dataset() -> Path | None:
    env = os.environ.get("FER2013_NPZ")
    if env:
        return Path(env) if Path(env).is_file() else None
    candidate = ROOT.parent / "shared" / "data" / "fer2013.npz"
    return candidate if candidate.is_file() else None


@pytest.fixture(scope="session")
def fer2013_npz() -> Path:
    """Path of the full dataset (FER2013_NPZ, or ../shared/data/fer2013.npz); skips when absent."""
    path = _find_dataset()
    if path is None:
        pytest.skip("full FER-2013 npz not present (set FER2013_NPZ to run this test)")
    return path


@pytest.fixture(scope="session")
def sample_faces() -> tuple:
    """70 real PrivateTest faces (10 per class) committed under tests/fixtures."""
    import numpy as np

    with np.load(FIXTURES / "fer2013_sample.npz") as d:
        return d["images"], d["labels"]
