"""Retention: prune a finished job's inbox, checkpoints and message payloads after a set time.

``lianmo state prune`` and the node itself (``[retention] prune_after_days``) remove from
``state_dir/jobs/JOB/`` the spool of received messages (``inbox/``), the checkpoints
(``checkpoints/``) and every payload in the store (``payloads/``) but the job spec. They
keep ``audit.jsonl``, ``spec.json``, ``result.json`` or ``status.json``, the model share
and every other output, and write a signed :class:`~lianmo.audit.pruned.PruneStatement`
(``pruned.json``) first, so that ``lianmo audit verify`` still passes and says replay is
no longer possible. The job's seed in ``secrets_dir`` is kept: a data-subject answer
derives its salt from it, and it is no larger than a key.

A job is pruned only when it can no longer run at this node. That is decided from its
folder, under a lock that ``resume`` takes too (:func:`job_lock`, an ``flock`` on
``spec.json``, so it holds between the node and a ``lianmo state prune`` process):

* it finished: ``result.json`` (succeeded) or ``status.json`` saying failed or cancelled.
  A prepared, running or interrupted job has neither (a resume removes ``status.json``
  before the job runs again), so it is never touched;
* its audit log ends with ``job_end``: the job's thread wrote its last record;
* it ended (that record's time; the file's time for a job without a log) longer ago than
  the limit. A failed or cancelled job can be resumed until then; once pruned, a resume
  is refused (:func:`refuse_pruned`): its checkpoints and received messages are gone;
* its log's chain holds, and prune can sign with the key the log is signed with.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import re
import threading
import time
import typing as t
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lianmo.audit.log import GENESIS, read_records, verify_chain
from lianmo.audit.pruned import PruneStatement, read_statement, write_statement
from lianmo.audit.signing import UNSIGNED_KEY, SigningKey, key_id
from lianmo.config import PartyConfig
from lianmo.errors import ConfigError, LianmoError
from lianmo.node.node_job import STATUS_FILE, NodeJob

_LOG = logging.getLogger("lianmo.node")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
FOLDERS = ("inbox", "checkpoints")
"""Folders of a job removed whole; the payload store is pruned file by file."""
STORE = "payloads"
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
DAY = 86400.0
CHECK_EVERY_S = 3600.0
"""How often a node with ``[retention] prune_after_days`` looks for jobs to prune."""


@dataclass(frozen=True)
class Removal:
    """What pruning removes (or would remove) from one part of a job folder."""

    what: str
    files: int
    bytes: int


@dataclass(frozen=True)
class PruneResult:
    """One job's outcome: pruned (or would be, in a dry run), or why it was left alone."""

    job_id: str
    pruned: bool
    reason: str = ""
    state: str = ""
    ended: float | None = None
    removals: tuple[Removal, ...] = ()
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        return sum(r.bytes for r in self.removals)

    def describe(self) -> str:
        """One line for people: what was removed and the bytes freed, or why not."""
        if not self.pruned:
            return f"kept job '{self.job_id}': {self.reason}"
        parts = ", ".join(f"{r.what} {size_text(r.bytes)} ({r.files} files)" for r in self.removals)
        verb = "would prune" if self.dry_run else "pruned"
        freed = "would free" if self.dry_run else "freed"
        return (
            f"{verb} job '{self.job_id}' ({self.state}, ended {_date(self.ended)}): "
            f"{parts or 'nothing left to remove'}; {freed} {size_text(self.bytes_freed)}"
        )


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s`` or a number of days, in seconds."""
    units = {"d": DAY, "h": 3600.0, "m": 60.0, "s": 1.0}
    value, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "d")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ConfigError(
            f"'{text}' is not an age; write a number with a unit: 30d, 12h, 90m or 45s"
        )
    return seconds


@contextlib.contextmanager
def job_lock(directory: Path) -> Iterator[None]:
    """Hold the job's lock (an exclusive ``flock`` on its ``spec.json``) for the block."""
    with (directory / "spec.json").open("rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def refuse_pruned(party: str, job_id: str, directory: Path) -> None:
    """ConfigError if the job was pruned: its checkpoints and inbox are gone."""
    if not (directory / "pruned.json").exists():
        return
    try:
        statement = read_statement(directory)
        when = f" on {statement.date}" if statement is not None else ""
    except LianmoError:
        when = ""
    raise ConfigError(
        f"party '{party}' pruned job '{job_id}'{when} (its checkpoints and received messages "
        "are gone), so it cannot resume; run it again under a new job_id"
    )


def prune_jobs(
    config: PartyConfig,
    *,
    older_than: float,
    signer: SigningKey | None,
    job_ids: Sequence[str] = (),
    dry_run: bool = False,
    now: float | None = None,
) -> list[PruneResult]:
    """Prune every finished job of ``config`` (or those named) that ended ``older_than`` ago."""
    root = config.state_dir / "jobs"
    if job_ids:
        folders = [root / job for job in job_ids]
        for folder in folders:
            if not (folder / "spec.json").exists():
                raise ConfigError(
                    f"party '{config.name}' has no job '{folder.name}' ({folder} holds no "
                    "spec.json); name a job folder under its state_dir/jobs"
                )
    else:
        folders = sorted(p for p in root.glob("*/spec.json") if not p.parent.name.startswith("."))
        folders = [p.parent for p in folders]
    when = time.time() if now is None else now
    return [
        prune_job(config, f, older_than=older_than, signer=signer, dry_run=dry_run, now=when)
        for f in folders
    ]


def prune_job(
    config: PartyConfig,
    directory: Path,
    *,
    older_than: float,
    signer: SigningKey | None,
    dry_run: bool = False,
    now: float,
) -> PruneResult:
    """Prune one job folder if it may be (see the module docstring); what was done."""
    job_id = directory.name
    with job_lock(directory):
        state = finished_state(directory)
        if state is None:
            why = "it is not finished (prepared, running, or interrupted and resumable)"
            return PruneResult(job_id, False, why)
        try:
            records = _records(directory)
            existing = read_statement(directory)
        except LianmoError as exc:
            return PruneResult(job_id, False, f"{exc}; prune keeps the evidence as it is")
        ended, why = _ended(directory, state, records)
        if ended is None or now - ended < older_than:
            why = why or f"it ended {_date(ended)}, less than {_age(older_than)} ago"
            return PruneResult(job_id, False, why, state, ended)
        log_key = str(records[0].get("signing_key", UNSIGNED_KEY)) if records else UNSIGNED_KEY
        key = None if log_key == UNSIGNED_KEY else signer
        if key is not None and key.public_hex != log_key:
            why = _rotated(log_key, signer)
            return PruneResult(job_id, False, why, state, ended)
        if log_key != UNSIGNED_KEY and key is None:
            return PruneResult(job_id, False, _rotated(log_key, None), state, ended)
        kept = {str(records[0].get("spec_payload"))} if records else set()
        plan = _plan(directory, kept)
        removals = tuple(
            Removal(what, len(files), sum(s for _, s in files)) for what, files in plan
        )
        if existing is not None and not any(r.files for r in removals):
            why = f"already pruned on {existing.date}"
            return PruneResult(job_id, False, why, state, ended)
        result = PruneResult(job_id, True, "", state, ended, removals, dry_run)
        if dry_run:
            return result
        removed = {p.name for what, files in plan if what == STORE for p, _ in files}
        removed = {name for name in removed if _DIGEST_RE.match(name)}  # not temporaries
        statement = PruneStatement(
            party=config.name,
            job_id=job_id,
            pruned_at=round(now, 6),
            audit_head=str(records[-1]["hash"]) if records else GENESIS,
            records=len(records),
            signing_key=UNSIGNED_KEY,
            removed=tuple(sorted(removed | set(existing.removed if existing else ()))),
            kept=tuple(sorted(kept)),
            folders=FOLDERS,
            bytes_freed=result.bytes_freed + (existing.bytes_freed if existing else 0),
        )
        write_statement(directory, statement.signed(key))  # first: a crash leaves it listed
        for _, files in plan:
            for path, _ in files:
                path.unlink(missing_ok=True)
        for folder in FOLDERS:
            _remove_empty_tree(directory / folder)
        return result


def finished_state(directory: Path) -> str | None:
    """succeeded, failed or cancelled as the job folder records it; None if not finished."""
    if (directory / "result.json").exists():
        return "succeeded"
    try:
        state = json.loads((directory / STATUS_FILE).read_bytes()).get("state")
    except (OSError, ValueError, AttributeError):
        return None
    return str(state) if state in FINISHED else None


def finished_jobs(jobs: Iterable[NodeJob]) -> list[str]:
    """Ids of the node's jobs that are finished and whose thread has ended."""
    done = []
    for job in jobs:
        with job.lock:
            alive = job.thread is not None and job.thread.is_alive()
            if job.state in FINISHED and not alive:
                done.append(job.spec.job_id)
    return done


def _records(directory: Path) -> list[dict[str, object]]:
    path = directory / "audit.jsonl"
    if not path.exists():
        return []
    verify_chain(path)  # LianmoError naming the record: never prune a broken log
    return list(read_records(path))


def _ended(
    directory: Path, state: str, records: list[dict[str, object]]
) -> tuple[float | None, str]:
    """When the job ended: its ``job_end`` record, else (no log) its result or status file."""
    if records:
        last = records[-1]
        if last.get("kind") != "job_end":
            return None, (
                f"its audit log ends at record {len(records) - 1} ('{last.get('kind')}'), not "
                "job_end: the job may still be winding down"
            )
        return float(t.cast(float, last["time"])), ""
    name = "result.json" if state == "succeeded" else STATUS_FILE
    return (directory / name).stat().st_mtime, ""


def _plan(directory: Path, kept: set[str]) -> list[tuple[str, list[tuple[Path, int]]]]:
    """The files to remove, per part of the folder, with their sizes."""
    plan = []
    for what in (*FOLDERS, STORE):
        folder = directory / what
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        if what == STORE:
            files = [p for p in files if p.name not in kept]
        plan.append((what, [(p, p.stat().st_size) for p in files]))
    return plan


def _remove_empty_tree(folder: Path) -> None:
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _rotated(log_key: str, signer: SigningKey | None) -> str:
    have = "no signing key" if signer is None else f"key {key_id(signer.public_hex)}"
    return (
        f"its log is signed with key {key_id(log_key)} but prune has {have} (the party "
        "rotated its signing key since, or runs at audit level 'chain'): a prune statement "
        "under another key could not be checked against the log; pass the job's key with "
        "--signing-key"
    )


def _date(when: float | None) -> str:
    if when is None:
        return "at an unknown time"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))


def _age(seconds: float) -> str:
    return f"{seconds / DAY:g} days" if seconds >= DAY else f"{seconds:g} s"


def size_text(n: float) -> str:
    """Bytes for people: 986.1 KB."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class RetentionWorker:
    """The node's own pruning: at start and then every :data:`CHECK_EVERY_S` seconds.

    Only jobs the node holds as finished, whose thread has ended, are considered
    (``jobs`` lists the node's jobs); :func:`prune_job` then checks the folder under the
    job lock, as ``lianmo state prune`` does.
    """

    def __init__(
        self,
        config: PartyConfig,
        signer: SigningKey | None,
        jobs: Callable[[], list[NodeJob]],
        *,
        older_than: float,
        interval: float = CHECK_EVERY_S,
    ) -> None:
        self._config, self._signer, self._jobs = config, signer, jobs
        self._older_than, self._interval = older_than, interval
        self._stop = threading.Event()
        self.first_pass = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def run_once(self) -> list[PruneResult]:
        """One pass over the node's finished jobs; logs what it pruned."""
        ids = finished_jobs(self._jobs())
        results = []
        for job_id in ids:
            folder = self._config.state_dir / "jobs" / job_id
            try:
                result = prune_job(
                    self._config,
                    folder,
                    older_than=self._older_than,
                    signer=self._signer,
                    now=time.time(),
                )
            except (OSError, LianmoError) as exc:
                _LOG.error("job %s: pruning failed: %s", job_id, exc, extra={"job_id": job_id})
                continue
            level = logging.INFO if result.pruned else logging.DEBUG
            _LOG.log(level, "%s", result.describe(), extra={"job_id": job_id})
            results.append(result)
        return results

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - the node keeps serving; the next pass retries
                _LOG.exception("retention: a pruning pass failed")
            finally:
                self.first_pass.set()
            self._stop.wait(self._interval)
