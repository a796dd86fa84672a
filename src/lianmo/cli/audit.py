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
    from lianmo.node.serving.request_answers import OnlineAnswer


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
        use = data_use_line(log)
        if use:
            click.echo(f"  {'':<12} {use}")
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
                **data_use_json(log),
            }
            for party, log in sorted(verdict.logs.items())
        },
        "problems": [
            {"party": p.party, "record": p.seq, "log": str(p.path), "text": p.text}
            for p in verdict.problems
        ],
        "notes": verdict.notes,
    }


def data_use_json(log: PartyLog) -> dict[str, object]:
    """The purpose and consent summary a party's log records (job_start and data_use)."""
    out: dict[str, object] = {}
    for key in ("purpose", "policy_sha256", "consent_at"):
        if key in log.start:
            out[key] = log.start[key]
    use = next((r for r in reversed(log.records) if r.get("kind") == "data_use"), None)
    if use is not None:
        keys = ("rows", "used", "not_matched", "no_consent", "subjects_sha256", "salt_sha256")
        out["data_use"] = {k: use.get(k) for k in keys}
    return out


def data_use_line(log: PartyLog) -> str:
    """One line: the job's purpose and what it did with this party's ids."""
    found = data_use_json(log)
    parts = [f"purpose '{found['purpose']}'" if "purpose" in found else "no purpose stated"]
    use = found.get("data_use")
    if isinstance(use, dict):
        counts = f"{use['rows']} ids: {use['used']} used, {use['not_matched']} not matched"
        if "consent_at" in found:
            counts += f", {use['no_consent']} without valid consent"
        parts.append(counts)
    if "consent_at" in found:
        parts.append(f"consent register as of {found['consent_at']}")
    elif isinstance(use, dict):
        parts.append("no consent register")
    return "; ".join(parts) if len(parts) > 1 or "purpose" in found else ""


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


@audit.command("subject")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The party's config (TOML): its state_dir and secrets_dir.",
)
@click.option(
    "--id", "customer", required=True, help="The customer's id, as the party's table writes it."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--disclose-salt",
    is_flag=True,
    help="Also print each job's subjects salt, for an auditor to check the answers with "
    "'lianmo audit subject-check' (it lets its holder test any id against that job).",
)
@click.argument("jobs", nargs=-1)
def subject_cmd(
    config_path: Path, customer: str, as_json: bool, disclose_salt: bool, jobs: tuple[str, ...]
) -> None:
    """Answer "was this customer's data used?" for JOBS (default: every job of the party,
    and every online request).

    For each job: used (its rows were in the intersection), not_matched (only its
    blinded id went to alignment), no_consent (left out: no valid consent for the
    job's purpose), absent (not in the data set), or unknown (with the reason). An
    answer is proven when the job's signed log verifies and its data_use record commits
    to the job's subjects file. Needs the party's job seeds (secrets_dir), as replay does.

    Without JOBS it also says on which days, by whom and how often the customer was
    scored online, from the party's request record: proven where the day's file is the
    one a signed seal names (docs/serving.md).
    """
    from lianmo.config import PartyConfig
    from lianmo.node.serving.request_answers import online_answer
    from lianmo.node.subjects import answer, job_folders, job_salt

    config = PartyConfig.load(config_path)
    folders = job_folders(config, jobs)
    answers = [answer(config, customer, folder) for folder in folders]
    online = None if jobs else online_answer(config, customer)
    salts = {}
    if disclose_salt:
        for a, folder in zip(answers, folders, strict=True):
            if a.proven:
                salts[a.job_id] = job_salt(config, folder).hex()
    if as_json:
        found = [{**a.to_json(), **_salt(salts, a.job_id)} for a in answers]
        report: dict[str, object] = {"party": config.name, "jobs": found}
        if online is not None:
            report["online"] = online.to_json()
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"party '{config.name}': {len(answers)} job(s)")
    for a in answers:
        proof = "proven" if a.proven else "NOT proven"
        purpose = f"purpose '{a.purpose}'" if a.purpose else "no purpose"
        click.echo(
            f"  {a.job_id:<24} {a.status:<12} {purpose}: {a.meaning} ({proof}: {a.evidence})"
        )
        if a.job_id in salts:
            click.echo(f"  {'':<24} salt {salts[a.job_id]}")
    if online is not None:
        _print_online(online)


def _print_online(online: OnlineAnswer) -> None:
    click.echo(f"online scoring: {online.days} recorded day(s), {online.proven_days} proven")
    for u in online.uses:
        proof = "proven" if u.proven else "NOT proven"
        click.echo(
            f"  {u.day}  {u.call} by '{u.caller}', model '{u.model}' version '{u.version}': "
            f"asked {u.times} time(s), answered {u.answered} ({proof}: {u.evidence})"
        )
    if not online.uses and online.days:
        proven = (
            "proven"
            if online.proven_days == online.days
            else "proven on " + (f"{online.proven_days} of them")
        )
        click.echo(f"  not scored online on any recorded day ({proven})")
    for day, reason in online.unproven:
        click.echo(f"  {day}  cannot tell: {reason}")
    if online.pruned:
        first, last = online.pruned[0][0], online.pruned[-1][0]
        click.echo(
            f"  {len(online.pruned)} earlier day(s), {first} to {last}, pruned: this party can "
            "no longer tell"
        )


def _salt(salts: dict[str, str], job_id: str) -> dict[str, str]:
    return {"salt": salts[job_id]} if job_id in salts else {}


@audit.command("subject-check")
@click.option("--id", "customer", required=True, help="The customer's id.")
@click.option("--salt", required=True, help="The job's subjects salt, as the party disclosed it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.argument("job", type=click.Path(path_type=Path))
def subject_check_cmd(customer: str, salt: str, as_json: bool, job: Path) -> None:
    """Check, as an auditor, a party's answer for a customer in JOB (a job folder).

    Needs no key and no seed: only the party's job folder (its log and subjects.tsv)
    and the salt it disclosed. The log must verify, its data_use record commit to that
    salt and to the subjects file; then the customer's status is read from the file.
    Exits 9 if any of these fails.
    """
    from lianmo.node.subjects import answer_with_salt

    try:
        raw = bytes.fromhex(salt)
    except ValueError:
        raise click.BadParameter(
            "is not hex: give the salt as the party printed it", param_hint="--salt"
        ) from None
    found = answer_with_salt(job, customer, raw)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
        return
    click.echo(f"{found.job_id}: {found.status}: {found.meaning} (proven: {found.evidence})")


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
