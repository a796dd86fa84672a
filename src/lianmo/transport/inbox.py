"""A party's inbox for one job: ordered, deduplicated, per-sender message queues.

Each sender's messages carry a sequence number starting at 0. The inbox accepts them
only in order: a resend of one it already has (same seq, same sha256) is acknowledged
as a duplicate and dropped, a different payload under a used seq or a gap in the
sequence is rejected. Protocol code takes messages one sender at a time, in order.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

from lianmo.errors import TransportError, UnexpectedMessageError, UnknownJobError
from lianmo.transport.envelope import Envelope


class Inbox:
    """Thread-safe receive side of one party in one job."""

    def __init__(self, job_id: str, party: str, senders: Iterable[str]) -> None:
        self.job_id = job_id
        self.party = party
        self._senders = frozenset(senders) - {party}
        self._queues: dict[str, deque[Envelope]] = {s: deque() for s in self._senders}
        self._next_seq: dict[str, int] = dict.fromkeys(self._senders, 0)
        self._digests: dict[tuple[str, int], bytes] = {}
        self._cond = threading.Condition()
        self._closed: str | None = None

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
        self.admit(env.job_id, env.sender, env.receiver, env.describe())
        with self._cond:
            expected = self._next_seq[env.sender]
            if env.seq < expected:
                if self._digests.get((env.sender, env.seq)) == env.sha256:
                    return True
                raise UnexpectedMessageError(
                    f"party '{self.party}' received {env.describe()} whose payload differs "
                    f"from the message it already holds under that sequence number"
                )
            if env.seq > expected:
                raise UnexpectedMessageError(
                    f"party '{self.party}' received {env.describe()} out of order: "
                    f"expected seq {expected} next from '{env.sender}'"
                )
            self._digests[(env.sender, env.seq)] = env.sha256
            self._next_seq[env.sender] = expected + 1
            self._queues[env.sender].append(env)
            self._cond.notify_all()
        return False

    def take(self, sender: str, timeout: float) -> Envelope:
        """Remove and return the next message from ``sender``, waiting up to ``timeout``."""
        if sender not in self._senders:
            raise UnexpectedMessageError(
                f"party '{self.party}' cannot receive from '{sender}': not a party of "
                f"job '{self.job_id}'"
            )
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._closed is not None or bool(self._queues[sender]), timeout
            )
            if self._closed is not None:
                raise TransportError(f"job '{self.job_id}' stopped: {self._closed}")
            if not ready:
                raise TransportError(
                    f"party '{self.party}' waited {timeout:.0f}s for a message from "
                    f"'{sender}' in job '{self.job_id}' and none came; is '{sender}' "
                    "still running?"
                )
            return self._queues[sender].popleft()

    def close(self, reason: str) -> None:
        """Wake every waiter with an error: the job is over (cancelled or failed)."""
        with self._cond:
            if self._closed is None:
                self._closed = reason
            self._cond.notify_all()
