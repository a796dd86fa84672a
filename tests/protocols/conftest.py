"""Run protocol roles of one job in threads over in-memory channels."""

from __future__ import annotations

import hashlib
import threading
import typing as t
from collections.abc import Callable, Mapping

import pytest

from lianmo.crypto.drbg import Drbg
from lianmo.protocols.context import Limits, RoleContext
from lianmo.transport.envelope import Direction, Envelope
from lianmo.transport.memory import MemoryHub


class WireRecorder:
    """Keeps every envelope sent in a job (the payload bytes as they cross the wire)."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self._lock = threading.Lock()

    def on_message(self, direction: Direction, envelope: Envelope) -> None:
        if direction == "sent":
            with self._lock:
                self.envelopes.append(envelope)


def run_roles(
    roles: Mapping[str, Callable[[RoleContext], t.Any]],
    *,
    guest: str,
    hosts: tuple[str, ...],
    arbiter: str | None = None,
    job_id: str = "test-job",
    recorder: WireRecorder | None = None,
    timeout: float = 300.0,
    limits: Mapping[str, Limits] | None = None,
) -> dict[str, t.Any]:
    """Run each party's role function in its own thread; return results or raise the first error.

    ``limits``: a party's own policy bounds (none by default).
    """
    hub = MemoryHub(job_id, roles.keys())
    results: dict[str, t.Any] = {}
    errors: dict[str, BaseException] = {}

    def run(party: str, fn: Callable[[RoleContext], t.Any]) -> None:
        try:
            ctx = RoleContext(
                job_id=job_id,
                party=party,
                channel=hub.channel(party, [recorder] if recorder else [], recv_timeout=timeout),
                rng=Drbg(hashlib.sha256(f"seed-{party}".encode()).digest()),
                guest=guest,
                hosts=hosts,
                arbiter=arbiter,
                limits=(limits or {}).get(party, Limits()),
            )
            results[party] = fn(ctx)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors[party] = exc
            hub.close(f"{party} failed: {exc}")

    threads = [threading.Thread(target=run, args=(p, fn)) for p, fn in roles.items()]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
    if errors:
        first = next(iter(errors.values()))
        raise first
    return results


@pytest.fixture
def wire() -> WireRecorder:
    return WireRecorder()
