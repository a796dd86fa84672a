"""``lianmo job status``: where a job stands at each party, and why it stopped."""

from __future__ import annotations

import time
import typing as t
from pathlib import Path

import click

from lianmo.coordinator.output import read_spec, read_state
from lianmo.coordinator.run import last_common_round
from lianmo.errors import LianmoError
from lianmo.transport.control import JobStatusInfo


def show_status(folder: Path, *, ca: Path | None, cert: Path | None, key: Path | None) -> None:
    """Print the job's state: live from every party if an identity is given, else recorded."""
    spec = read_spec(folder)
    recorded = read_state(folder) or {}
    click.echo(f"job '{spec.job_id}' ({spec.task}, {type(spec.model).__name__})")
    if recorded:
        age = time.time() - float(recorded.get("updated", time.time()))
        line = f"coordinator: {recorded.get('state', '?')} ({age:.0f}s ago)"
        if recorded.get("failed_party"):
            line += f"; failed at party '{recorded['failed_party']}': {recorded.get('error', '')}"
        click.echo(line)
    if ca is None or cert is None or key is None:
        click.echo("parties (as last recorded; give --ca/--cert/--key to ask them now):")
        for name, p in dict(recorded.get("parties", {})).items():
            click.echo(_party_line(name, JobStatusInfo(spec.job_id, name, **_fields(p))))
        click.echo(f"last round every data party checkpointed: {recorded.get('last_common_round')}")
        return
    statuses = _ask(spec.party_names, spec, ca=ca, cert=cert, key=key)
    click.echo("parties (asked now):")
    for name in spec.party_names:
        status = statuses.get(name)
        click.echo(f"  {name:<10} unreachable" if status is None else _party_line(name, status))
    reachable = {n: s for n, s in statuses.items() if s is not None}
    click.echo(f"last round every data party checkpointed: {last_common_round(spec, reachable)}")


def _ask(
    names: tuple[str, ...], spec: t.Any, *, ca: Path, cert: Path, key: Path
) -> dict[str, JobStatusInfo | None]:
    from lianmo.transport.grpc_channel import ControlClient
    from lianmo.transport.tls import TlsIdentity

    identity = TlsIdentity.load(cert, key, ca, party="coordinator")
    out: dict[str, JobStatusInfo | None] = {}
    for party in spec.parties:
        with ControlClient(party.address, party.name, identity, deadline_s=5.0, retries=1) as c:
            try:
                out[party.name] = c.status(spec.job_id)
            except LianmoError as exc:
                click.echo(f"  ({party.name}: {exc})", err=True)
                out[party.name] = None
    return out


def _fields(raw: dict[str, t.Any]) -> dict[str, t.Any]:
    keys = ("state", "phase", "step", "total_steps", "checkpoint_round", "detail", "error")
    return {k: raw[k] for k in (*keys, "error_kind") if k in raw}


def _party_line(name: str, s: JobStatusInfo) -> str:
    where = f"{s.phase} {s.step}/{s.total_steps}" if s.total_steps else s.phase or "-"
    line = f"  {name:<10} {s.state:<11} {where:<16} checkpoint round {s.checkpoint_round}"
    if s.error:
        line += f"; error ({s.error_kind or 'error'}): {s.error}"
    elif s.detail:
        line += f"; {s.detail}"
    return line
