"""Compute backends: where the crypto layer's chunked kernels run.

A kernel is a module-level function applied to independent chunks of work (a slice of
plaintexts to encrypt, a group of matrix columns, a slice of rows to histogram).
:meth:`ComputeBackend.map` runs it over all chunks and returns the results in order, so
a kernel's output never depends on the backend or the number of workers: callers draw
all randomness before splitting. Two backends ship here:

* :class:`SerialBackend` runs chunks one after another in the calling process;
* :class:`ProcessPoolBackend` (the default for party nodes) runs them on a pool of
  worker processes, one per core the process may use (its CPU affinity, capped by a
  container's CPU quota: see :func:`usable_cores`). Workers are started with ``spawn``
  (never ``fork``: a party node has gRPC threads that a forked child must not inherit)
  and live as long as the backend, so per-key tables they cache are built once per
  worker.

:class:`~lianmo.compute.ray_backend.RayBackend` runs the same chunks as tasks on a Ray
cluster; chunks and kernels are plain picklable values and functions, so nothing above
this layer changes. Decryption and CRT-encryption chunks carry the private key's factors:
a backend that ships chunks to other machines ships the key with them.
"""

from __future__ import annotations

import abc
import logging
import multiprocessing
import os
import threading
import typing as t
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from lianmo.errors import ConfigError, LianmoError

T = t.TypeVar("T")
R = t.TypeVar("R")

_LOGGER = logging.getLogger(__name__)

#: Where Linux mounts control groups; inside a container this is the container's own group.
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: cgroup v1 folders that may hold the CFS quota (the controllers are often co-mounted).
_CGROUP_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


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
    """Runs chunks on a pool of ``workers`` spawned processes (default: all usable cores).

    The pool starts on first use. A single chunk runs in the calling process, which
    saves the round trip for small inputs.

    Parameters
    ----------
    workers : int, optional
        Number of worker processes; defaults to :func:`usable_cores`: the cores this
        process may run on, capped by the container's CPU quota.
    cgroup_root : path, optional
        Where to read the CPU quota when ``workers`` is not given (tests point it at a
        folder of fake cgroup files).
    """

    def __init__(
        self, workers: int | None = None, *, cgroup_root: str | os.PathLike[str] = CGROUP_ROOT
    ) -> None:
        count = usable_cores(cgroup_root) if workers is None else workers
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


def usable_cores(cgroup_root: str | os.PathLike[str] = CGROUP_ROOT) -> int:
    """Return how many cores this process may use: its CPU affinity, capped by its CPU quota.

    Affinity alone overcounts in a container: a Kubernetes pod limited to 2 CPUs on a
    64-core node may run on all 64 cores, but only for 2 cores' worth of time, and 64
    workers of about 100 MiB each would only compete for that time.

    Parameters
    ----------
    cgroup_root : path, optional
        The cgroup mount (``/sys/fs/cgroup``); see :func:`cpu_quota_cores`.

    Returns
    -------
    int
        ``min(affinity count, cpu_quota_cores())``, at least 1.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota_cores(cgroup_root)
    return max(1, cores if quota is None else min(cores, quota))


def cpu_quota_cores(cgroup_root: str | os.PathLike[str] = CGROUP_ROOT) -> int | None:
    """Return the CPU quota of this process's cgroup in whole cores, rounded up.

    Reads cgroup v2's ``cpu.max`` (``"200000 100000"``: quota and period in
    microseconds, or ``"max 100000"`` for no limit) and, when it is absent, cgroup v1's
    ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` (quota ``-1`` for no limit). A
    fractional quota rounds up (1.5 CPUs gives 2 workers), so a limit never leaves a
    part of a core unused.

    Parameters
    ----------
    cgroup_root : path, optional
        The cgroup mount; inside a container it shows the container's own group.

    Returns
    -------
    int or None
        The quota in cores, at least 1; None when there is no limit or the files are
        missing or unreadable (the caller then uses the affinity count).
    """
    root = Path(cgroup_root)
    v2 = _read_cgroup_file(root / "cpu.max")
    if v2 is not None:
        fields = v2.split()
        if fields[:1] == ["max"]:
            return None
        if len(fields) != 2:
            _log_bad_quota(v2, root / "cpu.max")
            return None
        return _quota_cores(root / "cpu.max", fields[0], fields[1])
    for folder in _CGROUP_V1_CPU_DIRS:
        quota = _read_cgroup_file(root / folder / "cpu.cfs_quota_us")
        period = _read_cgroup_file(root / folder / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _quota_cores(root / folder, quota, period)
    return None


def _read_cgroup_file(path: Path) -> str | None:
    """Return the stripped text of a cgroup file, or None when it cannot be read."""
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _quota_cores(where: Path, quota: str, period: str) -> int | None:
    """Return ``ceil(quota / period)``; None for an unlimited (-1) or garbled quota."""
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        quota_us = period_us = 0
    if quota_us == -1:  # cgroup v1: no limit
        return None
    if quota_us <= 0 or period_us <= 0:
        _log_bad_quota(f"{quota} {period}", where)
        return None
    return max(1, -(-quota_us // period_us))


def _log_bad_quota(text: str, where: Path) -> None:
    """Log an unreadable CPU quota; the pool then sizes itself from the CPU affinity."""
    _LOGGER.warning(
        "ignoring the CPU quota in %s (%r is not 'QUOTA PERIOD' in microseconds); sizing "
        "the compute pool from the CPU affinity. Set [compute] workers to override",
        where,
        text,
    )


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
    kind: str = "local",
    workers: int | None = None,
    address: str | None = None,
    *,
    ray_tls: tuple[Path, Path, Path] | None = None,
) -> ComputeBackend:
    """Return the backend a party config names.

    Parameters
    ----------
    kind : str, optional
        ``"local"`` (a process pool on this machine), ``"serial"`` (no worker
        processes; for debugging and small machines) or ``"ray"`` (tasks on a Ray
        cluster, see :mod:`lianmo.compute.ray_backend`).
    workers : int, optional
        Worker processes for ``"local"``; by default all usable cores, capped by the
        container's CPU quota (:func:`usable_cores`).
    address : str, optional
        The Ray cluster for ``"ray"``: ``"ray://HEAD:10001"``, ``"auto"`` or ``"local"``.
    ray_tls : tuple of Path, optional
        ``(cert, key, ca)`` for Ray's TLS; an address other than ``"local"`` or
        ``"auto"`` is refused without it (or the environment's ``RAY_USE_TLS``).

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

        return RayBackend(address or "local", tls=ray_tls)
    raise ConfigError(
        f"unknown compute backend {kind!r}; use 'local' (process pool), 'serial' or 'ray'"
    )
