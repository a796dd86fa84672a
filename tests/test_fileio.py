"""Atomic writes leave the whole new file with exactly the requested mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lianmo.fileio import write_atomic


def test_write_atomic_replaces_the_file_and_sets_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "seed"
    target.write_bytes(b"old")
    old_umask = os.umask(0)
    try:
        write_atomic(target, b"new secret", mode=0o600)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"new secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["seed"]
