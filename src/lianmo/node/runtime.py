"""One job runtime for a party's role, the same live on a node and under ``audit replay``.

A job's parts are wired in one order, here and nowhere else: the job's DRBG, the channel
(whose observers the caller chose), the checkpoints attached to both, the role context,
then the role itself between its framing audit records (:func:`run_audited`). Live, the
audit log and the gRPC channel are real; under replay, a recorded channel feeds the
logged messages and a recorder compares every record. Because both go through
:func:`run_party`, replay checks exactly what the node ran.
"""

from __future__ import annotations

import typing as t
from datetime import datetime
from pathlib import Path

from lianmo.audit.log import MessageStats
from lianmo.compute.backend import ComputeBackend
from lianmo.config import DatasetEntry, JobSpec
from lianmo.crypto.drbg import Drbg
from lianmo.node.audited_job import role_context, run_audited
from lianmo.node.checkpoint import JobCheckpoints
from lianmo.node.job_data import JobOutcome
from lianmo.protocols.context import Limits, Progress
from lianmo.transport.channel import Channel


class JobRecords(t.Protocol):
    """Where a job's audit records go: the live log, or replay's comparison."""

    def record(self, kind: str, **fields: str | int | float | bool | None) -> None: ...

    def keep(self, data: bytes) -> str | None: ...

    def position(self) -> object: ...

    @property
    def head(self) -> str:
        """Hash of the last record so far: every message sent carries it to its receiver."""
        ...


class _Guarded:
    """``records`` as the job sees them: silent while fast-forwarding to a checkpoint."""

    def __init__(self, records: JobRecords, checkpoints: JobCheckpoints) -> None:
        self.record = checkpoints.recorder(records.record)
        self.keep = records.keep


def run_party(
    spec: JobSpec,
    party: str,
    *,
    rng: Drbg,
    channel: Channel,
    checkpoints: JobCheckpoints,
    stats: MessageStats,
    records: JobRecords,
    compute: ComputeBackend,
    progress: Progress,
    dataset: DatasetEntry | None,
    job_dir: Path,
    signing_key: str,
    started_at: datetime,
    identity: t.Mapping[str, str] | None = None,
    limits: Limits | None = None,
) -> JobOutcome:
    """Run ``party``'s role of ``spec`` (resuming from ``checkpoints`` if they hold any).

    ``started_at`` is when the job first started at this party: the time its consent
    register is read at, the same on every resume and under replay.
    """
    channel.anchor(lambda: records.head)
    checkpoints.attach(
        rng=rng,
        channel=channel,
        stats=stats,
        record=records.record,
        audit_position=records.position,
    )
    guarded = _Guarded(records, checkpoints)
    ctx = role_context(
        spec,
        party,
        channel,
        rng,
        compute=compute,
        progress=progress,
        record=guarded.record,
        checkpoints=checkpoints,
        limits=limits,
    )
    return run_audited(
        ctx,
        spec,
        dataset,
        job_dir,
        guarded,
        signing_key=signing_key,
        started_at=started_at,
        identity=identity,
    )
