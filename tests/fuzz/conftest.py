"""Fixtures of the fuzz tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per module for the config files the tests write (module-scoped, so
    hypothesis examples may share it)."""
    return tmp_path_factory.mktemp("fuzz-files")
