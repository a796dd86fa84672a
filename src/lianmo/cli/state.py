"""``lianmo state``: look after a party's state folder (retention of finished jobs)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("state")
def state() -> None:
    """Look after a party node's state_dir."""


@state.command("prune")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The party's config (TOML): its state_dir and signing key.",
)
@click.option(
    "--older-than",
    "older_than",
    default=None,
    help="Prune jobs that ended longer ago than this: 30d, 12h, 90m, 45s "
    "[default: [retention] prune_after_days of the config; 0 when JOBs are named].",
)
@click.option(
    "--signing-key",
    type=click.Path(path_type=Path),
    default=None,
    help="Sign the prune statements with this key, e.g. the one a job was signed with "
    "before a rotation [default: the config's signing key].",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.argument("jobs", nargs=-1)
def prune_cmd(
    config_path: Path,
    older_than: str | None,
    signing_key: Path | None,
    dry_run: bool,
    jobs: tuple[str, ...],
) -> None:
    """Remove finished jobs' inboxes, checkpoints and message payloads (all JOBS by default).

    Only jobs that succeeded, failed or were cancelled, whose log ends with job_end,
    and that ended longer ago than --older-than. Keeps the audit log, the job spec and
    its payload, result or status, the model share and every output, and the job's seed;
    writes a signed pruned.json, so lianmo audit verify still passes (noting that replay
    is no longer possible). A pruned job cannot resume. Safe while the node runs.
    """
    from lianmo.audit.signing import SigningKey
    from lianmo.config import PartyConfig
    from lianmo.node.retention import DAY, parse_age, prune_jobs, size_text

    config = PartyConfig.load(config_path)
    if older_than is not None:
        age = parse_age(older_than)
    elif config.prune_after_days is not None:
        age = config.prune_after_days * DAY
    elif jobs:
        age = 0.0
    else:
        raise click.UsageError(
            "say how old a finished job must be to be pruned: --older-than 30d, or "
            "[retention] prune_after_days in the party config; or name the JOBs"
        )
    key_path = signing_key or config.signing_key_path
    full = config.audit_level == "full" or signing_key is not None
    signer = SigningKey.load(key_path, party=config.name) if full else None
    results = prune_jobs(config, older_than=age, signer=signer, job_ids=jobs, dry_run=dry_run)
    for result in results:
        click.echo(result.describe())
    pruned = [r for r in results if r.pruned]
    total = sum(r.bytes_freed for r in pruned)
    verb = "would prune" if dry_run else "pruned"
    freed = "would free" if dry_run else "freed"
    click.echo(
        f"{verb} {len(pruned)} of {len(results)} job(s) of party '{config.name}': {freed} "
        f"{size_text(total)}{' (dry run: nothing removed)' if dry_run else ''}"
    )
