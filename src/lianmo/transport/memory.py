"""In-process channels for tests and local simulation: same bytes, no network."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from lianmo.transport.channel import DEFAULT_RECV_TIMEOUT, Channel
from lianmo.transport.envelope import Envelope, MessageObserver
from lianmo.transport.inbox import Inbox


class MemoryHub:
    """The inboxes of all parties of one job, living in one process."""

    def __init__(self, job_id: str, parties: Iterable[str]) -> None:
        self.job_id = job_id
        self.parties = tuple(sorted(parties))
        self.inboxes = {p: Inbox(job_id, p, self.parties) for p in self.parties}

    def channel(
        self,
        party: str,
        observers: Sequence[MessageObserver] = (),
        recv_timeout: float = DEFAULT_RECV_TIMEOUT,
    ) -> MemoryChannel:
        """The channel ``party`` uses to talk to the others."""
        return MemoryChannel(self, party, observers, recv_timeout)

    def close(self, reason: str) -> None:
        """Stop every party's waiting receives (one party failed)."""
        for inbox in self.inboxes.values():
            inbox.close(reason)


class MemoryChannel(Channel):
    """Delivers envelopes straight into the receiver's inbox."""

    def __init__(
        self,
        hub: MemoryHub,
        party: str,
        observers: Sequence[MessageObserver],
        recv_timeout: float,
    ) -> None:
        super().__init__(
            job_id=hub.job_id,
            party=party,
            inbox=hub.inboxes[party],
            peers=hub.parties,
            observers=observers,
            recv_timeout=recv_timeout,
        )
        self._hub = hub

    def _deliver(self, env: Envelope) -> None:
        self._hub.inboxes[env.receiver].put(env)


class CallbackChannel(Channel):
    """Hands envelopes to a function: used to wire in-process party nodes together."""

    def __init__(
        self,
        *,
        job_id: str,
        party: str,
        inbox: Inbox,
        peers: Iterable[str],
        deliver: Callable[[Envelope], None],
        observers: Sequence[MessageObserver] = (),
        recv_timeout: float = DEFAULT_RECV_TIMEOUT,
    ) -> None:
        super().__init__(
            job_id=job_id,
            party=party,
            inbox=inbox,
            peers=peers,
            observers=observers,
            recv_timeout=recv_timeout,
        )
        self._deliver_fn = deliver

    def _deliver(self, env: Envelope) -> None:
        self._deliver_fn(env)
