"""A host's id budget: how many distinct ids each guest may ask about per window.

Online scoring answers a guest's ``Part`` call for any ids it names; for SecureBoost the
answer holds the side of every host split per id. The budget bounds what a guest can
harvest: at most ``[serving] id_budget`` distinct ids per caller per window of
``budget_window_s`` seconds. Windows are fixed, counted from the Unix epoch (with the
default 86,400 s, UTC days). An id asked again in the same window is free. A call that
would take the caller past its budget is refused whole, nothing of it counted.

Memory: one set of 64-bit id hashes per caller (in practice, one per guest of a promoted
model), emptied when a new window starts: about 80 bytes per distinct id, so 8 MB per
guest at the default budget of 100,000. The counts live in memory only: a host that
restarts starts its window's counts afresh (a guest cannot make a host restart).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

from lianmo.errors import IdBudgetError


class IdBudget:
    """Counts distinct ids per caller per fixed window; refuses a call past ``limit``.

    Parameters
    ----------
    party : str
        This party's name (for the error's text).
    limit : int
        Distinct ids per caller per window; 0 means no limit.
    window_s : float
        The window's length in seconds.
    clock : callable, optional
        Wall-clock seconds (default :func:`time.time`); tests inject their own.
    """

    def __init__(
        self,
        party: str,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.party = party
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, set[int]]] = {}  # caller -> (window, id hashes)

    def charge(self, caller: str, ids: Sequence[str]) -> int:
        """Count ``ids`` against ``caller``'s budget; return its distinct ids so far.

        Raises
        ------
        IdBudgetError
            If the new ids among ``ids`` would take the caller past the limit; then none
            of them is counted.
        """
        if self.limit == 0:
            return 0
        now = self._clock()
        window = math.floor(now / self.window_s)
        # hash(): 64 bits, salted per process; a collision only makes an id free
        keys = {hash(i) for i in ids}
        with self._lock:
            held = self._seen.get(caller)
            if held is None or held[0] != window:
                held = (window, set())
                self._seen[caller] = held
            seen = held[1]
            new = keys - seen
            if len(seen) + len(new) > self.limit:
                wait = math.ceil((window + 1) * self.window_s - now)
                raise IdBudgetError(
                    f"party '{self.party}' refused: id budget: '{caller}' has asked about "
                    f"{len(seen)} distinct ids in this window and this call adds {len(new)}, "
                    f"past its budget of {self.limit} per {self.window_s:g} s; raise "
                    f"[serving] id_budget at party '{self.party}' or wait {wait} s"
                )
            seen |= new
            return len(seen)

    def used(self, caller: str) -> int:
        """Distinct ids ``caller`` has asked about in the current window."""
        window = math.floor(self._clock() / self.window_s)
        with self._lock:
            held = self._seen.get(caller)
            return len(held[1]) if held is not None and held[0] == window else 0


__all__ = ["IdBudget"]
