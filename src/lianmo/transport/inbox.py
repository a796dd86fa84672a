"""A party's inbox for one job: ordered, deduplicated, per-sender message queues.

Each sender's messages carry a sequence number starting at 0. The inbox accepts them
only in order: a resend of one it already has (same seq, same sha256) is acknowledged
as a duplicate and dropped, a different payload under a used seq or a gap in the
sequence is rejected. Protocol code takes messages one sender at a time, in order.

With a :class:`~lianmo.transport.spool.Spool` every message is on disk before it is
acknowledged and the inbox keeps only headers in memory: a restarted node rebuilds the
inbox from the spool (:meth:`Inbox.restore`), and a party resuming from a checkpoint
moves its read position back (:meth:`Inbox.rewind`) to read the later messages again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping

from lianmo.errors import (
    ProtocolError,
    TransportError,
    UnexpectedMessageError,
    UnknownJobError,
)
from lianmo.transport.envelope import Envelope
from lianmo.transport.spool import Spool, Spooled, check_payload


class Inbox:
    """Thread-safe receive side of one party in one job.

    Parameters
    ----------
    job_id, party
        The job and the party receiving.
    senders
        Every party of the job (the receiver itself is left out).
    spool
        Where messages are kept durably; without one they are held in memory.
    max_job_bytes
        Limit on the payload bytes this party accepts in the job, from all senders.
    screen
        Called with every arriving message's header before its payload is read; raises
        to refuse it (the node refuses tags, directions and payload types that no
        protocol step allows: :meth:`lianmo.wire.step.Registry.screen`).
    """

    def __init__(
        self,
        job_id: str,
        party: str,
        senders: Iterable[str],
        *,
        spool: Spool | None = None,
        max_job_bytes: int | None = None,
        screen: Callable[[Envelope], None] | None = None,
    ) -> None:
        self.job_id = job_id
        self._screen = screen
        self.party = party
        self._senders = frozenset(senders) - {party}
        self._spool = spool
        self._max_job_bytes = max_job_bytes
        self._held: dict[str, list[Envelope | Spooled]] = {s: [] for s in self._senders}
        self._cursor: dict[str, int] = dict.fromkeys(self._senders, 0)
        self._bytes = 0
        self._cond = threading.Condition()
        self._sender_locks = {s: threading.Lock() for s in self._senders}
        self._closed: str | None = None

    @classmethod
    def restore(
        cls,
        job_id: str,
        party: str,
        senders: Iterable[str],
        spool: Spool,
        *,
        max_job_bytes: int | None = None,
        screen: Callable[[Envelope], None] | None = None,
    ) -> Inbox:
        """The inbox of a job as its spool left it (read position at the start)."""
        inbox = cls(job_id, party, senders, spool=spool, max_job_bytes=max_job_bytes, screen=screen)
        for held in spool.load():
            sender = held.header.sender
            queue = inbox._held.get(sender)
            if queue is None or held.header.seq != len(queue):
                raise TransportError(
                    f"party '{party}': the spool of job '{job_id}' at {spool.directory} "
                    f"has a gap or a stranger at {held.path.name} from '{sender}'; "
                    "restore the state directory or restart the job"
                )
            queue.append(held)
            inbox._bytes += held.size
        return inbox

    def admit(self, job_id: str, sender: str, receiver: str, what: str) -> None:
        """Check who a message is from and for, before its payload is even read."""
        if job_id != self.job_id:
            raise UnknownJobError(
                f"party '{self.party}' is not running job '{job_id}' (got {what})"
            )
        if receiver != self.party:
            raise UnexpectedMessageError(
                f"party '{self.party}' received {what} addressed to another party"
            )
        if sender not in self._senders:
            raise UnexpectedMessageError(
                f"party '{self.party}' received {what}, but '{sender}' "
                f"is not a party of job '{self.job_id}' (parties: {sorted(self._senders)})"
            )

    def put(self, env: Envelope) -> bool:
        """Accept one envelope; return True if it was a duplicate of one already held."""
        return self.put_stream(env, [env.payload], size=len(env.payload))

    def put_stream(self, header: Envelope, datas: Iterable[bytes], *, size: int) -> bool:
        """Accept one message whose payload arrives as chunks (``header.payload`` unused).

        ``header.sha256`` and ``size`` are what the sender announced; the payload is
        checked against both. Duplicates are recognised from the header alone, before
        any payload is read. Returns True for a duplicate.
        """
        self.admit(header.job_id, header.sender, header.receiver, header.describe())
        if self._screen is not None:
            self._screen(header)
        # One message per sender at a time keeps its order; a slow sender blocks no other.
        with self._sender_locks[header.sender]:
            with self._cond:
                if self._is_duplicate(header):
                    return True
                self._check_job_limit(header, size)
                self._bytes += size  # reserved now, so concurrent senders share the limit
            try:
                held = self._keep(header, datas, size)
            except BaseException:
                with self._cond:
                    self._bytes -= size
                raise
            with self._cond:
                self._held[header.sender].append(held)
                self._cond.notify_all()
        return False

    def _is_duplicate(self, header: Envelope) -> bool:
        queue = self._held[header.sender]
        expected = len(queue)
        if header.seq < expected:
            if _header_of(queue[header.seq]).sha256 == header.sha256:
                return True
            raise UnexpectedMessageError(
                f"party '{self.party}' received {header.describe()} whose payload differs "
                f"from the message it already holds under that sequence number"
            )
        if header.seq > expected:
            raise UnexpectedMessageError(
                f"party '{self.party}' received {header.describe()} out of order: "
                f"expected seq {expected} next from '{header.sender}'"
            )
        return False

    def _check_job_limit(self, header: Envelope, size: int) -> None:
        limit = self._max_job_bytes
        if limit is not None and self._bytes + size > limit:
            raise ProtocolError(
                f"{header.describe()} would bring job '{self.job_id}' to "
                f"{self._bytes + size} bytes received at party '{self.party}', over its "
                f"per-job limit of {limit} bytes; raise max_job_mb in the receiving "
                "party's config, or train on fewer rows per job"
            )

    def _keep(self, header: Envelope, datas: Iterable[bytes], size: int) -> Envelope | Spooled:
        if self._spool is not None:
            return self._spool.write(header, datas, expected_size=size)
        payload = b"".join(datas)
        digest = hashlib.sha256(payload).digest()
        check_payload(header, len(payload), digest, size)
        return dataclasses.replace(header, payload=payload)

    def take(self, sender: str, timeout: float) -> Envelope:
        """Remove and return the next message from ``sender``, waiting up to ``timeout``."""
        if sender not in self._senders:
            raise UnexpectedMessageError(
                f"party '{self.party}' cannot receive from '{sender}': not a party of "
                f"job '{self.job_id}'"
            )
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._closed is not None or self._cursor[sender] < len(self._held[sender]),
                timeout,
            )
            if self._closed is not None:
                raise TransportError(f"job '{self.job_id}' stopped: {self._closed}")
            if not ready:
                raise TransportError(
                    f"party '{self.party}' waited {timeout:.0f}s for a message from "
                    f"'{sender}' in job '{self.job_id}' and none came; is '{sender}' "
                    "still running?"
                )
            queue, index = self._held[sender], self._cursor[sender]
            self._cursor[sender] = index + 1
            held = queue[index]
            if isinstance(held, Envelope) and self._spool is None:
                queue[index] = _header_of(held)  # memory: keep only what dedup needs
        return held.load() if isinstance(held, Spooled) else held

    def arrived(self, sender: str) -> int:
        """How many messages from ``sender`` the inbox holds (taken or not)."""
        with self._cond:
            return len(self._held[sender])

    def position(self) -> dict[str, int]:
        """How many messages the protocol has taken from each sender (for checkpoints)."""
        with self._cond:
            return dict(self._cursor)

    def rewind(self, position: Mapping[str, int]) -> None:
        """Read again from ``position`` (a checkpoint's); needs the spool."""
        with self._cond:
            for sender, index in position.items():
                if sender not in self._cursor or not 0 <= index <= len(self._held[sender]):
                    raise TransportError(
                        f"party '{self.party}' cannot resume job '{self.job_id}': its "
                        f"checkpoint read {index} messages from '{sender}' but the inbox "
                        f"holds {len(self._held.get(sender, []))}; the spool is incomplete"
                    )
                if self._spool is None and index < self._cursor[sender]:
                    raise TransportError(
                        f"party '{self.party}' cannot re-read messages of job '{self.job_id}' "
                        "without a spool"
                    )
            self._cursor.update(position)

    def close(self, reason: str) -> None:
        """Wake every waiter with an error: the job is over (cancelled or failed)."""
        with self._cond:
            if self._closed is None:
                self._closed = reason
            self._cond.notify_all()

    def reopen(self) -> None:
        """Accept takes again after :meth:`close` (a stopped job being resumed)."""
        with self._cond:
            self._closed = None


def _header_of(held: Envelope | Spooled) -> Envelope:
    if isinstance(held, Spooled):
        return held.header
    return dataclasses.replace(held, payload=b"")
