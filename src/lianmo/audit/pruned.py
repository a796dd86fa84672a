"""A party's signed statement that it pruned a finished job's payloads (``pruned.json``).

Retention (``lianmo state prune``, :mod:`lianmo.node.retention`) removes the message
payloads from a finished job's store but keeps its log. The log alone still shows what
crossed the wire (every record holds the payload's sha256), so ``verify`` can still
check chains, signatures and that what one party logged as sent the other logged as
received. What it cannot check any more is that the bytes are there, and replay, which
feeds the bytes back, cannot run at all. The statement says so, in the party's name::

    {"format": "lianmo.pruned/v1", "party": "broker", "job_id": "credit-demo",
     "pruned_at": 1763800000.0, "audit_head": "<hash of the log's last record>",
     "records": 1441, "signing_key": "<public key hex>", "removed": ["<sha256>", ...],
     "kept": ["<sha256 of the job spec>"], "folders": ["inbox", "checkpoints"],
     "bytes_freed": 43000000, "sig": "<Ed25519 signature>"}

``sig`` signs the domain :data:`_DOMAIN` followed by the canonical JSON of every other
field, with the key the log's ``job_start`` names. ``audit_head`` and ``records`` tie
the statement to one finished log: it cannot be moved to another job or party, and a
log that grew or shrank after the prune no longer matches it. Verify accepts a missing
payload only if a valid statement lists its digest; a statement that is altered, signed
by another key or made for another log state is itself a problem.
"""

from __future__ import annotations

import json
import re
import typing as t
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from lianmo.audit.log import canonical
from lianmo.audit.signing import UNSIGNED_KEY, SigningKey, signature_ok
from lianmo.errors import AuditError
from lianmo.fileio import write_atomic

STATEMENT_NAME = "pruned.json"
FORMAT = "lianmo.pruned/v1"
_DOMAIN = b"lianmo.audit.pruned\x00"
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PruneStatement:
    """What a party removed from a finished job's folder, and when."""

    party: str
    job_id: str
    pruned_at: float
    audit_head: str
    records: int
    signing_key: str
    removed: tuple[str, ...]
    """Digests of the payloads removed from the store (sorted)."""
    kept: tuple[str, ...]
    """Digests left in the store on purpose: the job spec."""
    folders: tuple[str, ...]
    """Folders of the job removed whole (``checkpoints``, ``inbox``)."""
    bytes_freed: int
    sig: str = ""
    format: str = FORMAT

    @property
    def date(self) -> str:
        """When it was pruned, for people: ``2026-03-01 10:00 UTC``."""
        return datetime.fromtimestamp(self.pruned_at, UTC).strftime("%Y-%m-%d %H:%M UTC")

    def note(self) -> str:
        """What verify and report say about a validly pruned log."""
        return (
            f"party '{self.party}': payloads pruned on {self.date} ({len(self.removed)} "
            "message payloads removed): replay is no longer possible"
        )

    def signed(self, key: SigningKey | None) -> PruneStatement:
        """The statement signed with ``key`` (unsigned, for an unsigned log, if None)."""
        unsigned = replace(
            self, sig="", signing_key=UNSIGNED_KEY if key is None else key.public_hex
        )
        if key is None:
            return unsigned
        return replace(unsigned, sig=key.sign(_signed_bytes(unsigned)))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode() + b"\n"


def _signed_bytes(statement: PruneStatement) -> bytes:
    body = {k: v for k, v in asdict(statement).items() if k != "sig"}
    return _DOMAIN + canonical(body)


def write_statement(folder: Path, statement: PruneStatement) -> Path:
    """Write ``statement`` to ``folder/pruned.json`` atomically; its path."""
    path = folder / STATEMENT_NAME
    write_atomic(path, statement.to_json())
    return path


def read_statement(folder: Path) -> PruneStatement | None:
    """The statement in ``folder``, None if there is none; AuditError if it is malformed."""
    path = folder / STATEMENT_NAME
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AuditError(f"{path} is not a readable prune statement ({exc})") from exc
    try:
        statement = _from_json(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditError(
            f"{path} is not a prune statement of format {FORMAT!r} ({exc}); it was edited, "
            "or written by another program"
        ) from exc
    if statement.format != FORMAT:
        raise AuditError(
            f"{path} has format {statement.format!r}, which this lianmo does not read "
            f"(it reads {FORMAT!r})"
        )
    return statement


def _from_json(raw: t.Any) -> PruneStatement:
    if not isinstance(raw, dict):
        raise TypeError("not a JSON object")
    digests = {k: tuple(str(d) for d in raw[k]) for k in ("removed", "kept")}
    for digest in (*digests["removed"], *digests["kept"]):
        if not _DIGEST_RE.match(digest):
            raise ValueError(f"'{digest[:20]}' is not a sha256 hex digest")
    return PruneStatement(
        party=str(raw["party"]),
        job_id=str(raw["job_id"]),
        pruned_at=float(raw["pruned_at"]),
        audit_head=str(raw["audit_head"]),
        records=int(raw["records"]),
        signing_key=str(raw["signing_key"]),
        removed=digests["removed"],
        kept=digests["kept"],
        folders=tuple(str(f) for f in raw["folders"]),
        bytes_freed=int(raw["bytes_freed"]),
        sig=str(raw["sig"]),
        format=str(raw["format"]),
    )


def statement_problem(
    statement: PruneStatement, records: Sequence[dict[str, object]], log_key: str | None
) -> str | None:
    """Why ``statement`` does not vouch for the log of ``records``, or None if it does.

    ``log_key`` is the public key the log's ``job_start`` names (None: an unsigned log,
    for which no statement can vouch).
    """
    first = records[0] if records else {}
    if (statement.party, statement.job_id) != (first.get("party"), first.get("job_id")):
        return (
            f"{STATEMENT_NAME} is party '{statement.party}''s statement for job "
            f"'{statement.job_id}', not for this log: it was copied from another job folder"
        )
    last = records[-1] if records else {}
    if (statement.audit_head, statement.records) != (last.get("hash"), len(records)):
        return (
            f"{STATEMENT_NAME} was made for a log of {statement.records} records ending "
            f"at {statement.audit_head[:16]}..., but this log has {len(records)} records: "
            "records were added or removed after the prune, or the statement was moved"
        )
    if log_key is None:
        return f"{STATEMENT_NAME} cannot vouch for an unsigned log"
    if statement.signing_key != log_key or not signature_ok(
        log_key, statement.sig, _signed_bytes(statement)
    ):
        return (
            f"{STATEMENT_NAME} has no valid signature by the key the log is signed with: "
            "it was altered or forged, so the payloads it lists count as missing"
        )
    return None
