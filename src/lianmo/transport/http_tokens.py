"""Bearer tokens of the HTTP front: a file of their sha256 digests, never the tokens.

A token is 32 random bytes from :mod:`secrets` (``lmt_`` and 43 URL-safe characters). It is
shown once, when it is made, and only its sha256 is kept, one line per token::

    # lianmo http-front tokens: sha256 of each token, then its name
    3b0c...e1  engine-prod

A plain sha256 (no salt, no slow hash) is enough for 256-bit random tokens: nobody can
guess one from its digest. Comparison is constant-time and goes over every line. The
front reads the file again when it changes, so deleting a line revokes a token at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from lianmo.errors import ConfigError

TOKEN_PREFIX = "lmt_"
TOKEN_BYTES = 32
HEADER = "# lianmo http-front tokens: sha256 of each token, then its name\n"
_LINE_RE = re.compile(r"([0-9a-f]{64})\s+([A-Za-z0-9][A-Za-z0-9_.@-]{0,63})")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_HOW = "add tokens with `lianmo http-front token --tokens FILE --name NAME`"


@dataclass(frozen=True, slots=True)
class TokenEntry:
    sha256: str  # hex digest of the token
    name: str  # who holds it: shown in the front's log, never the token


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_tokens(path: Path) -> tuple[TokenEntry, ...]:
    """The entries of a tokens file; a line that is not ``SHA256 NAME`` is refused.

    The message names the file and line number but never quotes the line: it might be a
    token pasted in by mistake.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the HTTP front's tokens file {path}: {exc}") from exc
    entries: list[TokenEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE_RE.fullmatch(line)
        if match is None:
            raise ConfigError(
                f"line {number} of the tokens file {path} is not a token's sha256 (64 hex "
                "digits) and a name; the file holds digests only, never tokens: delete the "
                f"line and {_HOW}"
            )
        entries.append(TokenEntry(match[1], match[2]))
    names = [e.name for e in entries]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"the tokens file {path} names {repeated} more than once; keep one each")
    return tuple(entries)


def add_token(path: Path, name: str) -> str:
    """Make a token named ``name``, append its digest to ``path`` (mode 0600), return it."""
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"token name {name!r} is not a name: letters, digits, '_', '.', '@', '-' (at most "
            "64 characters); it says who holds the token, in the front's log"
        )
    existing = read_tokens(path) if path.exists() else ()
    if any(e.name == name for e in existing):
        raise ConfigError(
            f"the tokens file {path} already has a token named '{name}'; choose another name, "
            "or delete that line first to replace it"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    new = not path.exists() or path.stat().st_size == 0
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write((HEADER if new else "") + f"{token_digest(token)}  {name}\n")
    return token


class TokenFile:
    """The tokens a front accepts, from ``path``, read again whenever the file changes.

    Raises ConfigError at start if the file is unreadable, malformed or holds no token;
    if it later becomes so, :meth:`holder` raises ConfigError (every request is refused)
    rather than keep tokens an operator may just have revoked.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._entries = self._load()

    def __len__(self) -> int:
        return len(self._entries)

    def holder(self, token: str) -> str | None:
        """The name of the token ``token``, or None if the file does not hold it."""
        entries = self._current()
        digest = token_digest(token)
        found = None
        for entry in entries:  # no early exit: the time does not tell which line matched
            if hmac.compare_digest(digest, entry.sha256):
                found = entry.name
        return found

    def _current(self) -> tuple[TokenEntry, ...]:
        stamp = self._stat()
        with self._lock:
            if stamp != self._stamp:
                self._entries = self._load()  # if it raises, the next request tries again
                self._stamp = stamp
            return self._entries

    def _load(self) -> tuple[TokenEntry, ...]:
        entries = read_tokens(self.path)
        if not entries:
            raise ConfigError(f"the tokens file {self.path} holds no token; {_HOW}")
        return entries

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the HTTP front's tokens file {self.path}: {exc}"
            ) from exc
        return st.st_ino, st.st_size, st.st_mtime_ns
