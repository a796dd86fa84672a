"""Content-addressed store of message payloads beside a party's audit log.

``payloads/<sha256 hex>`` holds the exact bytes of one message payload that crossed the
wire, sent or received. The log records only the digest, so it stays small, while
replay and review get the real inputs. A payload is written once (temporary file, then
rename), so a crash never leaves a partial file under a digest name.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from lianmo.errors import LianmoError

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


class PayloadStore:
    """Payload bytes by sha256; ``put`` is idempotent and thread-safe."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, digest: str) -> Path:
        if not _DIGEST_RE.match(digest):
            raise LianmoError(f"'{digest}' is not a sha256 hex digest")
        return self.directory / digest

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Keep ``data``; return its sha256 hex (pass it if known, to skip rehashing)."""
        digest = digest or hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = target.with_name(f".{digest}.{os.getpid()}.{id(data)}.tmp")
        with tmp.open("wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
        return digest

    def get(self, digest: str) -> bytes:
        """The payload stored under ``digest``; LianmoError if absent."""
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise LianmoError(
                f"payload {digest[:16]}... is missing from {self.directory}"
            ) from None

    def check(self, digest: str) -> str | None:
        """None if the payload is present and intact, else what is wrong with it."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            return f"payload {digest[:16]}... is missing from the store {self.directory}"
        if hashlib.sha256(data).hexdigest() != digest:
            return f"payload {digest[:16]}... in the store {self.directory} was altered"
        return None
