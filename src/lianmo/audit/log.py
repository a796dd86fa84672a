"""Append-only, hash-chained audit log of one party in one job (JSON lines).

Each record carries ``prev`` (the previous record's hash) and ``hash`` = sha256 of the
record's canonical JSON without ``hash``. Message records hold what crossed the wire
(peer, round, tag, sequence number, payload type, size, sha256), never payload bytes
or plaintexts. The format leaves room for a per-record signature field, which the
verify-and-replay work adds; ``verify_chain`` already checks the chain.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from lianmo.errors import LianmoError
from lianmo.transport.envelope import Direction, Envelope

FORMAT = "lianmo.audit/v1"
GENESIS = "0" * 64

Scalar = str | int | float | bool | None
RESERVED = frozenset({"format", "seq", "time", "party", "job_id", "kind", "prev", "hash"})


def _digest(record: dict[str, object]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


class AuditLog:
    """Appends records to ``path``, chaining each to the one before; thread-safe."""

    def __init__(self, path: Path, *, party: str, job_id: str) -> None:
        self.path = path
        self.party = party
        self.job_id = job_id
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS
        if path.exists():  # continue only a chain that verifies: never extend a tampered log
            self._seq = verify_chain(path)
            for record in read_records(path):
                self._prev = str(record["hash"])

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
            entry: dict[str, object] = {
                "format": FORMAT,
                "seq": self._seq,
                "time": round(time.time(), 6),
                "party": self.party,
                "job_id": self.job_id,
                "kind": kind,
                **fields,
                "prev": self._prev,
            }
            entry["hash"] = _digest(entry)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
            self._seq += 1
            self._prev = str(entry["hash"])

    def on_message(self, direction: Direction, envelope: Envelope) -> None:
        """Channel observer: log every message sent or received."""
        self.record(
            "message",
            direction=direction,
            peer=envelope.receiver if direction == "sent" else envelope.sender,
            round=envelope.round,
            tag=envelope.tag,
            msg_seq=envelope.seq,
            payload_type=envelope.payload_type,
            size=len(envelope.payload),
            sha256=envelope.sha256.hex(),
        )


def read_records(path: Path) -> Iterator[dict[str, object]]:
    """Yield the records of a log file in order."""
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise LianmoError(f"audit log {path} line {line_no} is not JSON: {exc}") from exc


def verify_chain(path: Path) -> int:
    """Check every record's hash and link; return the record count or name the first bad one."""
    prev = GENESIS
    count = 0
    for count, record in enumerate(read_records(path), start=1):
        if record.get("seq") != count - 1:
            raise LianmoError(f"audit log {path}: record {count - 1} has seq {record.get('seq')}")
        if record.get("prev") != prev:
            raise LianmoError(
                f"audit log {path}: record {count - 1} does not link to the one before"
            )
        if record.get("hash") != _digest(record):
            raise LianmoError(f"audit log {path}: record {count - 1} was altered (hash mismatch)")
        prev = str(record["hash"])
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

    def summary(self) -> dict[str, int]:
        with self._lock:
            return {
                "messages_sent": self.counts["sent"],
                "bytes_sent": self.bytes["sent"],
                "messages_received": self.counts["received"],
                "bytes_received": self.bytes["received"],
            }
