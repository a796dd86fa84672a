"""Write a job's output folder: metrics.json (machine-readable) and job.json (the spec)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lianmo.coordinator.run import JobReport


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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
