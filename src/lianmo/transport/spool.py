"""A job's inbound messages on disk, written before they are acknowledged.

A node acknowledges a message only once it is in the spool: a node killed at any moment
restarts with every message its peers consider delivered, so nobody has to resend,
and a party resuming from a checkpoint reads the messages after it again from here.
Payloads stream to disk chunk by chunk, so a peer sending a huge payload costs disk
(bounded by the per-message and per-job limits), not memory.

Layout: ``DIR/SENDER/SEQ.msg``, one file per message: a line of JSON with the envelope
header, then the payload bytes. Files are written under a temporary name, fsynced and
renamed, so a file with a final name is always complete; temporaries left by a killed
node are removed when the spool is opened again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lianmo.errors import ProtocolError, TransportError
from lianmo.transport.envelope import Envelope

_SUFFIX = ".msg"


@dataclass(frozen=True, slots=True)
class Spooled:
    """A message held in the spool: its envelope without payload, and where the payload is."""

    header: Envelope  # payload == b""; sha256 is the payload's digest
    path: Path
    size: int

    def load(self) -> Envelope:
        """The full envelope, payload read back from disk and checked against its digest."""
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise TransportError(
                f"the spooled {self.header.describe()} cannot be read ({exc}); "
                "the node's state directory was changed underneath it"
            ) from exc
        payload = raw[raw.index(b"\n") + 1 :]
        if hashlib.sha256(payload).digest() != self.header.sha256:
            raise TransportError(
                f"the spooled {self.header.describe()} at {self.path} is corrupted; "
                "restore the node's state directory from backup or restart the job"
            )
        return dataclasses.replace(self.header, payload=payload)


class Spool:
    """The inbound messages of one party in one job, durable and streamed to disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, header: Envelope, datas: Iterable[bytes], *, expected_size: int) -> Spooled:
        """Stream one message's payload to disk and check its size and sha256.

        ``header`` carries the digest the sender claimed (``header.sha256``); a payload
        that does not match, or whose size differs from ``expected_size``, is refused
        and nothing is left behind.
        """
        folder = self.directory / header.sender
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = folder / f"{header.seq:012d}{_SUFFIX}"
        tmp = folder / f".{header.seq:012d}.{os.getpid()}.{id(datas)}.tmp"
        digest, size = hashlib.sha256(), 0
        try:
            with tmp.open("wb") as fh:
                fh.write(_header_line(header))
                for data in datas:
                    digest.update(data)
                    size += len(data)
                    fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            check_payload(header, size, digest.digest(), expected_size)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        bare = dataclasses.replace(header, payload=b"")
        return Spooled(header=bare, path=final, size=size)

    def load(self) -> Iterator[Spooled]:
        """Every complete message, per sender in sequence order; removes abandoned temporaries."""
        if not self.directory.exists():
            return
        for folder in sorted(p for p in self.directory.iterdir() if p.is_dir()):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
            for path in sorted(folder.glob(f"*{_SUFFIX}")):
                yield _read_spooled(path)


def check_payload(header: Envelope, size: int, sha256: bytes, expected_size: int) -> None:
    """Refuse a payload whose size or digest is not what its header announced."""
    if size != expected_size:
        raise ProtocolError(
            f"{header.describe()} is truncated or oversized: header says "
            f"{expected_size} bytes, received {size}"
        )
    if sha256 != header.sha256:
        raise ProtocolError(
            f"{header.describe()} fails its sha256 check: the payload was corrupted in transit"
        )


def _header_line(header: Envelope) -> bytes:
    fields = {f.name: getattr(header, f.name) for f in dataclasses.fields(header)}
    fields.pop("payload")
    fields["sha256"] = header.sha256.hex()
    return json.dumps(fields, sort_keys=True).encode() + b"\n"


def _read_spooled(path: Path) -> Spooled:
    try:
        with path.open("rb") as fh:
            line = fh.readline()
            size = path.stat().st_size - len(line)
        fields = json.loads(line)
        fields["sha256"] = bytes.fromhex(fields["sha256"])
        header = Envelope(**fields, payload=b"")
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise TransportError(
            f"spooled message {path} is unreadable ({exc}); the node's state directory "
            "was changed underneath it: restore it or restart the job"
        ) from exc
    return Spooled(header=header, path=path, size=size)
