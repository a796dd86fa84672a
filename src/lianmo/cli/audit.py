"""``lianmo audit``: verify, replay and report on jobs from the parties' audit logs."""

from __future__ import annotations

import json
import time
import typing as t
from pathlib import Path

import click

from lianmo.errors import AuditError, LianmoError

if t.TYPE_CHECKING:
    from lianmo.audit.verify import JobVerdict, PartyLog


@click.group("audit")
def audit() -> None:
    """Check what was exchanged in a job, re-run a party's side, write a report."""


@audit.command("verify")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (docs/api.md).")
def verify_cmd(paths: tuple[Path, ...], as_json: bool) -> None:
    """Verify every audit log under PATHS (job folders, state dirs or a demo output).

    Needs no data and no private key. Checks each log's hash chain and signatures and
    its stored payloads, and across the parties of each job that what one logged as
    sent the other logged as received. Exits 9 naming the first bad record otherwise.
    Payloads a party pruned (lianmo state prune) pass if its signed pruned.json lists
    them, with a note that replay is no longer possible.
    With --json the verdict is one JSON object on standard output, whatever it is.
    """
    from lianmo.audit.verify import verify

    try:
        verdicts = verify(list(paths))
    except LianmoError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "error": str(exc), "jobs": []}, indent=2))
        raise
    if as_json:
        report = {"ok": all(v.ok for v in verdicts), "jobs": [_verdict_json(v) for v in verdicts]}
        click.echo(json.dumps(report, indent=2))
    else:
        for verdict in verdicts:
            _print_verdict(verdict)
    failed = [v for v in verdicts if not v.ok]
    if failed:
        raise AuditError(
            f"{len(failed)} of {len(verdicts)} job(s) failed verification; first problem: "
            f"{failed[0].problems[0]}"
        )


def _print_verdict(verdict: JobVerdict) -> None:
    counts = _counts(verdict)
    click.echo(
        f"{'PASS' if verdict.ok else 'FAIL'} job '{verdict.job_id}': {len(verdict.logs)} party "
        f"logs, {counts[0]} records, {counts[1]} message records"
    )
    for party, log in sorted(verdict.logs.items()):
        click.echo(f"  {party:<12} {log.role:<8} signing key {_key_id(log)}  {log.path}")
    for note in verdict.notes:
        click.echo(f"  note: {note}")
    for problem in verdict.problems:
        click.echo(f"  problem: {problem}")


def _verdict_json(verdict: JobVerdict) -> dict[str, object]:
    records, messages = _counts(verdict)
    return {
        "job_id": verdict.job_id,
        "ok": verdict.ok,
        "records": records,
        "message_records": messages,
        "parties": {
            party: {
                "role": log.role,
                "signing_key_id": _key_id(log),
                "records": len(log.records),
                "log": str(log.path),
            }
            for party, log in sorted(verdict.logs.items())
        },
        "problems": [
            {"party": p.party, "record": p.seq, "log": str(p.path), "text": p.text}
            for p in verdict.problems
        ],
        "notes": verdict.notes,
    }


def _counts(verdict: JobVerdict) -> tuple[int, int]:
    records = sum(len(log.records) for log in verdict.logs.values())
    messages = sum(
        1 for log in verdict.logs.values() for r in log.records if r.get("kind") == "message"
    )
    return records, messages


def _key_id(log: PartyLog) -> str:
    from lianmo.audit.signing import key_id

    key = str(log.start.get("signing_key", ""))
    return key_id(key) if len(key) == 64 else "none"


@audit.command("replay")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The party's config (TOML): its data catalogue and state_dir.",
)
@click.argument("job")
def replay_cmd(config_path: Path, job: str) -> None:
    """Re-run this party's side of JOB (a job id or job folder) and compare every output.

    Uses the party's own data, the job's seed (SECRETS/JOB/drbg.seed, where SECRETS is
    the config's secrets_dir, by default state_dir/secrets) and the logged inbound
    messages. Passes if every message sent and every record made is
    byte-identical to the log; otherwise exits 9 naming the round, the message and the
    likely cause (data changed, code version changed, seed wrong). A pruned job
    (pruned.json) cannot be replayed: it exits 9 saying so.
    """
    from lianmo.compute.backend import make_backend
    from lianmo.config import PartyConfig
    from lianmo.node.replay import job_folder, replay_job

    config = PartyConfig.load(config_path)
    folder = job_folder(config, job)
    started = time.perf_counter()
    last = [0.0]

    def progress(phase: str, step: int, total: int, detail: str = "") -> None:
        now = time.perf_counter()
        if now - last[0] >= 2.0 or step == total:
            last[0] = now
            click.echo(f"  replaying {phase} {step}/{total} {detail}", err=True)

    compute = make_backend(
        config.compute_backend,
        config.compute_workers,
        config.compute_address,
        ray_tls=config.ray_tls,
    )
    try:
        click.echo(f"replaying party '{config.name}' from {folder}", err=True)
        result = replay_job(config, folder, compute=compute, progress=progress)
    finally:
        compute.close()
    click.echo(
        f"PASS replay of party '{result.party}' in job '{result.job_id}': "
        f"{result.messages} messages sent and {result.records} records identical to the log"
        + (f"; model digest {result.model_digest[:16]}..." if result.model_digest else "")
        + f" ({time.perf_counter() - started:.1f}s)"
    )
    for note in result.notes:
        click.echo(f"note: {note} (the outputs are identical all the same)")


@audit.command("report")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("audit-report"),
    show_default=True,
    help="Folder for report.html and report.md.",
)
def report_cmd(paths: tuple[Path, ...], out: Path) -> None:
    """Write an HTML (with charts) and a markdown report of the jobs logged under PATHS.

    The report is written whatever the verdict, so an auditor sees what failed; the
    command then exits 9 if any job failed verification.
    """
    from lianmo.audit.report import write_report
    from lianmo.audit.verify import verify

    verdicts = verify(list(paths))
    written = write_report(verdicts, out)
    for path in written:
        click.echo(f"wrote {path}")
    failed = [v.job_id for v in verdicts if not v.ok]
    if failed:
        raise AuditError(
            f"wrote the report to {out}, but {len(failed)} of {len(verdicts)} job(s) failed "
            f"verification ({', '.join(failed)}); the report lists the problems"
        )
