"""Append-only, hash-chained, signed audit log of one party in one job (JSON lines).

A record is one JSON object per line::

    {"format": "lianmo.audit/v3", "seq": 7, "party": "broker", "job_id": "credit-demo",
     "kind": "message", ...fields..., "time": 1763800000.123456,
     "prev": "<hash of record 6>", "hash": "<sha256>", "sig": "<Ed25519 signature>"}

``hash`` is the sha256 of the record's canonical JSON (sorted keys, no spaces) without
``hash`` and ``sig``; ``prev`` chains it to the record before (the first links to 64
zeros). The wall-clock ``time`` is chained content: a timestamp cannot be moved without
re-chaining every later record, which the heads the party's peers logged then expose
(below), and the log never lets time go backwards. ``sig`` signs ``[hash, time]``
(canonical JSON) with the party's Ed25519 key. The legacy format ``lianmo.audit/v2``
(before issue 18) kept ``time`` outside the chain; :func:`record_digest` still reads it.

Message records hold what crossed the wire (peer, round, tag, sequence number, payload
type, size, sha256); a received one also holds ``peer_head``, the sender's audit head
when it sent the message (carried in the envelope), which anchors the sender's log in
the receiver's. The payload bytes themselves go to a content-addressed
:class:`~lianmo.audit.store.PayloadStore` beside the log. See ``docs/audit.md`` for
every record kind.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

from lianmo.audit.signing import SigningKey
from lianmo.audit.store import PayloadStore
from lianmo.errors import LianmoError
from lianmo.transport.envelope import Direction, Envelope

FORMAT = "lianmo.audit/v3"
LEGACY_FORMAT = "lianmo.audit/v2"
GENESIS = "0" * 64
UNHASHED = frozenset({"hash", "sig"})
_UNHASHED_BY_FORMAT = {FORMAT: UNHASHED, LEGACY_FORMAT: UNHASHED | {"time"}}

Scalar = str | int | float | bool | None
RESERVED = frozenset({"format", "seq", "party", "job_id", "kind", "prev", "time"} | UNHASHED)


def canonical(value: object) -> bytes:
    """The canonical JSON bytes records are hashed and signed as."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def record_digest(record: dict[str, object]) -> str:
    """sha256 hex of a record's chained content: everything but hash and sig.

    A record of the legacy format ``lianmo.audit/v2`` leaves its ``time`` out too.
    """
    unhashed = _UNHASHED_BY_FORMAT.get(str(record.get("format")), UNHASHED)
    return hashlib.sha256(
        canonical({k: v for k, v in record.items() if k not in unhashed})
    ).hexdigest()


def signed_bytes(record: dict[str, object]) -> bytes:
    """What a record's ``sig`` signs: its hash and its timestamp."""
    return canonical([record.get("hash"), record.get("time")])


class AuditLog:
    """Appends records to ``path``, chaining and signing each one; thread-safe.

    Without ``signer`` the records are chained but unsigned and without ``store`` no
    payloads are kept: that is audit level ``chain``, which ``lianmo audit verify``
    reports as unverifiable and replay cannot use.
    """

    def __init__(
        self,
        path: Path,
        *,
        party: str,
        job_id: str,
        signer: SigningKey | None = None,
        store: PayloadStore | None = None,
    ) -> None:
        self.path = path
        self.party = party
        self.job_id = job_id
        self.signer = signer
        self.store = store
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS
        self._time = 0.0
        if path.exists():  # continue only a chain that holds: never extend a tampered log
            self._seq = verify_chain(path)
            for record in read_records(path):
                if record.get("format") != FORMAT:
                    raise LianmoError(
                        f"audit log {path} was written by an older lianmo (format "
                        f"{record.get('format')!r}); finish the job with that version or "
                        "start it afresh"
                    )
                self._prev = str(record["hash"])
                self._time = float(t.cast(float, record["time"]))

    @classmethod
    def reopen(
        cls,
        path: Path,
        position: t.Mapping[str, object],
        *,
        party: str,
        job_id: str,
        signer: SigningKey | None = None,
        store: PayloadStore | None = None,
    ) -> AuditLog:
        """Continue a log from a checkpoint's :meth:`position`, cutting off what followed.

        The records after the checkpoint belong to work the party redoes on resuming;
        it appends them again, so the chain stays one line of history.
        """
        size = int(t.cast(int, position["bytes"]))
        try:
            with path.open("r+b") as fh:
                fh.truncate(size)
        except OSError as exc:
            raise LianmoError(f"cannot resume the audit log {path}: {exc}") from exc
        log = cls(path, party=party, job_id=job_id, signer=signer, store=store)
        if log._seq != position["records"] or log._prev != position["head"]:
            raise LianmoError(
                f"audit log {path} does not end where the checkpoint says (record "
                f"{position['records']}); the log or the checkpoint was changed"
            )
        return log

    def position(self) -> dict[str, object]:
        """Records so far, the head hash and the file size (for checkpoints)."""
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            return {"records": self._seq, "head": self._prev, "bytes": size}

    @property
    def head(self) -> str:
        """Hash of the last record: publish it and nobody can drop records off the end."""
        with self._lock:
            return self._prev

    def record(self, kind: str, **fields: Scalar) -> None:
        """Append one record of ``kind`` (decision, checkpoint, model, ...)."""
        clash = RESERVED.intersection(fields)
        if clash:
            raise LianmoError(
                f"audit record '{kind}' of party '{self.party}' has field(s) {sorted(clash)}, "
                "which the log reserves for its own metadata; rename them"
            )
        with self._lock:
            # never backwards, even if the wall clock is set back: verify checks the order
            self._time = max(round(time.time(), 6), self._time)
            entry: dict[str, object] = {
                "format": FORMAT,
                "seq": self._seq,
                "party": self.party,
                "job_id": self.job_id,
                "kind": kind,
                **fields,
                "time": self._time,
                "prev": self._prev,
            }
            entry["hash"] = record_digest(entry)
            if self.signer is not None:
                entry["sig"] = self.signer.sign(signed_bytes(entry))
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(canonical(entry).decode() + "\n")
            self._seq += 1
            self._prev = str(entry["hash"])

    def keep(self, data: bytes) -> str | None:
        """Put ``data`` in the payload store (if this log keeps payloads); its sha256 hex."""
        return None if self.store is None else self.store.put(data)

    def on_message(self, direction: Direction, envelope: Envelope) -> None:
        """Channel observer: keep the payload, then log the message.

        A received message's record keeps the sender's audit head from its envelope
        (``peer_head``): verify checks it is a record of the sender's log before the send.
        """
        digest = envelope.sha256.hex()
        if self.store is not None:
            self.store.put(envelope.payload, digest)
        anchor = {} if direction == "sent" else {"peer_head": envelope.audit_head}
        self.record(
            "message",
            direction=direction,
            peer=envelope.receiver if direction == "sent" else envelope.sender,
            round=envelope.round,
            tag=envelope.tag,
            msg_seq=envelope.seq,
            payload_type=envelope.payload_type,
            size=len(envelope.payload),
            sha256=digest,
            **anchor,
        )


def read_records(path: Path) -> Iterator[dict[str, object]]:
    """Yield the records of a log file in order; LianmoError naming a line that is not JSON."""
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise LianmoError(
                    f"audit log {path} line {line_no} is not a JSON record ({exc}); the "
                    "file was cut short or edited"
                ) from exc
            if not isinstance(record, dict):
                raise LianmoError(f"audit log {path} line {line_no} is not a JSON object")
            yield record


def chain_problem(record: dict[str, object], seq: int, prev: str, fmt: str = FORMAT) -> str | None:
    """What is wrong with ``record`` as record number ``seq`` after hash ``prev``, or None.

    ``fmt`` is the format of the log's first record: every record must have it.
    """
    if fmt not in _UNHASHED_BY_FORMAT:
        return (
            f"has format {fmt!r}, which this lianmo does not read (it reads {FORMAT!r} "
            f"and {LEGACY_FORMAT!r})"
        )
    if record.get("format") != fmt:
        return f"has format {record.get('format')!r}, not {fmt!r}"
    if record.get("seq") != seq:
        return (
            f"carries seq {record.get('seq')!r} where {seq} belongs: records were "
            "deleted, inserted or reordered"
        )
    if record.get("prev") != prev:
        return "does not link to the record before it: a record was deleted, inserted or reordered"
    if record.get("hash") != record_digest(record):
        return "was altered: its content does not match its hash"
    return None


def verify_chain(path: Path) -> int:
    """Check every record's hash and link (not signatures); return the record count."""
    prev, count, fmt = GENESIS, 0, FORMAT
    for record in read_records(path):
        fmt = str(record.get("format")) if count == 0 else fmt
        problem = chain_problem(record, count, prev, fmt)
        if problem:
            raise LianmoError(f"audit log {path}: record {count} {problem}")
        prev, count = str(record["hash"]), count + 1
    return count


class MessageStats:
    """Channel observer counting messages and payload bytes per direction."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = {"sent": 0, "received": 0}
        self.bytes = {"sent": 0, "received": 0}

    def on_message(self, direction: Direction, envelope: Envelope) -> None:
        with self._lock:
            self.counts[direction] += 1
            self.bytes[direction] += len(envelope.payload)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """The counts so far (for checkpoints)."""
        with self._lock:
            return {"counts": dict(self.counts), "bytes": dict(self.bytes)}

    def restore(self, snapshot: t.Mapping[str, t.Mapping[str, int]]) -> None:
        """Continue counting from a checkpoint's :meth:`snapshot`."""
        with self._lock:
            self.counts = {k: int(snapshot["counts"][k]) for k in ("sent", "received")}
            self.bytes = {k: int(snapshot["bytes"][k]) for k in ("sent", "received")}

    def summary(self) -> dict[str, int]:
        with self._lock:
            return {
                "messages_sent": self.counts["sent"],
                "bytes_sent": self.bytes["sent"],
                "messages_received": self.counts["received"],
                "bytes_received": self.bytes["received"],
            }
