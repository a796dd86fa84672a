"""A job's output folder: job.json (the spec), coordinator.json (where the job stands,
updated while it runs) and metrics.json (machine-readable results, at the end)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

from lianmo.config import JobSpec
from lianmo.coordinator.results import JobMetrics, JobStatus, PartyStatus, state_of_parties
from lianmo.coordinator.run import JobReport, last_common_round
from lianmo.errors import ConfigError
from lianmo.fileio import write_atomic
from lianmo.transport.control import JobStatusInfo

STATE_FILE = "coordinator.json"


def clear_output(directory: Path) -> None:
    """Remove a previous run's metrics so a failed run never leaves old results looking new."""
    (directory / "metrics.json").unlink(missing_ok=True)


def write_spec(directory: Path, spec: JobSpec) -> None:
    """Write job.json when the job starts: ``lianmo job resume`` reads the spec from it."""
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "job.json", json.loads(spec.to_json()) | {"spec_sha256": spec.digest()})


def read_spec(directory: Path) -> JobSpec:
    """The spec a coordinator wrote to ``directory``; ConfigError if there is none."""
    path = directory / "job.json"
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist: no job was started with this output folder (pass the "
            "folder given to 'lianmo job run --output', default ./jobs/JOB_ID)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read: {exc}") from exc
    raw.pop("spec_sha256", None)
    return JobSpec.from_json(json.dumps(raw).encode())


def job_status(
    spec: JobSpec,
    state: str,
    statuses: Mapping[str, JobStatusInfo],
    *,
    failed_party: str | None = None,
    error: str | None = None,
) -> JobStatus:
    """Where the job stands, from each party's last status, recorded now."""
    return JobStatus(
        job_id=spec.job_id,
        state=state,
        parties={name: PartyStatus.from_info(s) for name, s in statuses.items()},
        last_common_round=last_common_round(spec, statuses),
        failed_party=failed_party,
        error=error,
        updated=time.time(),
    )


def status_from_parties(
    spec: JobSpec, parties: Mapping[str, PartyStatus], *, error: str | None = None
) -> JobStatus:
    """The job's state as its parties report it now (see :func:`state_of_parties`);
    ``error`` says why, if they are cancelled."""
    infos = {n: p.to_info(spec.job_id, n) for n, p in parties.items() if p.state != "unreachable"}
    state, failed = state_of_parties(parties)
    return JobStatus(
        job_id=spec.job_id,
        state=state,
        parties=dict(parties),
        last_common_round=last_common_round(spec, infos),
        failed_party=failed,
        error=parties[failed].error if failed else (error if state == "cancelled" else None),
        updated=time.time(),
    )


def write_status(directory: Path, status: JobStatus) -> None:
    """Record where the job stands (coordinator.json): its state, each party's status."""
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / STATE_FILE, status.to_json())


def read_status(directory: Path) -> JobStatus | None:
    """The last recorded state, or None if no coordinator wrote one (or it is unreadable)."""
    try:
        data = json.loads((directory / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return JobStatus.from_json(data) if isinstance(data, dict) else None


def start_output(directory: Path, spec: JobSpec) -> None:
    """Make a job's output folder: no old metrics, job.json, state ``starting``."""
    clear_output(directory)
    write_spec(directory, spec)
    write_status(directory, job_status(spec, "starting", {}))


def read_metrics(directory: Path) -> JobMetrics | None:
    """The metrics of a finished job (metrics.json), or None if there are none."""
    try:
        data = json.loads((directory / "metrics.json").read_bytes())
    except (OSError, ValueError):
        return None
    return JobMetrics.from_json(data) if isinstance(data, dict) else None


def resolve_job(root: Path, ref: str | os.PathLike[str]) -> Path:
    """A job's output folder, from the folder itself or the job id (a folder under ``root``)."""
    path = Path(ref)
    if (path / "job.json").exists() or path.is_dir() or len(path.parts) > 1:
        return path
    return root / path


def list_jobs(root: Path) -> list[tuple[Path, JobStatus]]:
    """The jobs under ``root`` (folders with a job.json), by job id, with their last state.

    A job whose coordinator never recorded a state is ``unknown``.
    """
    found = []
    for folder in sorted(p for p in root.glob("*") if (p / "job.json").is_file()):
        status = read_status(folder)
        if status is None:
            try:
                job_id = read_spec(folder).job_id
            except ConfigError:
                job_id = folder.name
            status = JobStatus(job_id=job_id, state="unknown")
        found.append((folder, status))
    return found


def write_output(directory: Path, report: JobReport) -> Path:
    """Write metrics.json (and job.json) atomically; return the metrics path."""
    write_spec(directory, report.spec)
    path = directory / "metrics.json"
    _write(path, report.metrics())
    return path


def _write(path: Path, data: object) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
