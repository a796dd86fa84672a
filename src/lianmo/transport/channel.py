"""The Channel interface protocols talk to, whatever carries the bytes.

A channel belongs to one party in one job. ``send`` serialises a typed payload into an
envelope with the next sequence number for that peer and delivers it; ``recv`` takes
the next envelope from a peer and checks it is the step the protocol expects. Subclasses
only implement ``_deliver`` (in-memory hand-over, or a gRPC stream).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from lianmo.errors import UnexpectedMessageError
from lianmo.transport import serde
from lianmo.transport.envelope import Envelope, MessageObserver
from lianmo.transport.inbox import Inbox
from lianmo.transport.messages import Payload

DEFAULT_RECV_TIMEOUT = 1800.0


class Channel(abc.ABC):
    """Typed, ordered messaging between the parties of one job."""

    def __init__(
        self,
        *,
        job_id: str,
        party: str,
        inbox: Inbox,
        peers: Iterable[str],
        observers: Sequence[MessageObserver] = (),
        recv_timeout: float = DEFAULT_RECV_TIMEOUT,
    ) -> None:
        self.job_id = job_id
        self.party = party
        self.peers = tuple(sorted(set(peers) - {party}))
        self._inbox = inbox
        self._observers = list(observers)
        self._recv_timeout = recv_timeout
        self._audit_head: Callable[[], str] = str  # "": no audit log to anchor
        self._seq = dict.fromkeys(self.peers, 0)
        # One lock per peer, held from numbering to delivery: two threads sending to the
        # same peer must not deliver seq n+1 before seq n (the inbox would reject it).
        self._send_locks = {peer: threading.Lock() for peer in self.peers}

    def add_observer(self, observer: MessageObserver) -> None:
        """Also tell ``observer`` about every message from now on."""
        self._observers.append(observer)

    def anchor(self, audit_head: Callable[[], str]) -> None:
        """Stamp every envelope sent from now on with ``audit_head()``, this party's
        current audit head: its peers log it, so its log cannot be rewritten later."""
        self._audit_head = audit_head

    def send(self, to: str, tag: str, payload: Payload, *, round: int = 0) -> None:
        """Send ``payload`` to party ``to`` as protocol step ``tag`` of ``round``."""
        if to not in self._seq:
            raise UnexpectedMessageError(
                f"party '{self.party}' cannot send '{tag}' to '{to}': not a peer in job "
                f"'{self.job_id}' (peers: {list(self.peers)})"
            )
        payload_type, data = serde.encode_payload(payload)
        with self._send_locks[to]:
            env = Envelope.build(
                job_id=self.job_id,
                round=round,
                tag=tag,
                sender=self.party,
                receiver=to,
                seq=self._seq[to],
                payload_type=payload_type,
                payload=data,
                audit_head=self._audit_head(),
            )
            self._deliver(env)
            # Only a delivered message uses up its number. If a failed delivery did arrive
            # after all, the receiver dedupes an identical resend and rejects a different one.
            self._seq[to] = env.seq + 1
            for observer in self._observers:
                observer.on_message("sent", env)

    def recv(self, frm: str, tag: str, *, round: int = 0) -> Payload:
        """Receive the next message from ``frm``; it must be step ``tag`` of ``round``."""
        env = self._inbox.take(frm, self._recv_timeout)
        if env.tag != tag or env.round != round:
            raise UnexpectedMessageError(
                f"party '{self.party}' expected '{tag}' round {round} from '{frm}' but "
                f"received {env.describe()}; the parties run different protocol versions "
                "or job settings"
            )
        for observer in self._observers:
            observer.on_message("received", env)
        return serde.decode_payload(env.payload_type, env.payload)

    def broadcast(self, to: Iterable[str], tag: str, payload: Payload, *, round: int = 0) -> None:
        """Send the same payload to several peers."""
        for peer in to:
            self.send(peer, tag, payload, round=round)

    def position(self) -> dict[str, dict[str, int]]:
        """Messages sent to and taken from each peer so far (for checkpoints)."""
        sent = {}
        for peer, lock in self._send_locks.items():
            with lock:
                sent[peer] = self._seq[peer]
        return {"sent": sent, "taken": self._inbox.position()}

    def restore(self, position: Mapping[str, Mapping[str, int]]) -> None:
        """Continue from a checkpoint's :meth:`position`.

        Messages after it are sent again under the same sequence numbers (the peers
        drop them as duplicates if they had them) and taken again from the inbox.
        """
        for peer, seq in position["sent"].items():
            if peer not in self._seq:
                raise UnexpectedMessageError(
                    f"party '{self.party}' checkpoint names '{peer}', not a peer in job "
                    f"'{self.job_id}'"
                )
            self._seq[peer] = int(seq)
        self._inbox.rewind(position["taken"])

    @abc.abstractmethod
    def _deliver(self, env: Envelope) -> None:
        """Hand ``env`` to its receiver, or raise a :class:`LianmoError` saying why not."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release network resources; the default holds none."""
