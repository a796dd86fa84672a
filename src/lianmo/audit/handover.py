"""What may be handed to auditors: ``lianmo audit verify`` refuses folders holding secrets.

An auditor needs a job folder's ``audit.jsonl``, ``payloads/`` and ``result.json``, never
a party's secrets: its ``drbg.seed`` (its Paillier key and every mask derive from it) or
a private key (TLS, signing, CA). Finding one where logs are handed over means secrets
are being passed around; verify stops and names the files instead of quietly reading
past them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from lianmo.errors import AuditError

SEED_NAMES = frozenset({"drbg.seed"})
KEY_SUFFIX = ".key"
_PEM_PRIVATE = b"PRIVATE KEY-----"
_HEAD_BYTES = 8192  # a PEM key starts within its first lines
_SHOWN = 5


def secrets_in(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """Every secret at or under ``paths``, with what it is."""
    return sorted({(path, what) for path in paths for path, what in _scan(path)})


def refuse_secrets(paths: Iterable[Path]) -> None:
    """Raise AuditError naming the secrets found at or under ``paths``, if any."""
    found = secrets_in(paths)
    if not found:
        return
    shown = "; ".join(f"{path} ({what})" for path, what in found[:_SHOWN])
    more = f"; and {len(found) - _SHOWN} more" if len(found) > _SHOWN else ""
    raise AuditError(
        f"refusing to verify: the folders given hold {len(found)} secret file(s) that must "
        f"never be handed to auditors: {shown}{more}. Give auditors only each party's job "
        "folder logs (audit.jsonl, payloads/, result.json, pruned.json if pruned); move the "
        "secrets out of that copy, and treat a seed or key that was handed over as compromised"
    )


def _scan(path: Path) -> Iterator[tuple[Path, str]]:
    if path.is_dir():
        for found in sorted(path.rglob("*")):
            if found.is_file():
                yield from _check(found)
    elif path.is_file():
        yield from _check(path)


def _check(path: Path) -> Iterator[tuple[Path, str]]:
    if path.name in SEED_NAMES:
        yield path, "a party's DRBG seed: its Paillier key and masks derive from it"
    elif path.name.endswith(KEY_SUFFIX):
        yield path, "a key file"
    elif _holds_pem_private_key(path):
        yield path, "a PEM private key"


def _holds_pem_private_key(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return _PEM_PRIVATE in fh.read(_HEAD_BYTES)
    except OSError:
        return False
