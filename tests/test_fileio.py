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


def test_two_writers_of_one_file_never_collide(tmp_path: Path) -> None:
    """Two threads (like a coordinator's two commands) rewriting one file both succeed.

    With one shared temporary name, one writer's rename took the other's temporary file
    away under it (FileNotFoundError) or renamed a half-written file into place.
    """
    import threading

    target = tmp_path / "status.json"
    errors: list[BaseException] = []

    def writer(byte: bytes) -> None:
        try:
            for _ in range(300):
                write_atomic(target, byte * 4096)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in (b"a", b"b")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert target.read_bytes() in (b"a" * 4096, b"b" * 4096)
    assert not list(tmp_path.glob(".*.tmp"))
