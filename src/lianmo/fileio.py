"""Atomic file writes: readers see the whole new file or the old one, never a part."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write via a temporary file beside ``path``, fsync, then rename over it.

    The file is created with ``mode`` from the start, so a secret is never readable by
    others, not even briefly. A crash leaves at most a hidden ``.NAME.PID.THREAD.tmp``
    behind. The temporary name is unique per process and thread, so two writers of the
    same file (a coordinator's two commands, two threads) never write into each other's.
    """
    write_atomic_chunks(path, [data], mode=mode)


def write_atomic_chunks(path: Path, chunks: Iterable[bytes], *, mode: int = 0o644) -> None:
    """:func:`write_atomic` of the concatenated ``chunks``, holding one chunk at a time.

    If producing a chunk raises, the temporary file is removed and ``path`` is left as
    it was: nothing half-written is left looking complete.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(tmp, mode)  # O_CREAT's mode is masked by the umask; make it exact
    os.replace(tmp, path)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power cut, not only a killed process."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
