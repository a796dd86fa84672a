"""``lianmo job status``, ``job list`` and ``job cancel``: where jobs stand, as text or JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from lianmo.config import JobSpec
from lianmo.coordinator.output import list_jobs, read_metrics, read_spec, read_status
from lianmo.coordinator.results import JobStatus, PartyStatus
from lianmo.errors import TransportError


def show_status(
    folder: Path, *, ca: Path | None, cert: Path | None, key: Path | None, as_json: bool = False
) -> None:
    """Print the job's state: live from every party if an identity is given, else recorded."""
    spec = read_spec(folder)
    recorded = read_status(folder)
    asked = None
    if ca is not None and cert is not None and key is not None:
        from lianmo.cli.client import Client

        asked = Client(ca=ca, cert=cert, key=key).status(folder)
    if as_json:
        click.echo(json.dumps(status_json(folder, spec, recorded, asked), indent=2))
        return
    click.echo(f"job '{spec.job_id}' ({spec.task}, {type(spec.model).__name__})")
    if recorded is not None:
        line = f"coordinator: {recorded.state} ({_age(recorded.updated)} ago)"
        if recorded.failed_party:
            line += f"; failed at party '{recorded.failed_party}': {recorded.error or ''}"
        elif recorded.state == "cancelled" and recorded.error:
            line += f"; {recorded.error}"
        click.echo(line)
    if asked is None:
        click.echo("parties (as last recorded; give --ca/--cert/--key to ask them now):")
    else:
        click.echo("parties (asked now):")
    shown = asked or recorded or JobStatus(job_id=spec.job_id, state="unknown")
    for name, party in shown.parties.items():
        click.echo(_party_line(name, party))
    click.echo(f"last round every data party checkpointed: {shown.last_common_round}")


def status_json(
    folder: Path, spec: JobSpec, recorded: JobStatus | None, asked: JobStatus | None
) -> dict[str, object]:
    """``job status --json``: the recorded state (coordinator.json), the parties' statuses
    (asked now if ``asked``), and metrics.json once the job succeeded."""
    base = recorded or JobStatus(job_id=spec.job_id, state="unknown")
    out = base.to_json()
    if recorded is None:
        out["updated"] = None
    if asked is not None:
        out["parties"] = asked.to_json()["parties"]
        out["last_common_round"] = asked.last_common_round
    metrics = read_metrics(folder)
    return {
        **out,
        "output": str(folder),
        "task": spec.task,
        "asked": asked is not None,
        "metrics": None if metrics is None else metrics.to_json(),
    }


def show_list(root: Path, *, as_json: bool = False) -> None:
    """Print the jobs under ``root``: id, state, when it was recorded, folder."""
    jobs = list_jobs(root)
    if as_json:
        rows = [
            {
                "job_id": s.job_id,
                "state": s.state,
                "updated": s.updated or None,
                "output": str(folder),
                "failed_party": s.failed_party,
                "error": s.error,
            }
            for folder, s in jobs
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not jobs:
        click.echo(f"no jobs under {root}")
        return
    click.echo(f"{'JOB':<24} {'STATE':<10} {'UPDATED':>9}  OUTPUT")
    for folder, s in jobs:
        age = f"{_age(s.updated)} ago" if s.updated else "-"
        why = f"  (failed at '{s.failed_party}')" if s.failed_party else ""
        click.echo(f"{s.job_id:<24} {s.state:<10} {age:>9}  {folder}{why}")


def cancel_job(folder: Path, *, ca: Path, cert: Path, key: Path) -> None:
    """Cancel the job at every party, mark its output, say what each party answered."""
    from lianmo.cli.client import Client

    status = Client(ca=ca, cert=cert, key=key).cancel(folder)
    for name, party in status.parties.items():
        click.echo(_party_line(name, party))
    down = [name for name, p in status.parties.items() if p.state == "unreachable"]
    if down:
        raise TransportError(
            f"job '{status.job_id}': could not reach {', '.join(map(repr, down))} to cancel "
            f"it; the others are {status.state}. Run 'lianmo job cancel {folder}' again once "
            "they are back"
        )
    click.echo(f"job '{status.job_id}': {status.state} at every party ({folder})")


def _age(updated: float) -> str:
    seconds = max(0.0, time.time() - updated)
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.0f}h"


def _party_line(name: str, s: PartyStatus) -> str:
    if s.state == "unreachable":
        return f"  {name:<10} unreachable ({s.detail})" if s.detail else f"  {name:<10} unreachable"
    where = f"{s.phase} {s.step}/{s.total_steps}" if s.total_steps else s.phase or "-"
    line = f"  {name:<10} {s.state:<11} {where:<16} checkpoint round {s.checkpoint_round}"
    if s.error:
        line += f"; error ({s.error_kind or 'error'}): {s.error}"
    elif s.detail:
        line += f"; {s.detail}"
    return line
