"""Cut incoming streaming calls whose client stalls: one timer thread for a whole server.

gRPC's synchronous server gives each call a pool thread as soon as it opens, and a
thread blocked on ``next(request_iterator)`` waits for as long as the client likes: the
client's own deadline is the client's choice. :class:`StallWatch` puts a server-side
deadline on each wait for the client's next message (:meth:`StallWatch.paced`); a call
still waiting when it passes is ended with DEADLINE_EXCEEDED and a message saying why,
which frees its thread. Only the waits on the client are timed, never the server's own
work between messages (spooling, waiting for the sender's turn in the inbox).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import typing as t
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

_LOGGER = logging.getLogger(__name__)
_T = t.TypeVar("_T")


@dataclass(frozen=True)
class _Armed:
    context: grpc.ServicerContext
    message: str


class StallWatch:
    """Deadlines on the waits of many calls, kept by one thread.

    The thread runs only while some wait is armed, so an idle server holds none.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, _Armed] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def paced(
        self,
        requests: Iterator[_T],
        context: grpc.ServicerContext,
        *,
        first_s: float,
        gap_s: float,
        what: str,
    ) -> Iterator[_T]:
        """``requests`` as they arrive; the call is cut if the first takes over ``first_s``
        seconds or any later one over ``gap_s`` seconds after the one before.

        ``what`` names the call in the cut's message ("Send from 'broker'").
        """
        timeout, which = first_s, "first chunk"
        while True:
            token = self.arm(
                context,
                timeout,
                f"{what} was cut: no {which} within {timeout:g}s",
            )
            try:
                request = next(requests, None)
            finally:
                self.disarm(token)
            if request is None:
                return
            yield request
            timeout, which = gap_s, "next chunk"

    def arm(self, context: grpc.ServicerContext, timeout_s: float, message: str) -> int:
        """Cut the call of ``context`` with ``message`` unless disarmed within ``timeout_s``."""
        with self._cond:
            token = next(self._ids)
            self._armed[token] = _Armed(context, message)
            heapq.heappush(self._heap, (time.monotonic() + timeout_s, token))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="lianmo-stall-watch", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return token

    def disarm(self, token: int) -> None:
        """Cancel a deadline set by :meth:`arm` (it has passed: nothing happens)."""
        with self._cond:
            self._armed.pop(token, None)
            self._cond.notify()  # the thread drops it, and ends when nothing is armed

    def _run(self) -> None:
        while (due := self._next_due()) is not None:
            _LOGGER.warning("%s", due.message)
            _cut(due.context, due.message)

    def _next_due(self) -> _Armed | None:
        """Wait for the next deadline to pass; None (and the thread ends) when none is armed."""
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # disarmed: dropped lazily
                if not self._heap:
                    self._thread = None
                    return None
                deadline, token = self._heap[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    heapq.heappop(self._heap)
                    return self._armed.pop(token)
                self._cond.wait(remaining)


def _cut(context: grpc.ServicerContext, message: str) -> None:
    """End the call with DEADLINE_EXCEEDED and ``message``, from outside its thread.

    ``ServicerContext.abort`` works only in the call's own thread, which is blocked
    reading; ``cancel`` works from anywhere but tells the client only "Cancelled". The
    core call can cancel with a status, so the client learns why; grpc exposes it only
    on the context's private call object, so fall back to ``cancel`` without it.
    """
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        if call is not None:
            call.cancel(grpc.StatusCode.DEADLINE_EXCEEDED.value[0], message)
        else:
            context.cancel()  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - a call that just ended cannot be cut; nothing to do
        _LOGGER.debug("could not cut a call that already ended", exc_info=True)
