"""Write a job's output folder: metrics.json (machine-readable) and job.json (the spec)."""

from __future__ import annotations

import json
from pathlib import Path

from lianmo.coordinator.run import JobReport
from lianmo.fileio import write_atomic


def clear_output(directory: Path) -> None:
    """Remove a previous run's metrics so a failed run never leaves old results looking new."""
    (directory / "metrics.json").unlink(missing_ok=True)


def write_output(directory: Path, report: JobReport) -> Path:
    """Write metrics.json and job.json atomically; return the metrics path."""
    directory.mkdir(parents=True, exist_ok=True)
    _write(
        directory / "job.json",
        json.loads(report.spec.to_json()) | {"spec_sha256": report.spec.digest()},
    )
    path = directory / "metrics.json"
    _write(path, report.metrics())
    return path


def _write(path: Path, data: object) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
