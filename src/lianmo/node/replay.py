"""``lianmo audit replay``: re-run one party's side of a logged job and compare every output.

Needs what only the party has: its data (through its party config's catalogue), the
job's DRBG seed (``drbg.seed`` in the config's secrets folder, never in the job folder:
:mod:`lianmo.node.job_secrets`) and the job folder's log and payload store. The party's
role runs again exactly as on the node (:func:`run_audited`), with
the logged inbound messages as input; every message it sends and every record it makes
must equal the logged one. Outputs go to a scratch folder that is removed afterwards;
the job folder is not touched. A pruned job (``pruned.json``: :mod:`lianmo.audit.pruned`)
is refused at once: its payloads are gone.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lianmo.audit.log import MessageStats
from lianmo.audit.pruned import STATEMENT_NAME, read_statement
from lianmo.audit.replay import Divergence, ReplayChannel, ReplayRecorder
from lianmo.audit.verify import LOG_NAME, PartyLog, read_log
from lianmo.compute.backend import ComputeBackend, SerialBackend
from lianmo.config import JobSpec, PartyConfig
from lianmo.crypto.drbg import Drbg
from lianmo.errors import AuditError, LianmoError
from lianmo.node.audited_job import logged_limits, logged_start
from lianmo.node.checkpoint import JobCheckpoints
from lianmo.node.job_secrets import replay_seed
from lianmo.node.runtime import run_party
from lianmo.protocols.context import Progress, no_progress


@dataclass(frozen=True)
class ReplayResult:
    """What a passing replay compared."""

    party: str
    job_id: str
    messages: int
    records: int
    model_digest: str | None
    notes: tuple[str, ...] = ()
    """What differs from the logged job without changing any output (e.g. lianmo version)."""


def job_folder(config: PartyConfig, job: str) -> Path:
    """A job id of this party, or a path to a job folder."""
    path = Path(job)
    if (path / LOG_NAME).exists():
        return path
    folder = config.state_dir / "jobs" / job
    if not (folder / LOG_NAME).exists():
        raise AuditError(
            f"party '{config.name}' has no logged job '{job}' ({folder / LOG_NAME} does not "
            "exist); pass a job id from its state_dir/jobs or a job folder"
        )
    return folder


def replay_job(
    config: PartyConfig,
    folder: Path,
    *,
    compute: ComputeBackend | None = None,
    progress: Progress = no_progress,
) -> ReplayResult:
    """Replay the job logged in ``folder``; AuditError (a :class:`Divergence`) if it differs.

    AuditError at once for a pruned job: the payloads it received are gone.
    """
    _refuse_pruned(folder)
    log, problems = read_log(folder / LOG_NAME)
    if problems:
        raise AuditError(
            f"the log does not verify, so there is nothing sound to replay: {problems[0]}"
        )
    if log.party != config.name:
        raise AuditError(
            f"{folder} holds party '{log.party}''s log, but the config is party "
            f"'{config.name}'s; replay a party's job with its own config"
        )
    spec = JobSpec.from_json(log.store.get(str(log.start.get("spec_payload"))))
    seed, seed_note = replay_seed(config, spec.job_id, folder)
    me = spec.party(config.name)
    dataset = None if me.dataset is None else config.dataset(me.dataset)
    data = None if dataset is None else dataset.path
    channel = ReplayChannel(log)
    recorder = ReplayRecorder(log)
    scratch = Path(tempfile.mkdtemp(prefix=f".replay-{spec.job_id}-", dir=folder.parent))
    try:
        outcome = run_party(
            spec,
            config.name,
            rng=Drbg(seed),
            channel=channel,
            checkpoints=JobCheckpoints(None),  # logs the same records, writes no files
            stats=MessageStats(),
            records=recorder,
            compute=compute or SerialBackend(),
            progress=progress,
            dataset=dataset,
            job_dir=scratch,
            signing_key=str(log.start["signing_key"]),
            started_at=logged_start(log.start),
            limits=logged_limits(log.start),
        )
    except Divergence as exc:
        raise Divergence(
            _explain(exc, recorder, log, data), round=exc.round, what=exc.what
        ) from None
    except LianmoError as exc:
        raise Divergence(
            _explain(
                Divergence(f"the replay failed: {exc}", round=recorder.last_round),
                recorder,
                log,
                data,
            )
        ) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rest = channel.leftovers() or recorder.leftovers()
    if rest:
        raise Divergence(_explain(Divergence(rest), recorder, log, data))
    digest = outcome.summary.model_digest
    return ReplayResult(
        party=config.name,
        job_id=spec.job_id,
        messages=channel.compared,
        records=recorder.compared,
        model_digest=None if digest is None else str(digest),
        notes=(*_causes(recorder, data), *([seed_note] if seed_note else [])),
    )


def _refuse_pruned(folder: Path) -> None:
    if not (folder / STATEMENT_NAME).exists():
        return
    statement = read_statement(folder)  # AuditError if malformed
    when = "" if statement is None else f" on {statement.date}"
    raise AuditError(
        f"{folder} was pruned{when} ({STATEMENT_NAME}): the payloads of the messages the party "
        "received and sent are gone, so replay is no longer possible; lianmo audit verify "
        "still checks its chain, signatures and the message digests against its peers' logs"
    )


def _causes(recorder: ReplayRecorder, data: Path | None) -> list[str]:
    """What differs between the logged job_start and the replay's."""
    causes = []
    changed = recorder.changed
    if "seed" in changed:
        causes.append("seed wrong: drbg.seed does not match the seed commitment in the log")
    if "software" in changed:
        logged, now = changed["software"]
        causes.append(f"code version changed: the job ran lianmo {logged}, this is {now}")
    if "data" in changed:
        causes.append(f"data changed: {data} is not the file the job used (its commitment differs)")
    if "consent" in changed:
        causes.append("consent register changed: it is not the register the job used")
    if "policy" in changed:
        causes.append("the data set's purpose policy in the party config changed")
    if "spec" in changed:
        causes.append("the job spec in the store differs from the one logged")
    return causes


def _explain(exc: Divergence, recorder: ReplayRecorder, log: PartyLog, data: Path | None) -> str:
    """The divergence plus its likely cause, from what differs in job_start."""
    causes = _causes(recorder, data)
    where = f"round {exc.round}" if exc.round is not None else "the start of the job"
    cause = "; ".join(causes) or (
        "unknown: seed, data and lianmo version all match the log; the code is not "
        "deterministic here or the log's payloads were altered"
    )
    return (
        f"replay of party '{log.party}' in job '{log.job_id}' diverged at {where}: {exc}. "
        f"Likely cause: {cause}"
    )
