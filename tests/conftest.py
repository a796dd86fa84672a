"""Shared fixtures: where the real vertically split data sets live."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests needing it fail loudly when it is absent."""
    if not (SHARED_DATA / "breast_hetero_guest.csv").exists():
        pytest.fail(f"the shared data sets are missing: expected them in {SHARED_DATA}")
    return SHARED_DATA
