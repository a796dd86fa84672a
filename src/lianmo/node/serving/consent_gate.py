"""Consent at serving time: only ids with consent valid now for the model's purpose.

A served model scores an id only where every party holds a consent for the purpose the
model was trained for (issue 22's rule for scoring jobs, applied per request). The
register is read again when its file changes (checked every ``refresh_s``) and the valid
set recomputed every ``consent_refresh_s`` so that expiries take effect; a withdrawal
reaches serving within those times. Without a register every id passes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from lianmo.config import DatasetEntry
from lianmo.data.consent import ConsentRegister, read_register


class ConsentGate:
    def __init__(
        self,
        party: str,
        entry: DatasetEntry,
        purpose: str | None,
        *,
        refresh_s: float = 5.0,
        consent_refresh_s: float = 60.0,
    ) -> None:
        self.party = party
        self.entry = entry
        self.purpose = purpose
        self.refresh_s = refresh_s
        self.consent_refresh_s = consent_refresh_s
        self._lock = threading.Lock()
        self._register: ConsentRegister | None = None
        self._stamp: tuple[int, int] | None = None
        self._valid: frozenset[str] = frozenset()
        self._computed = -float("inf")
        self._checked = -float("inf")
        if entry.consent is not None:
            self._refresh(time.monotonic(), force=True)

    @property
    def applies(self) -> bool:
        return self.entry.consent is not None

    def allowed(self, ids: Sequence[str]) -> np.ndarray:
        """One bool per id: consent valid now for the purpose (all True without a register)."""
        if self.entry.consent is None:
            return np.ones(len(ids), dtype=bool)
        self._refresh(time.monotonic())
        valid = self._valid
        return np.fromiter((i in valid for i in ids), dtype=bool, count=len(ids))

    def _refresh(self, now: float, *, force: bool = False) -> None:
        assert self.entry.consent is not None
        if (
            not force
            and now - self._checked < self.refresh_s
            and (now - self._computed < self.consent_refresh_s)
        ):
            return
        with self._lock:
            path = self.entry.consent
            if force or now - self._checked >= self.refresh_s:
                self._checked = now
                st = os.stat(path)
                stamp = (st.st_size, st.st_mtime_ns)
                if stamp != self._stamp:
                    self._register = read_register(str(path), self.party)
                    self._stamp = stamp
                    self._computed = -float("inf")
            if now - self._computed >= self.consent_refresh_s or force:
                assert self._register is not None
                valid = self._register.valid_ids(str(self.purpose), datetime.now(UTC))
                self._valid = frozenset(i.decode() for i in valid)
                self._computed = now
