"""The Ray backend: a party's chunked kernels on a Ray cluster it already runs.

A party whose table outgrows one machine points its node at a Ray cluster inside its own
network (``[compute] backend = "ray"``, ``address = "ray://head:10001"``, or ``"local"``
for a Ray instance started in the node's process, as the tests do). Each chunk becomes
one Ray task; results come back in order, so kernels give the same output as on the
local process pool (the contract of :class:`~lianmo.compute.backend.ComputeBackend`).

Decryption and CRT-encryption chunks carry the party's private key factors, and Ray's
object store is not encrypted: the cluster must be as trusted as the node itself, inside
the same institution, never shared with a partner. Ray's traffic is clear text unless its
TLS is on, so an address that crosses a network is refused without TLS
(:func:`lianmo.config.party.ray_tls_problem`): only ``"local"`` and ``"auto"`` on a
one-machine cluster run without it.
"""

from __future__ import annotations

import os
import threading
import typing as t
from pathlib import Path

from lianmo.compute.backend import ComputeBackend
from lianmo.config.party import RAY_TLS_ENV, ray_tls_on, ray_tls_problem
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
    tls : tuple of Path, optional
        ``(cert, key, ca)`` for Ray's TLS (``[compute] tls_cert, tls_key, tls_ca``),
        exported as Ray's ``RAY_USE_TLS`` variables before connecting. Without it, the
        environment's own ``RAY_USE_TLS`` settings count.

    Raises
    ------
    ConfigError
        If Ray is not installed, the cluster cannot be reached, or Ray's traffic would
        cross a network in clear text (an address other than ``"local"`` or ``"auto"``,
        or ``"auto"`` on a cluster of several machines, without TLS).
    """

    def __init__(
        self,
        address: str = "local",
        *,
        cpus: int | None = None,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        problem = ray_tls_problem(address, tls is not None)
        if problem:
            raise ConfigError(f"[compute] address {problem}")
        ray = _ray()
        if tls is not None:
            os.environ.update(zip(RAY_TLS_ENV, map(str, tls), strict=True))
            os.environ["RAY_USE_TLS"] = "1"
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
        machines = sum(1 for n in ray.nodes() if n.get("Alive")) if address == "auto" else 1
        problem = cluster_problem(address, machines, ray_tls_on())
        if problem:
            self.close()
            raise ConfigError(problem)
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


def cluster_problem(address: str, machines: int, tls_on: bool) -> str | None:
    """Why the Ray cluster joined through ``address`` may not be used, or None.

    ``"auto"`` joins the cluster this machine belongs to; spread over several machines,
    its workers receive key factors over the network, so it needs TLS like any remote
    address.
    """
    if address != "auto" or machines <= 1 or tls_on:
        return None
    return (
        f"[compute] address = 'auto' joined a Ray cluster of {machines} machines, but Ray's "
        "TLS is off: this party's Paillier key factors would cross the network in clear "
        "text. Start the cluster and the node with RAY_USE_TLS=1 (or set [compute] "
        "tls_cert, tls_key and tls_ca), or use address = 'local'"
    )
