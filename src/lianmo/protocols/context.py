"""What every protocol role gets: its channel, its randomness, who the others are, progress."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from lianmo.compute.backend import ComputeBackend, SerialBackend
from lianmo.crypto.drbg import Drbg
from lianmo.transport.channel import Channel


class Progress(t.Protocol):
    """Receives progress of the running phase: ``step`` of ``total`` with a short detail."""

    def __call__(self, phase: str, step: int, total: int, detail: str = "") -> None: ...


def no_progress(phase: str, step: int, total: int, detail: str = "") -> None:
    """A progress sink that ignores everything."""


class Recorder(t.Protocol):
    """Appends one of this party's own decisions (``kind`` plus scalar fields) to its audit log."""

    def __call__(self, kind: str, **fields: str | int | float | bool | None) -> None: ...


def no_record(kind: str, **fields: str | int | float | bool | None) -> None:
    """A decision sink that keeps nothing."""


class Checkpoints(t.Protocol):
    """Where a protocol keeps its state after each completed step, to resume from.

    A protocol calls ``save(name, state)`` once a step is complete (``state`` is plain
    JSON: numbers, strings, lists, dicts) and, before doing that step's work,
    ``restore(name)``: a resumed job gets the last state saved under ``name`` back, and
    must then skip everything it did before that save -- messages, random draws and
    records are already accounted for. A fresh job gets None. Wall-clock values go
    under the key ``"timing"``: they are kept, but left out of the digest the audit log
    records (they differ between a run and its replay).
    """

    def restore(self, name: str) -> dict[str, t.Any] | None: ...

    def save(self, name: str, state: dict[str, t.Any]) -> None: ...


class NoCheckpoints:
    """Keeps nothing: the job cannot be resumed (unit tests, simulations)."""

    def restore(self, name: str) -> dict[str, t.Any] | None:
        return None

    def save(self, name: str, state: dict[str, t.Any]) -> None:
        pass


@dataclass(frozen=True)
class RoleContext:
    """One party's view of a job while it runs a protocol role.

    ``rng`` is this party's DRBG for the job: every random choice a protocol makes
    (masks, obfuscation, PSI scalars, shuffles) is drawn from it, never from an unseeded
    source, so that a party's side can be replayed from its seed. ``compute`` runs the
    chunked crypto kernels (a process pool on a party node); results never depend on it.
    ``record`` appends the party's own decisions (e.g. the splits chosen per tree level)
    to its audit log. ``checkpoints`` keeps the protocol's state after each round so a
    killed party resumes where it was (see :class:`Checkpoints`).
    """

    job_id: str
    party: str
    channel: Channel
    rng: Drbg
    guest: str
    hosts: tuple[str, ...]
    arbiter: str | None = None
    progress: Progress = no_progress
    compute: ComputeBackend = field(default_factory=SerialBackend)
    record: Recorder = no_record
    checkpoints: Checkpoints = field(default_factory=NoCheckpoints)
