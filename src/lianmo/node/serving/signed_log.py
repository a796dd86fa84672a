"""A party's signed logs for serving, outside any job: one format, one check.

Two logs live outside job folders: the promotion log ``STATE_DIR/models/versions.jsonl``
(:mod:`lianmo.node.serving.versions`) and the seals of the online request record
``STATE_DIR/serving/requests.jsonl`` (:mod:`lianmo.node.serving.request_log`). Both are
the audit log's format (:mod:`lianmo.audit.log`: hash-chained, each record signed with
the party's Ed25519 key) under a fixed ``job_id``, and both open with a start record that
names the public signing key. :func:`check_log` verifies either; :func:`append` extends
either, never a broken one.
"""

from __future__ import annotations

from pathlib import Path

from lianmo.audit.log import GENESIS, AuditLog, Scalar, chain_problem, read_records, signed_bytes
from lianmo.audit.signing import SigningKey, key_id, signature_ok
from lianmo.errors import LianmoError


def check_log(
    path: Path, *, party: str, log_id: str, start: str
) -> tuple[list[dict[str, object]], str | None]:
    """The records of ``path`` up to the first bad one, and what is wrong with it (None:
    the whole log verifies). A missing file is an empty log.

    A record is good when it chains to the one before, belongs to ``party``'s log
    ``log_id``, and carries a valid signature by the key that the first record (of kind
    ``start``) names.
    """
    good: list[dict[str, object]] = []
    if not path.exists():
        return good, None
    prev, key = GENESIS, ""
    try:
        for seq, record in enumerate(read_records(path)):
            problem = chain_problem(record, seq, prev)
            if problem is None and (record.get("party"), record.get("job_id")) != (
                party,
                log_id,
            ):
                problem = "belongs to another party or log"
            if problem is None and seq == 0:
                key = str(record.get("signing_key", ""))
                if record.get("kind") != start or not key:
                    problem = f"is not the {start} record that names the signing key"
            if problem is None and not signature_ok(
                key, str(record.get("sig", "")), signed_bytes(record)
            ):
                problem = f"has no valid signature by the log's key {key_id(key) if key else '?'}"
            if problem is not None:
                return good, f"record {seq} {problem}"
            prev = str(record["hash"])
            good.append(record)
    except LianmoError as exc:  # a line that is not JSON
        return good, str(exc)
    return good, None


def append(
    path: Path,
    *,
    party: str,
    log_id: str,
    start: str,
    signer: SigningKey,
    kind: str,
    **fields: Scalar,
) -> None:
    """Append a signed ``kind`` record (and the ``start`` record first, to a new log).
    The caller serialises writers of one log.

    Raises
    ------
    LianmoError
        If the log does not verify: a broken log is never extended.
    """
    _, problem = check_log(path, party=party, log_id=log_id, start=start)
    if problem is not None:
        raise LianmoError(f"party '{party}': the signed log {path} {problem}; not extending it")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = AuditLog(path, party=party, job_id=log_id, signer=signer)
    if not path.exists() or path.stat().st_size == 0:
        log.record(start, signing_key=signer.public_hex)
    log.record(kind, **fields)


__all__ = ["append", "check_log"]
