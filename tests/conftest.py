"""Shared fixtures: where the shared data lives, and the embedded model (loaded once per session)."""

from __future__ import annotations

import os
from pathlib import Path

# OpenMP's spin-waiting makes torch 3-5x slower on a loaded 2-core machine; set before any test imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CAPCAL_DATA_DIR", ROOT.parent / "shared" / "data"))
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The local mirror of the seven benchmarks (``../shared/data``)."""
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set CAPCAL_DATA_DIR")
    return SHARED_DATA


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
