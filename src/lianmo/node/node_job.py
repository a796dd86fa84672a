"""A job as this node keeps it: its state, status file, step screen and restart recovery.

The node's control handler (:mod:`lianmo.node.service`) holds one :class:`NodeJob` per job;
this module says how a job's state reaches the disk (``status.json`` for a failure or a
cancellation, ``result.json`` for a success) and comes back from it after a restart.
"""

from __future__ import annotations

import json
import logging
import threading
import typing as t
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from lianmo.config import JobSpec, PartyConfig
from lianmo.data.consent import parse_time
from lianmo.fileio import write_atomic
from lianmo.node.checkpoint import JobCheckpoints
from lianmo.transport.envelope import Envelope
from lianmo.transport.inbox import Inbox
from lianmo.transport.spool import Spool
from lianmo.wire.steps import REGISTRY

_LOG = logging.getLogger("lianmo.node")
STATUS_FILE = "status.json"
STARTED_FILE = "started_at"
RESUMABLE = frozenset({"interrupted", "failed", "cancelled"})


@dataclass
class NodeJob:
    """One job at this node: its spec, inbox, folder and where it stands."""

    spec: JobSpec
    inbox: Inbox
    directory: Path
    state: str = "prepared"
    phase: str = ""
    step: int = 0
    total: int = 0
    detail: str = ""
    error: str = ""  # public: what the coordinator reads
    error_kind: str = ""
    error_local: str = ""  # the full text, for this party only
    result_json: bytes = b""
    checkpoint_round: int = -1
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def restored_job(directory: Path, config: PartyConfig) -> NodeJob:
    """A job as a previous run of the node left its folder (see NodeService._restore_jobs)."""
    spec = JobSpec.from_json((directory / "spec.json").read_bytes())
    inbox = Inbox.restore(
        spec.job_id,
        config.name,
        spec.party_names,
        Spool(directory / "inbox"),
        max_job_bytes=config.max_job_mb * 2**20,
        screen=step_screen(spec, config.name),
    )
    job = NodeJob(spec=spec, inbox=inbox, directory=directory, state="interrupted")
    job.checkpoint_round = JobCheckpoints(directory / "checkpoints").last_round
    job.detail = "the node restarted while the job ran; resume it with 'lianmo job resume'"
    result = directory / "result.json"
    status = directory / STATUS_FILE
    if result.exists():
        job.state, job.result_json, job.detail = "succeeded", result.read_bytes(), ""
    elif status.exists():
        saved = json.loads(status.read_bytes())
        job.state, job.error = str(saved["state"]), str(saved.get("error", ""))
        job.error_kind, job.detail = str(saved.get("error_kind", "")), str(saved["detail"])
        job.error_local = str(saved.get("error_local", job.error))
    if job.state != "running":
        inbox.close(f"job '{spec.job_id}' is {job.state} at party '{config.name}'")
    return job


def started_at(directory: Path) -> datetime:
    """When the job first started at this party (kept in its folder: the same on resume)."""
    path = directory / STARTED_FILE
    if path.exists():
        return parse_time(path.read_text(encoding="utf-8"))
    now = datetime.now(UTC).replace(microsecond=0)
    write_atomic(path, now.isoformat().encode())
    return now


def step_screen(spec: JobSpec, party: str) -> t.Callable[[Envelope], None]:
    """Refuse arriving messages that no protocol step allows between these roles."""
    roles = {p.name: p.role for p in spec.parties}
    mine = roles[party]

    def screen(env: Envelope) -> None:
        REGISTRY.screen(env, roles.get(env.sender, "stranger"), mine)

    return screen


def write_status(job: NodeJob) -> None:
    """Persist a failure or cancellation, so a restarted node still reports it.

    ``error`` is what the coordinator is told; ``error_local`` the full text.
    """
    data = {"state": job.state, "error": job.error, "error_kind": job.error_kind}
    data["error_local"] = job.error_local
    data["detail"] = job.detail
    try:
        write_atomic(job.directory / STATUS_FILE, json.dumps(data).encode())
    except OSError:
        _LOG.exception("job %s: could not write its status file", job.spec.job_id)


def certificate_fields(cert: Path) -> dict[str, str]:
    """The party's TLS certificate as its audit log shows it (nothing if unreadable)."""
    try:
        parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError):
        return {}
    return {
        "tls_subject": parsed.subject.rfc4514_string(),
        "tls_sha256": parsed.fingerprint(hashes.SHA256()).hex(),
        "tls_not_after": parsed.not_valid_after_utc.isoformat(),
    }
