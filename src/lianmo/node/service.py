"""The party daemon's brain: accepts jobs from coordinators and runs this party's role.

Transport-agnostic: the composition root hands it a channel factory (gRPC in
production, in-memory in tests) and exposes it through the control service. Each job
runs in its own thread with its own inbox, audit log and DRBG.

The node logs each job's life (prepared, started, resumed, phases, succeeded, failed,
cancelled) on the ``lianmo.node`` logger with the job id (``extra={"job_id": ...}``).
A failure's full text goes to that log and the job's ``status.json``; the coordinator
and the audit log get its public form (:mod:`lianmo.node.redact`).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import typing as t
from datetime import UTC, datetime
from pathlib import Path

from lianmo.audit.log import AuditLog, MessageStats
from lianmo.audit.signing import UNSIGNED_KEY, SigningKey
from lianmo.audit.store import PayloadStore
from lianmo.compute.backend import ComputeBackend, make_backend
from lianmo.config import DatasetEntry, JobSpec, PartyConfig, PartySpec
from lianmo.crypto.drbg import Drbg
from lianmo.data.consent import read_register
from lianmo.errors import (
    AuthenticationError,
    ConfigError,
    LianmoError,
    PolicyError,
    UnknownJobError,
)
from lianmo.fileio import write_atomic
from lianmo.metrics import JobGauge, NodeMetrics
from lianmo.node.checkpoint import JobCheckpoints
from lianmo.node.data_use import consent_lapsed, purpose_entry
from lianmo.node.job_data import job_features
from lianmo.node.job_secrets import job_seed, move_legacy_seed, refuse_reused_id
from lianmo.node.node_job import (
    RESUMABLE,
    STARTED_FILE,
    STATUS_FILE,
    NodeJob,
    certificate_fields,
    restored_job,
    started_at,
    step_screen,
    write_status,
)
from lianmo.node.policy import check_job
from lianmo.node.redact import public_error
from lianmo.node.retention import DAY, RetentionWorker, job_lock, refuse_pruned
from lianmo.node.runtime import run_party
from lianmo.protocols.context import Limits
from lianmo.transport.channel import Channel
from lianmo.transport.control import JobStatusInfo
from lianmo.transport.envelope import MessageObserver
from lianmo.transport.inbox import Inbox
from lianmo.transport.spool import Spool

_LOG = logging.getLogger("lianmo.node")


class ChannelFactory(t.Protocol):
    """Builds this party's channel for a job (the composition root decides the carrier)."""

    def __call__(
        self, spec: JobSpec, inbox: Inbox, observers: t.Sequence[MessageObserver]
    ) -> Channel: ...


class NodeService:
    """Implements :class:`lianmo.transport.control.ControlHandler` for one party."""

    def __init__(
        self,
        config: PartyConfig,
        channel_factory: ChannelFactory,
        compute: ComputeBackend | None = None,
        *,
        signer: SigningKey | None = None,
        seed_for: t.Callable[[JobSpec], bytes] | None = None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.config = config
        self._channel_factory = channel_factory
        if signer is None and config.audit_level == "full":
            signer = SigningKey.load(config.signing_key_path, party=config.name)
        self.signer = signer if config.audit_level == "full" else None
        # Tests pin seeds to check that reruns log the same bytes; nodes draw fresh ones.
        self._seed_for = seed_for or (lambda spec: secrets.token_bytes(32))
        self.compute = compute or make_backend(
            config.compute_backend,
            config.compute_workers,
            config.compute_address,
            ray_tls=config.ray_tls,
        )
        self._jobs: dict[str, NodeJob] = {}
        self._lock = threading.Lock()
        self._restore_jobs()
        # the node's Prometheus metrics (None: not counted); the scoring path reports here too
        self.metrics = metrics
        if metrics is not None:
            metrics.watch_jobs(self._job_gauges)
        self.retention: RetentionWorker | None = None
        if config.prune_after_days is not None:  # [retention]: see lianmo.node.retention
            self.retention = RetentionWorker(
                config, self.signer, self._all_jobs, older_than=config.prune_after_days * DAY
            )
            self.retention.start()

    def close(self) -> None:
        """Stop pruning and the compute workers; call once the node no longer runs jobs."""
        if self.retention is not None:
            self.retention.close()
        self.compute.close()

    def _all_jobs(self) -> list[NodeJob]:
        with self._lock:
            return list(self._jobs.values())

    def _job_gauges(self) -> list[JobGauge]:
        """Where every job stands, for the metrics endpoint (read at each scrape)."""
        out = []
        for job in self._all_jobs():
            with job.lock:
                out.append(
                    JobGauge(
                        job.spec.job_id,
                        job.state,
                        job.phase,
                        job.step,
                        job.total,
                        job.checkpoint_round,
                    )
                )
        return out

    # -- federation side -----------------------------------------------------------------

    def inbox_for(self, job_id: str) -> Inbox:
        """The inbox of a prepared or running job; UnknownJobError otherwise."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJobError(
                f"party '{self.config.name}' has no job '{job_id}'; the coordinator must "
                "prepare the job on every party before it starts"
            )
        return job.inbox

    def is_member(self, name: str) -> bool:
        """True if ``name`` is a coordinator of this node or a party of a job it holds."""
        if name in self.config.coordinators:
            return True
        with self._lock:
            return any(name in job.spec.party_names for job in self._jobs.values())

    # -- control side --------------------------------------------------------------------

    def prepare(self, caller: str, job_id: str, spec_json: bytes) -> JobStatusInfo:
        """Validate a job against this party's policy, config and catalogue; make its inbox."""
        self._authorize(caller)
        spec = JobSpec.from_json(spec_json)
        if spec.job_id != job_id:
            raise ConfigError(f"job id '{job_id}' does not match the spec's '{spec.job_id}'")
        me = spec.party(self.config.name)
        check_job(self.config, spec, caller)
        if me.dataset is not None:
            entry = self.config.dataset(me.dataset)
            if not entry.path.exists():
                _log(
                    logging.WARNING,
                    job_id,
                    "job %s refused: data set '%s' points to %s, which does not exist",
                    job_id,
                    me.dataset,
                    entry.path,
                )
                raise ConfigError(
                    f"party '{self.config.name}': data set '{me.dataset}' points to a file "
                    "that does not exist; the party's operator must fix its path in the "
                    "party config (the node log names the file)"
                )
            entry = self._check_use(job_id, spec, entry)
            if spec.task == "train":
                self._check_columns(job_id, me, entry)
        with self._lock:
            existing = self._jobs.get(job_id)
            if existing is not None:
                if existing.spec.digest() != spec.digest():
                    raise ConfigError(f"job id '{job_id}' is already used for a different job")
                return self._status(existing)
            directory = self.config.state_dir / "jobs" / job_id
            if (directory / "result.json").exists():
                raise ConfigError(
                    f"party '{self.config.name}' already finished a job '{job_id}'; "
                    "choose a new job_id"
                )
            if not directory.exists():
                refuse_reused_id(self.config, job_id)
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(directory / "spec.json", spec.to_json())
            job = NodeJob(spec=spec, inbox=self._new_inbox(spec, directory), directory=directory)
            self._jobs[job_id] = job
        _log(
            logging.INFO,
            job_id,
            "job %s prepared for %s: role %s, data set %s",
            job_id,
            caller,
            me.role,
            me.dataset or "none",
        )
        return self._status(job)

    def _check_use(self, job_id: str, spec: JobSpec, entry: DatasetEntry) -> DatasetEntry:
        """Refuse at prepare a job whose purpose the data set does not serve, or whose
        consent register cannot be read; the entry narrowed to the purpose's columns."""
        try:
            narrowed = purpose_entry(self.config.name, entry, spec.purpose)
            if entry.consent is not None:
                read_register(str(entry.consent), self.config.name).valid_ids(
                    spec.purpose or "", datetime.now(UTC)
                )
        except LianmoError as exc:
            _log(logging.WARNING, job_id, "job %s refused: %s", job_id, exc)
            raise type(exc)(public_error(self.config, entry.name, exc)) from None
        return narrowed

    def _check_columns(self, job_id: str, me: PartySpec, entry: DatasetEntry) -> None:
        """Refuse at prepare a job whose columns the data set does not offer (header only)."""
        try:
            job_features(self.config.name, me.role, entry, me)
        except LianmoError as exc:
            _log(logging.WARNING, job_id, "job %s refused: %s", job_id, exc)
            raise ConfigError(public_error(self.config, entry.name, exc)) from None

    def start(self, caller: str, job_id: str) -> JobStatusInfo:
        """Start running this party's role of a prepared job in a background thread."""
        self._authorize(caller)
        job = self._job(job_id)
        with job.lock:
            if job.state == "prepared":
                self._launch(job)
                _log(logging.INFO, job_id, "job %s started by %s", job_id, caller)
        return self._status(job)

    def resume(self, caller: str, job_id: str) -> JobStatusInfo:
        """Run a stopped job again from this party's latest checkpoint.

        A job is stopped when it failed, was cancelled, or was running when the node
        went down ("interrupted"). A prepared job simply starts; a running or finished
        one is left alone; a pruned one is refused (:func:`refuse_pruned`).
        """
        self._authorize(caller)
        job = self._job(job_id)
        with job.lock:
            if job.state in RESUMABLE or job.state == "prepared":
                with job_lock(job.directory):  # pruning takes it too: one or the other
                    refuse_pruned(self.config.name, job_id, job.directory)
                    self._refuse_stale_consent(job)
                    _log(
                        logging.INFO,
                        job_id,
                        "job %s resumed by %s from checkpoint round %d (it was %s)",
                        job_id,
                        caller,
                        job.checkpoint_round,
                        job.state,
                    )
                    (job.directory / STATUS_FILE).unlink(missing_ok=True)
                    job.error = job.error_kind = job.error_local = ""
                    job.detail = "resuming from its latest checkpoint"
                    job.inbox.reopen()
                    self._launch(job)
        return self._status(job)

    def _launch(self, job: NodeJob) -> None:
        job.state = "running"
        job.thread = threading.Thread(
            target=self._run, args=(job,), name=f"job-{job.spec.job_id}", daemon=True
        )
        job.thread.start()

    def status(self, caller: str, job_id: str) -> JobStatusInfo:
        self._authorize(caller)
        return self._status(self._job(job_id))

    def _refuse_stale_consent(self, job: NodeJob) -> None:
        """Refuse to resume a job that has not aligned yet if consent was withdrawn (or
        expired) since it started here: it would read consent as of then and align those
        customers. After alignment the job goes on as a running one does."""
        me = job.spec.party(self.config.name)
        if me.dataset is None or not (job.directory / STARTED_FILE).exists():
            return
        if (job.directory / "checkpoints" / "align.json").exists():
            return
        entry = self.config.dataset(me.dataset)
        since = started_at(job.directory)
        try:
            lapsed = consent_lapsed(
                self.config.name, entry, job.spec.purpose or "", since, datetime.now(UTC)
            )
        except LianmoError as exc:
            raise type(exc)(public_error(self.config, entry.name, exc)) from None
        if lapsed:
            _log(
                logging.WARNING,
                job.spec.job_id,
                "job %s not resumed: %d consents for purpose %s ended since it started at "
                "%s, before alignment",
                job.spec.job_id,
                lapsed,
                job.spec.purpose,
                since.isoformat(),
            )
            raise PolicyError(
                f"party '{self.config.name}' refuses to resume job '{job.spec.job_id}': it "
                "stopped before alignment, and its data set's consent register changed since "
                "the job started here; submit it again as a new job"
            )

    def cancel(self, caller: str, job_id: str) -> JobStatusInfo:
        """Stop a job: waiting receives fail at once and the job is marked cancelled."""
        self._authorize(caller)
        job = self._job(job_id)
        with job.lock:
            if job.state not in ("succeeded", "failed", "cancelled"):
                _log(
                    logging.INFO,
                    job_id,
                    "job %s cancelled by %s (it was %s)",
                    job_id,
                    caller,
                    job.state,
                )
                job.state = "cancelled"
                job.detail = f"cancelled by {caller}"
                write_status(job)
        job.inbox.close(f"cancelled by {caller}")
        return self._status(job)

    def wait(self, job_id: str, timeout: float | None = None) -> JobStatusInfo:
        """Block until the job's thread ends (for tests and in-process runs)."""
        job = self._job(job_id)
        if job.thread is not None:
            job.thread.join(timeout)
        return self._status(job)

    # -- internals -----------------------------------------------------------------------

    def _run(self, job: NodeJob) -> None:
        spec, name = job.spec, self.config.name
        started = time.monotonic()
        audit: AuditLog | None = None
        channel = None
        try:
            checkpoints = JobCheckpoints(job.directory / "checkpoints")
            audit = self._open_log(job, checkpoints)
            stats = MessageStats()
            # checkpoints first: it refuses messages while fast-forwarding, before they are logged
            observers: list[MessageObserver] = [checkpoints, audit, stats]
            if self.metrics is not None:
                observers.append(self.metrics)
            channel = self._channel_factory(spec, job.inbox, observers)
            me = spec.party(name)
            outcome = run_party(
                spec,
                name,
                rng=Drbg(self._job_seed(job)),
                channel=channel,
                checkpoints=checkpoints,
                stats=stats,
                records=audit,
                compute=self.compute,
                progress=lambda phase, step, total, detail="": self._progress(
                    job, phase, step, total, detail, checkpoints.last_round
                ),
                dataset=None if me.dataset is None else self.config.dataset(me.dataset),
                job_dir=job.directory,
                signing_key=UNSIGNED_KEY if self.signer is None else self.signer.public_hex,
                started_at=started_at(job.directory),
                identity=certificate_fields(self.config.cert),
                limits=Limits(max_peer_set=self.config.policy.max_peer_set),
            )
            result = {
                "party": name,
                "role": outcome.role,
                **outcome.summary.to_json(),
                "phase_seconds": outcome.phase_seconds,
                **stats.summary(),
            }
            result["audit_head"] = audit.head
            data = json.dumps(result, indent=2, sort_keys=True).encode()
            write_atomic(job.directory / "result.json", data)
            with job.lock:
                job.checkpoint_round = checkpoints.last_round
                if job.state == "running":
                    job.state, job.result_json = "succeeded", data
            _log(
                logging.INFO,
                spec.job_id,
                "job %s succeeded in %.1fs (role %s)",
                spec.job_id,
                time.monotonic() - started,
                outcome.role,
            )
        except Exception as exc:  # noqa: BLE001 - a job failure is a value, reported upward
            self._fail(job, exc, audit)
        finally:
            if channel is not None:
                channel.close()

    def _open_log(self, job: NodeJob, checkpoints: JobCheckpoints) -> AuditLog:
        """The job's audit log, cut back to the latest checkpoint when resuming."""
        path = job.directory / "audit.jsonl"
        options: dict[str, t.Any] = {
            "party": self.config.name,
            "job_id": job.spec.job_id,
            "signer": self.signer,
            "store": PayloadStore(job.directory / "payloads") if self.signer else None,
        }
        position = checkpoints.audit_position()
        if position is None:
            path.unlink(missing_ok=True)  # a restart before any checkpoint starts afresh
            return AuditLog(path, **options)
        return AuditLog.reopen(path, position, **options)

    def _job_seed(self, job: NodeJob) -> bytes:
        """The job's DRBG seed, kept outside the job folder (:mod:`lianmo.node.job_secrets`)."""
        return job_seed(
            self.config, job.spec.job_id, job.directory, lambda: self._seed_for(job.spec)
        )

    def _new_inbox(self, spec: JobSpec, directory: Path) -> Inbox:
        return Inbox(
            spec.job_id,
            self.config.name,
            spec.party_names,
            spool=Spool(directory / "inbox"),
            max_job_bytes=self.config.max_job_mb * 2**20,
            screen=step_screen(spec, self.config.name),
        )

    def _restore_jobs(self) -> None:
        """Pick up the jobs a previous run of this node left in its state directory.

        A job with ``result.json`` succeeded; one with a status file failed or was
        cancelled; any other was running when the node went down and is "interrupted".
        Their inboxes come back from the spool, so peers can deliver to them again at
        once, and ``lianmo job resume`` (or a coordinator still watching) resumes them.
        """
        root = self.config.state_dir / "jobs"
        if not root.is_dir():
            return
        for directory in sorted(p for p in root.iterdir() if p.is_dir()):
            if directory.name.startswith(".") or not (directory / "spec.json").exists():
                continue
            try:
                job = restored_job(directory, self.config)
                move_legacy_seed(self.config, job.spec.job_id, directory)
            except (LianmoError, OSError, ValueError, KeyError) as exc:
                _log(
                    logging.ERROR,
                    directory.name,
                    "job folder %s cannot be restored: %s",
                    directory,
                    exc,
                )
                continue
            self._jobs[job.spec.job_id] = job
            _log(logging.INFO, job.spec.job_id, "job %s restored: %s", job.spec.job_id, job.state)

    def _fail(self, job: NodeJob, exc: Exception, audit: AuditLog | None) -> None:
        """Stop the job on ``exc``: the full text to the log, the public one outward."""
        job_id, name = job.spec.job_id, self.config.name
        kind = type(exc).__name__ if isinstance(exc, LianmoError) else "InternalError"
        full = str(exc) if isinstance(exc, LianmoError) else f"internal error: {exc!r}"
        text = public_error(self.config, job.spec.party(name).dataset, exc)
        if isinstance(exc, LianmoError) and text != full:
            text += f" (party '{name}' keeps the full message in its node log)"
        with job.lock:
            cancelled = job.state == "cancelled"
            if not cancelled:
                job.state, job.error, job.error_kind = "failed", text, kind
                job.error_local = full
                write_status(job)
        if cancelled:
            _log(logging.INFO, job_id, "job %s stopped after its cancellation: %s", job_id, full)
        elif isinstance(exc, LianmoError):
            _log(logging.ERROR, job_id, "job %s failed (%s): %s", job_id, kind, full)
        else:
            _LOG.error(
                "job %s failed with an internal error: %r",
                job_id,
                exc,
                exc_info=exc,
                extra={"job_id": job_id},
            )
        if audit is not None:
            try:
                audit.record("job_end", state="cancelled" if cancelled else "failed", error=text)
            except (OSError, LianmoError):
                _LOG.exception(
                    "job %s: could not record its end in the audit log",
                    job_id,
                    extra={"job_id": job_id},
                )
        job.inbox.close(f"party '{name}' failed: {text}")

    def _progress(
        self, job: NodeJob, phase: str, step: int, total: int, detail: str, checkpoint: int
    ) -> None:
        with job.lock:
            if phase != job.phase:
                _log(logging.INFO, job.spec.job_id, "job %s: phase %s", job.spec.job_id, phase)
            job.phase, job.step, job.total, job.detail = phase, step, total, detail
            job.checkpoint_round = checkpoint

    def _job(self, job_id: str) -> NodeJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJobError(f"party '{self.config.name}' has no job '{job_id}'")
        return job

    def _status(self, job: NodeJob) -> JobStatusInfo:
        with job.lock:
            return JobStatusInfo(
                job_id=job.spec.job_id,
                party=self.config.name,
                state=job.state,
                phase=job.phase,
                step=job.step,
                total_steps=job.total,
                error=job.error,
                error_kind=job.error_kind,
                result_json=job.result_json,
                detail=job.detail,
                checkpoint_round=job.checkpoint_round,
            )

    def _authorize(self, caller: str) -> None:
        if caller not in self.config.coordinators:
            _LOG.warning("refused a control request from '%s': not a coordinator", caller)
            raise AuthenticationError(
                f"party '{self.config.name}' accepts jobs only from "
                f"{list(self.config.coordinators)}; "
                f"'{caller}' is not one of them (add it to 'coordinators' in the party config)"
            )


def _log(level: int, job_id: str, message: str, *args: object) -> None:
    """Log on the node's logger with the job id as a field (JSON logs show it)."""
    _LOG.log(level, message, *args, extra={"job_id": job_id})
