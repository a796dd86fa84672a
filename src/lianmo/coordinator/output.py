"""Write a job's output folder: job.json (the spec), coordinator.json (where the job
stands, updated while it runs) and metrics.json (machine-readable results, at the end)."""

from __future__ import annotations

import json
import time
import typing as t
from collections.abc import Mapping
from pathlib import Path

from lianmo.config import JobSpec
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


def write_state(
    directory: Path,
    spec: JobSpec,
    state: str,
    statuses: Mapping[str, JobStatusInfo],
    **extra: t.Any,
) -> None:
    """Record where the job stands: its state, each party's last status, the common round."""
    parties = {
        name: {
            "state": s.state,
            "phase": s.phase,
            "step": s.step,
            "total_steps": s.total_steps,
            "checkpoint_round": s.checkpoint_round,
            "detail": s.detail,
            "error": s.error,
            "error_kind": s.error_kind,
        }
        for name, s in statuses.items()
    }
    data = {
        "job_id": spec.job_id,
        "state": state,
        "updated": round(time.time(), 3),
        "last_common_round": last_common_round(spec, statuses),
        "parties": parties,
        **extra,
    }
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / STATE_FILE, data)


def read_state(directory: Path) -> dict[str, t.Any] | None:
    """The last recorded state, or None if the coordinator never wrote one."""
    try:
        data = json.loads((directory / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_output(directory: Path, report: JobReport) -> Path:
    """Write metrics.json (and job.json) atomically; return the metrics path."""
    write_spec(directory, report.spec)
    path = directory / "metrics.json"
    _write(path, report.metrics())
    return path


def _write(path: Path, data: object) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
