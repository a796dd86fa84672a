"""The data-subject question: "was customer X's data used in job J?", answered with proof.

A party answers from its own records (:mod:`lianmo.node.data_use`): each job folder holds
a subjects file of salted hashes of the ids the job saw, with their status, and the
job's signed log holds a ``data_use`` record with the file's sha256. The salt derives
from the job's DRBG seed, which only this party holds. An answer is proven when the log
verifies (hash chain and signatures), its ``data_use`` record names the subjects file's
digest, and the id's salted hash is (or is not) in that file.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from pathlib import Path

from lianmo.audit.verify import LOG_NAME, read_log
from lianmo.config import PartyConfig
from lianmo.crypto.drbg import Drbg
from lianmo.errors import AuditError
from lianmo.node.data_use import (
    NO_CONSENT,
    NOT_MATCHED,
    SUBJECTS_FILE,
    SUBJECTS_HEADER,
    USED,
    subject_key,
    subject_salt,
)
from lianmo.node.job_secrets import replay_seed

ABSENT = "absent"
UNKNOWN = "unknown"
MEANING = {
    USED: "used: in the job's intersection, the job used its rows",
    NOT_MATCHED: (
        "not used: its id went to alignment (blinded) but was not in the intersection; "
        "no other data of it left the party"
    ),
    NO_CONSENT: (
        "not used: no valid consent for the job's purpose when the job started; nothing "
        "of it left the party"
    ),
    ABSENT: "not used: not in the party's data set when the job ran",
    UNKNOWN: "cannot tell: see the reason",
}


@dataclass(frozen=True)
class SubjectAnswer:
    """One job's answer for one customer."""

    job_id: str
    status: str  # used, not_matched, no_consent, absent or unknown
    purpose: str | None
    proven: bool  # against a verified signed log
    evidence: str  # the record, or why there is no proof

    @property
    def meaning(self) -> str:
        return MEANING[self.status]

    def to_json(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "meaning": self.meaning,
            "purpose": self.purpose,
            "proven": self.proven,
            "evidence": self.evidence,
        }


def job_folders(config: PartyConfig, jobs: tuple[str, ...] = ()) -> list[Path]:
    """The folders of ``jobs`` (ids or folders), or of every logged job of the party."""
    if jobs:
        folders = []
        for job in jobs:
            path = Path(job)
            folder = path if (path / LOG_NAME).exists() else config.state_dir / "jobs" / job
            if not (folder / LOG_NAME).exists():
                raise AuditError(
                    f"party '{config.name}' has no logged job '{job}' ({folder / LOG_NAME} "
                    "does not exist); pass a job id from its state_dir/jobs or a job folder"
                )
            folders.append(folder)
        return folders
    root = config.state_dir / "jobs"
    return sorted(p for p in root.iterdir() if (p / LOG_NAME).exists()) if root.exists() else []


def answer(config: PartyConfig, customer: str, folder: Path) -> SubjectAnswer:
    """Whether job ``folder`` used ``customer``'s data, and whether that is proven."""
    log, problems = read_log(folder / LOG_NAME)
    purpose = log.start.get("purpose")
    purpose = purpose if isinstance(purpose, str) else None

    def unknown(reason: str) -> SubjectAnswer:
        return SubjectAnswer(log.job_id, UNKNOWN, purpose, False, reason)

    if log.party != config.name:
        return unknown(f"the log is party '{log.party}''s, not '{config.name}''s")
    if problems:
        return unknown(f"the log does not verify: {problems[0]}")
    uses = [(seq, r) for seq, r in enumerate(log.records) if r.get("kind") == "data_use"]
    if not uses:
        return unknown(
            "the log has no data_use record: the job holds no data of this party (the "
            "arbiter), stopped before alignment, or ran on lianmo before 0.7"
        )
    seq, record = uses[-1]
    try:
        seed, _ = replay_seed(config, log.job_id, folder)
    except AuditError as exc:
        return unknown(str(exc))
    path = folder / SUBJECTS_FILE
    try:
        body = path.read_bytes()
    except OSError:
        return unknown(f"{path} is missing; it cannot be answered from this party's records")
    if hashlib.sha256(body).hexdigest() != record.get("subjects_sha256"):
        return unknown(
            f"{path} is not the file the signed log committed to (record {seq}): it was altered"
        )
    salt = subject_salt(Drbg(seed))
    if (
        record.get("salt_sha256", hashlib.sha256(salt).hexdigest())
        != hashlib.sha256(salt).hexdigest()
    ):
        return unknown(f"the job's seed does not give the salt record {seq} committed to")
    status = _lookup(body, subject_key(salt, customer.strip().encode("utf-8")))
    return SubjectAnswer(
        log.job_id,
        status,
        purpose,
        True,
        f"data_use record {seq} of the verified, signed log {folder / LOG_NAME}",
    )


def job_salt(config: PartyConfig, folder: Path) -> bytes:
    """The salt of job ``folder``'s subjects file, for the party to disclose to an auditor
    (:func:`answer_with_salt`); needs the job's seed (AuditError without it)."""
    log, _ = read_log(folder / LOG_NAME)
    seed, _ = replay_seed(config, log.job_id, folder)
    return subject_salt(Drbg(seed))


def answer_with_salt(folder: Path, customer: str, salt: bytes) -> SubjectAnswer:
    """A third party's check (an auditor, a regulator) of job ``folder``'s answer for
    ``customer``, given the salt the party discloses for that job (not its seed).

    The log must verify, the subjects file be the one its ``data_use`` record names, and
    ``salt`` the one that record commits to; the salt lets its holder test any id
    against that job's file, nothing more.

    Raises
    ------
    AuditError
        If any of these checks fails.
    """
    log, problems = read_log(folder / LOG_NAME)
    if problems:
        raise AuditError(f"the log does not verify: {problems[0]}")
    uses = [(seq, r) for seq, r in enumerate(log.records) if r.get("kind") == "data_use"]
    if not uses or "salt_sha256" not in uses[-1][1]:
        raise AuditError("the log has no data_use record committing to a salt")
    seq, record = uses[-1]
    if hashlib.sha256(salt).hexdigest() != record["salt_sha256"]:
        raise AuditError(f"the salt is not the one data_use record {seq} commits to")
    try:
        body = (folder / SUBJECTS_FILE).read_bytes()
    except OSError as exc:
        raise AuditError(f"cannot read {folder / SUBJECTS_FILE}: {exc}") from None
    if hashlib.sha256(body).hexdigest() != record.get("subjects_sha256"):
        raise AuditError(f"{SUBJECTS_FILE} is not the file data_use record {seq} commits to")
    status = _lookup(body, subject_key(salt, customer.strip().encode("utf-8")))
    purpose = log.start.get("purpose")
    return SubjectAnswer(
        log.job_id,
        status,
        purpose if isinstance(purpose, str) else None,
        True,
        f"data_use record {seq} of the verified, signed log {folder / LOG_NAME}",
    )


def _lookup(body: bytes, key: str) -> str:
    if not body.startswith(SUBJECTS_HEADER):
        return UNKNOWN
    lines = body[len(SUBJECTS_HEADER) :].decode().splitlines()
    at = bisect.bisect_left(lines, key)  # sorted, and every hash is as long as ``key``
    if at < len(lines) and lines[at].startswith(key + "\t"):
        return lines[at].partition("\t")[2]
    return ABSENT


__all__ = [
    "ABSENT",
    "MEANING",
    "UNKNOWN",
    "SubjectAnswer",
    "answer",
    "answer_with_salt",
    "job_salt",
    "job_folders",
]
