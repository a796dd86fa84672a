"""Who may open a federation call at a node, and how many calls each may hold at once.

Every incoming message stream holds one of the server's threads while it runs. Before
a call reads anything, :class:`Admission` refuses callers whose certificate name is in
no job the node holds (nor one of its coordinators), caps the calls in flight per
caller, and caps the federation calls in flight altogether, below the thread pool, so
that control and health calls always find a free thread.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lianmo.errors import AuthenticationError, TransportError

DEFAULT_FIRST_CHUNK_S = 30.0
DEFAULT_CHUNK_GAP_S = 60.0
DEFAULT_CALLS_PER_PEER = 4
# Pool threads that federation calls never take: control and health calls stay served.
CONTROL_RESERVE = 4

IsMember = Callable[[str], bool]
"""True if a certificate name may call this node: a coordinator or a party of a job it holds."""


class PeerBusyError(TransportError):
    """A caller has too many calls in flight, or the node has (gRPC: RESOURCE_EXHAUSTED).

    The caller may retry later: the call was refused before anything was read.
    """


@dataclass(frozen=True)
class CallLimits:
    """Limits on the federation calls a node serves at once and on how long they idle.

    Parameters
    ----------
    first_chunk_s
        Longest wait for a call's first chunk (party config ``limits.first_chunk_s``).
    chunk_gap_s
        Longest wait for each later chunk (``limits.chunk_gap_s``).
    calls_per_peer
        Most calls one certificate name may have in flight (``limits.calls_per_peer``).
    """

    first_chunk_s: float = DEFAULT_FIRST_CHUNK_S
    chunk_gap_s: float = DEFAULT_CHUNK_GAP_S
    calls_per_peer: int = DEFAULT_CALLS_PER_PEER


DEFAULT_LIMITS = CallLimits()


class Admission:
    """Admits federation calls by caller name, within per-caller and overall caps.

    Parameters
    ----------
    node
        This node's party name, for messages.
    is_member
        Whether a certificate name may send to this node at all.
    calls_per_peer
        Most calls in flight per caller.
    total
        Most federation calls in flight altogether.
    """

    def __init__(self, node: str, is_member: IsMember, *, calls_per_peer: int, total: int) -> None:
        self._node = node
        self._is_member = is_member
        self._per_peer = calls_per_peer
        self._total = total
        self._lock = threading.Lock()
        self._in_flight: collections.Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def call(self, caller: str) -> Iterator[None]:
        """Hold one of ``caller``'s call slots for the ``with`` block.

        Raises
        ------
        AuthenticationError
            If ``caller`` is neither a coordinator nor a party of any job this node holds.
        PeerBusyError
            If ``caller``, or the node as a whole, has as many calls in flight as allowed.
        """
        if not self._is_member(caller):
            raise AuthenticationError(
                f"party '{self._node}' holds no job with '{caller}' and does not take "
                f"messages from it; a coordinator must prepare a job naming '{caller}' "
                "on this node first"
            )
        self._take(caller)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[caller] -= 1
                if not self._in_flight[caller]:
                    del self._in_flight[caller]

    def in_flight(self, caller: str) -> int:
        """How many calls ``caller`` has in flight now."""
        with self._lock:
            return self._in_flight[caller]

    def _take(self, caller: str) -> None:
        with self._lock:
            if self._in_flight[caller] >= self._per_peer:
                raise PeerBusyError(
                    f"party '{self._node}' refused a call from '{caller}': it already has "
                    "as many calls in flight here as one peer may "
                    f"({self._per_peer}, limits.calls_per_peer in '{self._node}''s party "
                    "config); retry when one has finished"
                )
            if self._in_flight.total() >= self._total:
                raise PeerBusyError(
                    f"party '{self._node}' refused a call from '{caller}': it is serving "
                    f"{self._total} message streams already; retry shortly"
                )
            self._in_flight[caller] += 1
