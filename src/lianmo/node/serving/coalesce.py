"""Joining concurrent requests' questions to a host into one ``Part`` call.

Under load a guest would ask the same host once per request, and each call costs far more
in gRPC than in scoring (docs/serving.md, "Speed"). The :class:`Coalescer` batches
naturally: a request whose host has no call in flight asks at once, alone, so a lone
request waits for nothing; requests that arrive while a call is in flight queue up and go
together in the next call, led by the first of them, each taking back its own rows. The
host sees the same ids, for the same version, as it would have one request at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lianmo.errors import LianmoError, TransportError
from lianmo.transport.scoring import PartAnswer, PartQuery

PartCaller = Callable[[str, PartQuery, float], PartAnswer]
_Key = tuple[str, str, str, str]


@dataclass(eq=False)
class _Waiter:
    query: PartQuery
    deadline: float
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    answer: PartAnswer | None = None
    error: LianmoError | None = None

    @property
    def settled(self) -> bool:
        return self.answer is not None or self.error is not None


class Coalescer:
    """Asks hosts through ``ask``, joining requests that queue behind a call in flight
    (at most ``max_ids`` ids per joined call)."""

    def __init__(self, ask: PartCaller, max_ids: int) -> None:
        self._ask = ask
        self._max_ids = max_ids
        self._lock = threading.Lock()
        self._queues: dict[_Key, list[_Waiter]] = {}
        self._busy: set[_Key] = set()
        self.calls = 0  # joined calls made (for tests and the curious)

    def ask(self, host: str, query: PartQuery, budget: float) -> PartAnswer:
        key = (host, query.model, query.version, query.spec_sha256)
        me = _Waiter(query, time.monotonic() + budget)
        with self._lock:
            if key in self._busy:
                self._queues.setdefault(key, []).append(me)
            else:
                self._busy.add(key)
                me.lead = True
        if not me.lead and not me.wake.wait(budget):
            with self._lock:
                queue = self._queues.get(key, [])
                if me in queue and not me.lead:  # still waiting for a call: give up
                    queue.remove(me)
                    raise TransportError(
                        f"host '{host}' did not answer within the deadline (queued behind "
                        "other requests to it)"
                    )
            me.wake.wait()  # in a call in flight, whose deadline is at most ours, or leading
        if me.lead and not me.settled:
            self._run(host, key, me)
        if me.error is not None:
            raise me.error
        assert me.answer is not None
        return me.answer

    def _run(self, host: str, key: _Key, first: _Waiter) -> None:
        """Make one call for ``first`` and the requests queued behind it, then hand the
        lead to the next request in the queue (or free the host)."""
        with self._lock:
            batch, size = [first], len(first.query.ids)
            queue = self._queues.get(key, [])
            if first in queue:
                queue.remove(first)
            while queue and size + len(queue[0].query.ids) <= self._max_ids:
                size += len(queue[0].query.ids)
                batch.append(queue.pop(0))
        try:
            ids = tuple(i for w in batch for i in w.query.ids)
            budget = max(min(w.deadline for w in batch) - time.monotonic(), 0.001)
            answer = self._ask(host, PartQuery(*key[1:], ids), budget)
            self.calls += 1
            lo = 0
            for w in batch:
                hi = lo + len(w.query.ids)
                w.answer = _rows(answer, lo, hi)
                lo = hi
        except LianmoError as exc:
            for w in batch:
                w.error = exc
        finally:
            with self._lock:
                for w in batch[1:]:
                    w.wake.set()
                queue = self._queues.get(key, [])
                if queue:
                    nxt = queue[0]
                    nxt.lead = True
                    nxt.wake.set()
                else:
                    self._busy.discard(key)


def _rows(answer: PartAnswer, lo: int, hi: int) -> PartAnswer:
    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[lo:hi]

    return PartAnswer(
        answer.version, answer.found[lo:hi], cut(answer.partial), answer.split_ids, cut(answer.left)
    )
