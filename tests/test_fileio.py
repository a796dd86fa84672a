"""Atomic writes leave the whole new file with exactly the requested mode."""

from __future__ import annotations

import os
import stat
import typing as t
from pathlib import Path

import pytest

from lianmo.fileio import write_atomic, write_atomic_chunks


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


def test_write_atomic_chunks_writes_them_in_order_and_a_failure_keeps_the_old_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "scores.csv"
    write_atomic_chunks(target, (f"{k}\n".encode() for k in range(3)))
    assert target.read_bytes() == b"0\n1\n2\n"

    def failing() -> t.Iterator[bytes]:
        yield b"half of a new file\n"
        raise RuntimeError("the scoring failed")

    with pytest.raises(RuntimeError, match="scoring failed"):
        write_atomic_chunks(target, failing())
    assert target.read_bytes() == b"0\n1\n2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]
