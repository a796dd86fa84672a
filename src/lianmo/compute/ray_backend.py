"""The Ray backend: a party's chunked kernels on a Ray cluster it already runs.

A party whose table outgrows one machine points its node at a Ray cluster inside its own
network (``[compute] backend = "ray"``, ``address = "ray://head:10001"``, or ``"local"``
for a Ray instance started in the node's process, as the tests do). Each chunk becomes
one Ray task; results come back in order, so kernels give the same output as on the
local process pool (the contract of :class:`~lianmo.compute.backend.ComputeBackend`).

Decryption and CRT-encryption chunks carry the party's private key factors, and Ray's
object store is not encrypted: the cluster must be as trusted as the node itself, inside
the same institution, never shared with a partner.
"""

from __future__ import annotations

import threading
import typing as t

from lianmo.compute.backend import ComputeBackend
from lianmo.errors import ConfigError, LianmoError

T = t.TypeVar("T")
R = t.TypeVar("R")


def _apply(kernel: t.Callable[[T], R], chunk: T) -> R:
    """Run one chunk: the body of every Ray task."""
    return kernel(chunk)


def _ray() -> t.Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "[compute] backend = 'ray' needs Ray, which is not installed in this node's "
            "environment; install lianmo with the ray extra (pip install 'lianmo[ray]') "
            "or use backend = 'local'"
        ) from None
    return ray


class RayBackend(ComputeBackend):
    """Runs chunks as tasks on a Ray cluster.

    Parameters
    ----------
    address : str
        ``"local"`` starts a Ray instance in this process (on this machine's cores);
        anything else is passed to ``ray.init(address=...)``, e.g. ``"ray://head:10001"``
        or ``"auto"``.
    cpus : int, optional
        With ``"local"``: the cores that instance may use (default: all).

    Raises
    ------
    ConfigError
        If Ray is not installed, or the cluster cannot be reached.
    """

    def __init__(self, address: str = "local", *, cpus: int | None = None) -> None:
        ray = _ray()
        self.address = address
        self._lock = threading.Lock()
        self._closed = False
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            try:
                ray.init(
                    address=None if address == "local" else address,
                    num_cpus=cpus if address == "local" else None,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(
                    f"[compute] backend = 'ray' cannot reach the Ray cluster at {address!r}: "
                    f"{exc}; check [compute] address and that the cluster runs"
                ) from exc
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._task = ray.remote(_apply)

    def __repr__(self) -> str:
        return f"RayBackend(address={self.address!r}, workers={self.workers})"

    def map(self, kernel: t.Callable[[T], R], chunks: t.Sequence[T]) -> list[R]:
        ray = _ray()
        with self._lock:
            if self._closed:
                raise LianmoError("compute backend used after close(); this is a bug")
        if len(chunks) <= 1:  # not worth a round trip through the cluster
            return [kernel(chunk) for chunk in chunks]
        refs = [self._task.remote(kernel, chunk) for chunk in chunks]
        try:
            return t.cast(list[R], ray.get(refs))
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, LianmoError):  # the kernel's own error, as on the pool
                raise cause from exc
            raise LianmoError(
                f"a Ray task failed ({type(exc).__name__}: {exc}); the job cannot continue "
                "on this node. Check the Ray cluster's workers (memory, lost nodes)"
            ) from exc

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._owns_ray:
            _ray().shutdown()
