"""Compute backends: where the crypto layer's chunked kernels run.

A kernel is a module-level function applied to independent chunks of work (a slice of
plaintexts to encrypt, a group of matrix columns, a slice of rows to histogram).
:meth:`ComputeBackend.map` runs it over all chunks and returns the results in order, so
a kernel's output never depends on the backend or the number of workers: callers draw
all randomness before splitting. Two backends ship here:

* :class:`SerialBackend` runs chunks one after another in the calling process;
* :class:`ProcessPoolBackend` (the default for party nodes) runs them on a pool of
  worker processes, one per core. Workers are started with ``spawn`` (never ``fork``:
  a party node has gRPC threads that a forked child must not inherit) and live as long
  as the backend, so per-key tables they cache are built once per worker.

:class:`~lianmo.compute.ray_backend.RayBackend` runs the same chunks as tasks on a Ray
cluster; chunks and kernels are plain picklable values and functions, so nothing above
this layer changes. Decryption and CRT-encryption chunks carry the private key's factors:
a backend that ships chunks to other machines ships the key with them.
"""

from __future__ import annotations

import abc
import multiprocessing
import os
import threading
import typing as t
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from lianmo.errors import ConfigError, LianmoError

T = t.TypeVar("T")
R = t.TypeVar("R")


class ComputeBackend(abc.ABC):
    """Runs a kernel over chunks of work and returns the results in order."""

    #: How many chunks can run at once; kernels split work into about this many parts.
    workers: int = 1

    @abc.abstractmethod
    def map(self, kernel: t.Callable[[T], R], chunks: t.Sequence[T]) -> list[R]:
        """Return ``[kernel(chunk) for chunk in chunks]``, possibly computed in parallel.

        Parameters
        ----------
        kernel : callable
            A module-level (picklable) function of one argument.
        chunks : sequence
            Picklable arguments, one per call.

        Returns
        -------
        list
            One result per chunk, in the order of ``chunks``.
        """

    def map_concat(self, kernel: t.Callable[[T], t.Sequence[R]], chunks: t.Sequence[T]) -> list[R]:
        """Return the concatenation of ``kernel(chunk)`` over ``chunks`` (see :meth:`map`)."""
        return [item for part in self.map(kernel, chunks) for item in part]

    def close(self) -> None:  # noqa: B027 - optional hook; the serial backend holds nothing
        """Release workers; the backend must not be used afterwards."""

    def __enter__(self) -> ComputeBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialBackend(ComputeBackend):
    """Runs every chunk in the calling process, one after another."""

    workers = 1

    def map(self, kernel: t.Callable[[T], R], chunks: t.Sequence[T]) -> list[R]:
        return [kernel(chunk) for chunk in chunks]

    def __repr__(self) -> str:
        return "SerialBackend()"


class ProcessPoolBackend(ComputeBackend):
    """Runs chunks on a pool of ``workers`` spawned processes (default: all cores).

    The pool starts on first use. A single chunk runs in the calling process, which
    saves the round trip for small inputs.

    Parameters
    ----------
    workers : int, optional
        Number of worker processes; defaults to the number of usable cores.
    """

    def __init__(self, workers: int | None = None) -> None:
        count = usable_cores() if workers is None else workers
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"compute workers must be a positive int, got {workers!r}")
        self.workers = count
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"ProcessPoolBackend(workers={self.workers})"

    def _executor(self) -> ProcessPoolExecutor | None:
        """Return the pool (started on first use with more than one worker)."""
        with self._lock:
            if self._closed:
                raise LianmoError("compute backend used after close(); this is a bug")
            if self._pool is None and self.workers > 1:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
            return self._pool

    def map(self, kernel: t.Callable[[T], R], chunks: t.Sequence[T]) -> list[R]:
        executor = self._executor()  # raises once closed, whatever the input
        if len(chunks) <= 1 or self.workers == 1:
            return [kernel(chunk) for chunk in chunks]
        try:
            assert executor is not None
            return list(executor.map(kernel, chunks))
        except BrokenProcessPool as exc:
            raise LianmoError(
                "a compute worker process died (out of memory or killed); the job cannot "
                "continue on this node. Check the node's memory and restart it"
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def usable_cores() -> int:
    """Return the number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def chunk_bounds(total: int, parts: int, min_size: int = 1) -> list[tuple[int, int]]:
    """Split ``range(total)`` into at most ``parts`` contiguous, near-equal ``(start, stop)``.

    Parameters
    ----------
    total : int
        Number of items.
    parts : int
        Largest number of chunks wanted.
    min_size : int, optional
        Smallest chunk worth its overhead; fewer chunks are made rather than smaller ones.

    Returns
    -------
    list of tuple of (int, int)
        Chunk bounds in order; empty for ``total == 0``.
    """
    if total <= 0:
        return []
    count = max(1, min(parts, total // max(1, min_size)))
    base, extra = divmod(total, count)
    bounds = []
    start = 0
    for index in range(count):
        stop = start + base + (1 if index < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def make_backend(
    kind: str = "local", workers: int | None = None, address: str | None = None
) -> ComputeBackend:
    """Return the backend a party config names.

    Parameters
    ----------
    kind : str, optional
        ``"local"`` (a process pool on this machine), ``"serial"`` (no worker
        processes; for debugging and small machines) or ``"ray"`` (tasks on a Ray
        cluster, see :mod:`lianmo.compute.ray_backend`).
    workers : int, optional
        Worker processes for ``"local"``; all usable cores by default.
    address : str, optional
        The Ray cluster for ``"ray"``: ``"ray://HEAD:10001"``, ``"auto"`` or ``"local"``.

    Returns
    -------
    ComputeBackend
        A backend the caller must close.
    """
    if kind == "local":
        return ProcessPoolBackend(workers)
    if kind == "serial":
        return SerialBackend()
    if kind == "ray":
        from lianmo.compute.ray_backend import RayBackend

        return RayBackend(address or "local")
    raise ConfigError(
        f"unknown compute backend {kind!r}; use 'local' (process pool), 'serial' or 'ray'"
    )
