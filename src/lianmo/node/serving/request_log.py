"""The record of every online request a party answered: per UTC day, salted ids, sealed.

Each ``Score`` call at a guest and each ``Part`` call at a host appends one JSON line to
``STATE_DIR/serving/requests-YYYY-MM-DD.jsonl`` (the UTC day the call ended)::

    {"time": 1765000000.123456, "call": "Part", "caller": "broker", "model": "credit",
     "version": "credit-2026-12", "outcome": "ok", "n": 2,
     "ids": ["<blake2b-128(salt, id)>", ...], "answered": "10"}

``answered`` holds one character per id: 1 if this party answered for it (a host: it
had a usable row and sent its part; a guest: the id got a score). ``outcome`` is ``ok``,
``refused`` (not the model's guest, another version, not a listed client),
``over_budget`` (the caller's id budget, :mod:`lianmo.node.serving.id_budget`) or
``error``. An id is written as the salted hash of issue 22's subjects files
(:func:`lianmo.node.data_use.subject_key`), with one random salt per day kept in the
party's ``secrets_dir`` (``serving/salt-YYYY-MM-DD``, mode 0600), so the record alone
says which requests there were and how large, and nothing about who was scored.

Requests never wait for the disk: a call only queues its entry; a background thread
hashes and appends the queue every second (or at once past 1,000 queued entries), and at
close. A crash loses the entries queued since the last write (at most about a second of
requests), and a power cut also what the operating system had not yet written.

Records are not signed one by one. When a day's file is closed (the day ended, or the
node closes) its digest goes into a signed, hash-chained log,
``STATE_DIR/serving/requests.jsonl``, in the format of the promotion log
(:mod:`lianmo.node.serving.signed_log`): ``requests_start`` names the signing key, then
one ``requests_sealed`` record per seal with the day, the file's size in bytes, its line
count, its sha256 and the sha256 of the day's salt. A file that grows again (a restart
on the same day) is sealed again, as a whole; a seal never covers a file whose sealed
part was altered. Days left unsealed by a crash are sealed when the node starts serving
again.

Retention: with ``[retention] request_record_days`` the node removes a day's file and its
salt once the day ended that many days ago (checked at start and hourly). It first makes
sure the day is sealed as it is, then logs a signed ``requests_pruned`` record (the day,
the seal it removes the file of, its size and sha256), then deletes. The data-subject
answer then lists the day as pruned: the party can no longer tell. A file that is not
the one its seal names (altered) is left in place, with an error in the node log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
import typing as t
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lianmo.audit.signing import SigningKey
from lianmo.config import PartyConfig
from lianmo.errors import ConfigError, LianmoError
from lianmo.fileio import write_atomic
from lianmo.node.data_use import subject_key
from lianmo.node.serving.signed_log import append, check_log

_LOG = logging.getLogger("lianmo.node")
RECORD_DIR = "serving"
SEALS_FILE = "requests.jsonl"
LOG_ID = "serving-requests"  # the seal log's job_id field
START = "requests_start"
SEAL = "requests_sealed"
PRUNED = "requests_pruned"
DAY_PREFIX, DAY_SUFFIX = "requests-", ".jsonl"
FLUSH_S = 1.0
FLUSH_ENTRIES = 1000
PRUNE_EVERY_S = 3600.0
DAY_S = 86400.0
#: what became of a request, as its line says
OUTCOMES = ("ok", "refused", "over_budget", "error")


def record_dir(config: PartyConfig) -> Path:
    return config.state_dir / RECORD_DIR


def seals_path(config: PartyConfig) -> Path:
    return record_dir(config) / SEALS_FILE


def day_path(config: PartyConfig, day: str) -> Path:
    return record_dir(config) / f"{DAY_PREFIX}{day}{DAY_SUFFIX}"


def salt_path(config: PartyConfig, day: str) -> Path:
    return config.secrets_path / RECORD_DIR / f"salt-{day}"


def day_of(when: float) -> str:
    """The UTC day of wall-clock time ``when``, as YYYY-MM-DD."""
    return datetime.fromtimestamp(when, UTC).date().isoformat()


def recorded_days(config: PartyConfig) -> list[str]:
    """The days with a request file, oldest first."""
    root = record_dir(config)
    if not root.is_dir():
        return []
    names = (p.name for p in root.glob(f"{DAY_PREFIX}*{DAY_SUFFIX}"))
    return sorted(n[len(DAY_PREFIX) : -len(DAY_SUFFIX)] for n in names)


def read_salt(config: PartyConfig, day: str) -> bytes | None:
    """The salt of ``day``'s file (None: missing)."""
    try:
        return salt_path(config, day).read_bytes()
    except FileNotFoundError:
        return None


def last_seals(
    config: PartyConfig,
) -> tuple[dict[str, tuple[int, dict[str, object]]], str | None]:
    """Per day its latest seal (record number, record) from the verified seal log, and
    what is wrong with the log (None: it verifies; seals after a bad record are left out)."""
    records, problem = check_log(seals_path(config), party=config.name, log_id=LOG_ID, start=START)
    seals = {str(r.get("day")): (seq, r) for seq, r in enumerate(records) if r.get("kind") == SEAL}
    return seals, problem


def pruned_days(config: PartyConfig) -> dict[str, tuple[int, dict[str, object]]]:
    """Per day its ``requests_pruned`` record (record number, record), from the verified
    part of the seal log."""
    records, _ = check_log(seals_path(config), party=config.name, log_id=LOG_ID, start=START)
    return {str(r.get("day")): (seq, r) for seq, r in enumerate(records) if r.get("kind") == PRUNED}


def day_end(day: str) -> float:
    """The wall-clock time at which UTC day ``day`` (YYYY-MM-DD) ended."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() + DAY_S


def sealed_part_ok(body: bytes, seal: dict[str, object]) -> bool:
    """True if ``body`` still begins with the bytes ``seal`` covers."""
    size = seal.get("bytes")
    return (
        isinstance(size, int)
        and len(body) >= size
        and hashlib.sha256(body[:size]).hexdigest() == seal.get("sha256")
    )


def sealing_key(config: PartyConfig) -> SigningKey | None:
    """The party's audit signing key, which seals its request record (None: audit level
    'chain', or no key: the record is kept, but its days are not sealed)."""
    if config.audit_level != "full":
        return None
    try:
        return SigningKey.load(config.signing_key_path, party=config.name)
    except ConfigError as exc:
        _LOG.warning("the online request record will not be sealed: %s", exc)
        return None


@dataclass(frozen=True, slots=True)
class _Entry:
    time: float
    call: str
    caller: str
    model: str
    version: str
    outcome: str
    ids: tuple[str, ...]
    answered: str


class RequestLog:
    """Queues each request's entry and writes them in the background; seals each day.

    ``signer`` is the party's audit signing key (None: days are recorded, never sealed,
    and no answer from them is proven). ``clock`` gives wall-clock seconds (tests inject
    their own).
    """

    def __init__(
        self,
        config: PartyConfig,
        signer: SigningKey | None,
        *,
        clock: Callable[[], float] = time.time,
        flush_s: float = FLUSH_S,
        keep_days: float | None = None,
    ) -> None:
        self.config = config
        self.keep_days = keep_days  # None: keep every day
        self._next_prune = 0.0
        self._signer = signer
        self._clock = clock
        self._flush_s = flush_s
        self._lock = threading.Lock()  # the queue
        self._write_lock = threading.Lock()  # the files and the seal log: one writer
        self._queue: list[_Entry] = []
        self._open_days: set[str] = set()  # written since the last seal
        self._salts: dict[str, bytes] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._warned = False  # said once that there is no key to seal with

    def add(
        self,
        call: str,
        caller: str,
        model: str,
        version: str,
        ids: Sequence[str],
        answered: Sequence[bool] | None,
        outcome: str,
    ) -> None:
        """Queue one request's entry (``answered``: one flag per id; None: none answered)."""
        flags = "".join("1" if a else "0" for a in answered) if answered is not None else ""
        flags = flags or "0" * len(ids)
        with self._lock:
            entry = _Entry(self._clock(), call, caller, model, version, outcome, tuple(ids), flags)
            self._queue.append(entry)
            full = len(self._queue) >= FLUSH_ENTRIES
        self.start()
        if self._closed:  # a request that ended after close: written at once
            self.flush()
            self._seal_open()
        elif full:
            self._wake.set()

    def start(self) -> None:
        """Start the background writer (also started by the first request): it seals
        what a crash left unsealed, prunes old days, then writes every ``flush_s``."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="request-record", daemon=True)
        self._thread.start()

    def flush(self) -> None:
        """Write the queued entries; seal the days that have ended."""
        with self._write_lock:
            with self._lock:
                today = day_of(self._clock())  # entries queued from now on are today's or later
                entries, self._queue = self._queue, []
            self._write(entries)
            for day in sorted(d for d in self._open_days if d < today):
                self._seal(day, "rollover")
                self._open_days.discard(day)

    def close(self) -> None:
        """Write what is queued and seal every day written to (the node is closing)."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        self._seal_open()

    # -- writing -----------------------------------------------------------------------

    def _run(self) -> None:
        with self._write_lock:
            self._seal_leftovers()
        while not self._closed:
            try:
                if self.keep_days is not None and self._clock() >= self._next_prune:
                    self._next_prune = self._clock() + PRUNE_EVERY_S
                    self.prune()
            except Exception:  # noqa: BLE001 - the recorder must outlive one bad prune
                _LOG.exception("party '%s': pruning the online request record failed", self._name)
            self._wake.wait(self._flush_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the recorder must outlive one bad write
                _LOG.exception("party '%s': writing the online request record failed", self._name)

    # -- retention ---------------------------------------------------------------------

    def prune(self) -> list[str]:
        """Remove the day files (and salts) whose day ended ``keep_days`` ago or more; each
        is sealed as it is first and its removal logged, signed. Returns the days removed.

        Without ``keep_days`` or a signing key nothing is removed: an unsealed day could
        not be shown to have been removed as it was.
        """
        if self.keep_days is None or self._signer is None:
            return []
        limit = self._clock() - self.keep_days * DAY_S
        removed: list[str] = []
        with self._write_lock:
            old = [d for d in recorded_days(self.config) if day_end(d) <= limit]
            if not old:
                return removed
            found = last_seals(self.config)
            for day in old:
                if self._prune_day(day, found):
                    removed.append(day)
        if removed:
            _LOG.info(
                "party '%s': pruned the online request record of %d day(s), %s to %s "
                "([retention] request_record_days = %g)",
                *(self._name, len(removed), removed[0], removed[-1], self.keep_days),
            )
        return removed

    def _prune_day(
        self, day: str, found: tuple[dict[str, tuple[int, dict[str, object]]], str | None]
    ) -> bool:
        path = day_path(self.config, day)
        seals, problem = found
        seal = seals.get(day)
        if problem is None and (seal is None or seal[1].get("bytes") != path.stat().st_size):
            self._seal(day, "prune", found)  # sealed as it is, first
            seals, problem = last_seals(self.config)
            seal = seals.get(day)
        body = path.read_bytes()
        if problem is not None or seal is None or not sealed_part_ok(body, seal[1]):
            _LOG.error(
                "party '%s': %s is not pruned: %s",
                self._name,
                path.name,
                problem or "it is not the file its seal names (altered?); keep it for review",
            )
            return False
        append(
            seals_path(self.config),
            party=self._name,
            log_id=LOG_ID,
            start=START,
            signer=t.cast(SigningKey, self._signer),
            kind=PRUNED,
            day=day,
            file=path.name,
            seal=seal[0],
            bytes=len(body),
            sha256=str(seal[1].get("sha256")),
            keep_days=float(t.cast(float, self.keep_days)),
        )
        path.unlink()
        salt_path(self.config, day).unlink(missing_ok=True)
        self._salts.pop(day, None)
        self._open_days.discard(day)
        return True

    @property
    def _name(self) -> str:
        return self.config.name

    def _write(self, entries: list[_Entry]) -> None:
        days: dict[str, list[str]] = {}
        for e in entries:
            day = day_of(e.time)
            salt = self._salt(day)
            line = {
                "time": round(e.time, 6),
                "call": e.call,
                "caller": e.caller,
                "model": e.model,
                "version": e.version,
                "outcome": e.outcome,
                "n": len(e.ids),
                "ids": [subject_key(salt, i.encode("utf-8")) for i in e.ids],
                "answered": e.answered,
            }
            days.setdefault(day, []).append(json.dumps(line, separators=(",", ":")) + "\n")
        for day, lines in days.items():
            path = day_path(self.config, day)
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as fh:
                    fh.write("".join(lines))
            except OSError as exc:
                _LOG.error(
                    "party '%s': %d online request entries lost, cannot write %s: %s",
                    *(self._name, len(lines), path, exc),
                )
                continue
            self._open_days.add(day)

    def _salt(self, day: str) -> bytes:
        salt = self._salts.get(day) or read_salt(self.config, day)
        if salt is None:
            salt = secrets.token_bytes(32)  # not a job's randomness: nothing replays it
            path = salt_path(self.config, day)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(path, salt, mode=0o600)
        self._salts[day] = salt
        return salt

    # -- sealing -----------------------------------------------------------------------

    def _seal_open(self) -> None:
        with self._write_lock:
            for day in sorted(self._open_days):
                self._seal(day, "close")
            self._open_days.clear()

    def _seal_leftovers(self) -> None:
        """Seal the files a crash left unsealed (or sealed short of their end)."""
        found = last_seals(self.config)  # read and verified once for every day
        for day in recorded_days(self.config):
            self._seal(day, "start", found)

    def _seal(
        self,
        day: str,
        at: str,
        found: tuple[dict[str, tuple[int, dict[str, object]]], str | None] | None = None,
    ) -> None:
        path = day_path(self.config, day)
        if self._signer is None:
            if not self._warned:
                self._warned = True
                _LOG.warning(
                    "party '%s': the online request record is not sealed: the node has no "
                    "audit signing key (audit level '%s'); answers from it cannot be proven",
                    *(self._name, self.config.audit_level),
                )
            return
        seals, problem = found or last_seals(self.config)
        if problem is not None:
            _LOG.error(
                "party '%s': the seal log %s %s; %s is not sealed until it is restored",
                *(self._name, seals_path(self.config), problem, path.name),
            )
            return
        last = seals.get(day)
        try:
            if last is not None and path.stat().st_size == last[1]["bytes"]:
                return  # sealed as it is (not read again: a year of days at every start)
            body = path.read_bytes()
        except OSError as exc:
            _LOG.error("party '%s': cannot seal %s: %s", self._name, path, exc)
            return
        if last is not None:
            if not sealed_part_ok(body, last[1]):
                _LOG.error(
                    "party '%s': %s is not the file record %d of %s sealed: it was altered; "
                    "it is not sealed again",
                    *(self._name, path.name, last[0], SEALS_FILE),
                )
                return
        salt = self._salt(day)
        try:
            append(
                seals_path(self.config),
                party=self._name,
                log_id=LOG_ID,
                start=START,
                signer=self._signer,
                kind=SEAL,
                day=day,
                file=path.name,
                bytes=len(body),
                records=body.count(b"\n"),
                sha256=hashlib.sha256(body).hexdigest(),
                salt_sha256=hashlib.sha256(salt).hexdigest(),
                at=at,
            )
        except (OSError, LianmoError) as exc:
            _LOG.error("party '%s': cannot seal %s: %s", self._name, path.name, exc)


__all__ = [
    "OUTCOMES",
    "RequestLog",
    "day_of",
    "day_path",
    "day_end",
    "last_seals",
    "pruned_days",
    "read_salt",
    "record_dir",
    "recorded_days",
    "salt_path",
    "sealed_part_ok",
    "sealing_key",
    "seals_path",
]
