"""What a job may do with this party's data set, and the record of whose data it used.

Three rules of data protection law (PIPL, GDPR) meet here:

- **purpose**: a job states its ``purpose``; the catalogue entry's ``purposes`` say which
  purposes the data set may serve (:func:`purpose_entry` refuses others);
- **minimum necessary**: each purpose names the columns it may use, so the job sees the
  entry narrowed to them (and chooses its own columns inside them);
- **consent**: with a consent register, only the ids whose consent is valid for the
  purpose at the job's start go to alignment (:meth:`JobDataset.eligible`).

After alignment the party commits to whose data the job used (:meth:`JobDataset.account`):
a file of salted hashes of its ids, each with its status, whose sha256 goes into a signed
``data_use`` record. The salt derives from the job's DRBG seed, which only this party
holds, so the file tells nobody else anything; with the seed the party can later answer
"was customer X's data used in job J" and prove the answer against its signed log
(:mod:`lianmo.node.subjects`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from lianmo.config import DatasetEntry
from lianmo.crypto.drbg import Drbg
from lianmo.data.consent import read_register
from lianmo.errors import PolicyError
from lianmo.fileio import write_atomic_chunks
from lianmo.protocols.context import RoleContext

_LOG = logging.getLogger("lianmo.node")
SUBJECTS_FILE = "subjects.tsv"
SUBJECTS_HEADER = b"# lianmo data-subject commitment v1: blake2b-128(salt, id) <TAB> status\n"
_SALT_LABEL = "audit/subject-salt"
#: what a job did with a customer's data, per id of the party's table
USED = "used"  # in the intersection: the job used its rows
NOT_MATCHED = "not_matched"  # went to alignment blinded, not in the intersection
NO_CONSENT = "no_consent"  # no valid consent for the purpose: nothing of it left the party
STATUSES = (USED, NOT_MATCHED, NO_CONSENT)


def purpose_entry(party: str, entry: DatasetEntry, purpose: str | None) -> DatasetEntry:
    """``entry`` as a job with ``purpose`` may use it: its columns narrowed to the purpose's.

    An entry without ``purposes`` serves any job, as before purposes existed.

    Raises
    ------
    PolicyError
        If the entry lists purposes and ``purpose`` is not one of them, or the job states
        none while the entry lists purposes or has a consent register. The text names the
        party, the data set and the purpose, never columns.
    """
    if purpose is None and entry.consent is not None:
        raise PolicyError(
            f"party '{party}' refuses the job: its data set '{entry.name}' has a consent "
            "register, and consent is given for a purpose, but the job spec states none; "
            "add 'purpose' to the job spec"
        )
    if entry.purposes is None:
        return entry
    if purpose is None:
        raise PolicyError(
            f"party '{party}' refuses the job: its data set '{entry.name}' serves only "
            "declared purposes and the job spec states none; add 'purpose' to the job spec"
        )
    if purpose not in entry.purposes:
        raise PolicyError(
            f"party '{party}' refuses the job: its data set '{entry.name}' may not be used "
            f"for purpose '{purpose}'; use a purpose the party's operator allows, or ask "
            "them to allow this one"
        )
    allowed = entry.purposes[purpose]
    if allowed is None:  # "*": every column the entry offers
        return entry
    return replace(entry, columns=allowed)


def consent_lapsed(
    party: str, entry: DatasetEntry, purpose: str, since: datetime, now: datetime
) -> int:
    """How many ids of ``entry``'s consent register had valid consent for ``purpose`` at
    ``since`` but no longer have at ``now`` (withdrawn or expired in between); 0 without
    a register."""
    if entry.consent is None:
        return 0
    register = read_register(str(entry.consent), party)
    then, still = register.valid_ids(purpose, since), register.valid_ids(purpose, now)
    return int(np.count_nonzero(~np.isin(then, still)))


def policy_digest(entry: DatasetEntry) -> str:
    """sha256 of the entry's purpose policy (offered columns, purposes and their columns)."""
    policy = {
        "dataset": entry.name,
        "columns": None if entry.columns is None else list(entry.columns),
        "purposes": None
        if entry.purposes is None
        else {k: None if v is None else list(v) for k, v in sorted(entry.purposes.items())},
    }
    return hashlib.sha256(json.dumps(policy, sort_keys=True).encode()).hexdigest()


def subject_salt(rng: Drbg) -> bytes:
    """The salt of a job's data-subject commitment, from the party's job DRBG."""
    return rng.child(_SALT_LABEL).random_bytes(32)


def subject_key(salt: bytes, customer: bytes) -> str:
    """The salted hash of one id, as the subjects file lists it."""
    return hashlib.blake2b(customer, key=salt, digest_size=16).hexdigest()


@dataclass(frozen=True)
class JobDataset:
    """This party's data set as one job may use it.

    Attributes
    ----------
    entry : DatasetEntry
        The catalogue entry, its columns narrowed to what the job's purpose allows.
    purpose : str or None
        The job's purpose.
    consented : numpy.ndarray or None
        The ids (UTF-8 bytes, sorted) with consent valid for the purpose at ``as_of``;
        None when the data set has no consent register.
    as_of : datetime
        When the job started at this party: the time consent is checked at.
    salt : bytes
        The salt of the data-subject commitment.
    folder : Path
        The job's folder, where the subjects file goes.
    """

    entry: DatasetEntry
    purpose: str | None
    consented: np.ndarray | None
    as_of: datetime
    salt: bytes
    folder: Path

    @property
    def name(self) -> str:
        return self.entry.name

    @classmethod
    def open(
        cls,
        party: str,
        entry: DatasetEntry,
        purpose: str | None,
        *,
        as_of: datetime,
        rng: Drbg,
        folder: Path,
    ) -> JobDataset:
        """Narrow ``entry`` to the purpose and read its consent register, if any."""
        narrowed = purpose_entry(party, entry, purpose)
        consented = None
        if entry.consent is not None:
            register = read_register(str(entry.consent), party)
            consented = register.valid_ids(purpose or "", as_of)
        return cls(narrowed, purpose, consented, as_of, subject_salt(rng), folder)

    def eligible(self, ids: np.ndarray) -> np.ndarray | None:
        """The positions of ``ids`` whose consent is valid (None: no register, all are)."""
        if self.consented is None:
            return None
        return np.flatnonzero(np.isin(ids, self.consented))

    def account(
        self, ctx: RoleContext, ids: np.ndarray, eligible: np.ndarray | None, rows: np.ndarray
    ) -> None:
        """Commit to whose data the job used: write the subjects file, record ``data_use``.

        ``ids`` are the table's ids in file order, ``eligible`` the positions that went to
        alignment (None: all), ``rows`` the positions in the intersection. The counts go
        to this party's own log only; peers and the coordinator learn the intersection
        size alone, as without consent.
        """
        status = np.full(len(ids), STATUSES.index(NOT_MATCHED), dtype=np.int8)
        if eligible is not None:
            status[:] = STATUSES.index(NO_CONSENT)
            status[eligible] = STATUSES.index(NOT_MATCHED)
        status[rows] = STATUSES.index(USED)
        lines = sorted(
            f"{subject_key(self.salt, bytes(i))}\t{STATUSES[s]}\n"
            for i, s in zip(ids.tolist(), status.tolist(), strict=True)
        )
        body = SUBJECTS_HEADER + "".join(lines).encode()
        write_atomic_chunks(self.folder / SUBJECTS_FILE, iter([body]))
        counts = {name: int(np.sum(status == k)) for k, name in enumerate(STATUSES)}
        ctx.record(
            "data_use",
            purpose=self.purpose,
            rows=len(ids),
            **counts,
            subjects_sha256=hashlib.sha256(body).hexdigest(),
            salt_sha256=hashlib.sha256(self.salt).hexdigest(),
        )
        if eligible is not None:
            _LOG.info(
                "job %s: %d of %d ids in data set '%s' have no valid consent for purpose %s "
                "at %s and were left out",
                ctx.job_id,
                counts[NO_CONSENT],
                len(ids),
                self.name,
                self.purpose,
                self.as_of.isoformat(),
            )


__all__ = [
    "NOT_MATCHED",
    "NO_CONSENT",
    "STATUSES",
    "SUBJECTS_FILE",
    "USED",
    "JobDataset",
    "consent_lapsed",
    "policy_digest",
    "purpose_entry",
    "subject_key",
    "subject_salt",
]
