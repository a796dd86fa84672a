"""What every protocol role gets: its channel, its randomness, who the others are, progress."""

from __future__ import annotations

import typing as t
from collections.abc import Iterable
from dataclasses import dataclass, field

from lianmo.compute.backend import ComputeBackend, SerialBackend
from lianmo.crypto.drbg import Drbg
from lianmo.crypto.paillier import PublicKey
from lianmo.errors import ProtocolError
from lianmo.transport.channel import Channel
from lianmo.transport.messages import PublicKeyMsg
from lianmo.wire.step import Expect, In, Out, Step


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


class CheckpointState(t.Protocol):
    """A step's state as a typed value, and its plain-JSON form in a checkpoint file.

    ``to_checkpoint`` gives numbers, strings, lists and dicts only; a ``"round"`` key
    says which round the state closes, and wall-clock values go under ``"timing"``:
    they are kept, but left out of the digest the audit log records (they differ
    between a run and its replay). ``from_checkpoint`` is its inverse.
    """

    def to_checkpoint(self) -> dict[str, t.Any]: ...

    @classmethod
    def from_checkpoint(cls, raw: t.Mapping[str, t.Any]) -> t.Self: ...


S = t.TypeVar("S", bound=CheckpointState)


class Checkpoints(t.Protocol):
    """Where a protocol keeps its state after each completed step, to resume from.

    A protocol calls ``save(name, state)`` once a step is complete and, before doing
    that step's work, ``restore(name, StateType)``: a resumed job gets the last state
    saved under ``name`` back, and must then skip everything it did before that save --
    messages, random draws and records are already accounted for. A fresh job gets None.
    """

    def restore(self, name: str, kind: type[S]) -> S | None: ...

    def save(self, name: str, state: CheckpointState) -> None: ...


class NoCheckpoints:
    """Keeps nothing: the job cannot be resumed (unit tests, simulations)."""

    def restore(self, name: str, kind: type[S]) -> S | None:
        return None

    def save(self, name: str, state: CheckpointState) -> None:
        pass


@dataclass(frozen=True)
class Limits:
    """Bounds this party's own policy sets on what its peers may bring (its node's
    ``[policy]``; a job spec cannot lower them).

    ``max_peer_set``: the most ids a peer may align with this party (None: no cap).
    """

    max_peer_set: int | None = None


@dataclass(frozen=True)
class RoleContext:
    """One party's view of a job while it runs a protocol role.

    ``rng`` is this party's DRBG for the job: every random choice a protocol makes
    (masks, obfuscation, PSI scalars, shuffles) is drawn from it, never from an unseeded
    source, so that a party's side can be replayed from its seed. ``compute`` runs the
    chunked crypto kernels (a process pool on a party node); results never depend on it.
    ``record`` appends the party's own decisions (e.g. the splits chosen per tree level)
    to its audit log. ``limits`` are this party's own bounds on its peers (:class:`Limits`).
    ``checkpoints`` keeps the protocol's state after each round so a killed party resumes
    where it was (see :class:`Checkpoints`).

    Protocols exchange messages only through :meth:`send`, :meth:`broadcast` and
    :meth:`recv`, naming a step of :mod:`lianmo.wire.steps`: the roles are checked
    against the step's, and a received payload goes through the step's one check.
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
    roles: t.Mapping[str, str] = field(default_factory=dict)
    """Every party's role in the job, where it is not plain from the fields above (a
    scoring job's arbiter still exchanges signing keys)."""
    limits: Limits = field(default_factory=Limits)

    def role_of(self, party: str) -> str:
        """``party``'s role in this job."""
        if party in self.roles:
            return self.roles[party]
        if party == self.guest:
            return "guest"
        if party in self.hosts:
            return "host"
        if party == self.arbiter:
            return "arbiter"
        raise ProtocolError(f"'{party}' has no role in job '{self.job_id}'")

    def send(self, step: Step[In, Out], to: str, value: In, *, round: int = 0) -> None:
        """Send ``value`` to ``to`` as ``step`` of ``round``."""
        self.broadcast(step, (to,), value, round=round)

    def broadcast(
        self, step: Step[In, Out], to: Iterable[str], value: In, *, round: int = 0
    ) -> None:
        """Send the same ``value`` as ``step`` to several peers (encoded once)."""
        targets = list(to)
        for peer in targets:
            step.check_direction(self.party, self.role_of(self.party), peer, self.role_of(peer))
        if targets:
            self.channel.broadcast(targets, step.tag, step.encode(value), round=round)

    def recv(
        self,
        step: Step[In, Out],
        frm: str,
        *,
        round: int = 0,
        count: int | None = None,
        key: PublicKey | None = None,
        exponent: int | None = None,
        below: int | None = None,
        cols: int | None = None,
        key_bits: int = 0,
        insecure_test_key: bool = False,
    ) -> Out:
        """The next message from ``frm``, which must be ``step`` of ``round``, checked.

        ``count``, ``key``, ``exponent``, ``below``, ``cols``, ``key_bits``: what this
        party expects of the message (see :class:`~lianmo.wire.step.Expect`).
        """
        step.check_direction(frm, self.role_of(frm), self.party, self.role_of(self.party))
        msg = self.channel.recv(frm, step.tag, round=round)
        expect = Expect(
            count=count,
            key=key,
            exponent=exponent,
            below=below,
            cols=cols,
            key_bits=key_bits,
            insecure_test_key=insecure_test_key,
        )
        return step.decode(msg, frm, expect)

    def job_key(
        self,
        step: Step[PublicKey, PublicKey],
        frm: str,
        saved: bytes | None,
        *,
        key_bits: int,
        insecure_test_key: bool = False,
    ) -> PublicKey:
        """The job's Paillier key from ``frm``: received as ``step`` now, or the modulus a
        checkpoint kept (``saved``), checked alike; its obfuscation base is pinned to this
        party's job DRBG (a child stream, so the same on resuming and on replay)."""
        if saved is None:
            key = self.recv(step, frm, key_bits=key_bits, insecure_test_key=insecure_test_key)
        else:
            expect = Expect(key_bits=key_bits, insecure_test_key=insecure_test_key)
            key = step.decode(PublicKeyMsg(n=saved), frm, expect)
        key.prepare_obfuscation(self.rng)
        return key
