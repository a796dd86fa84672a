"""``lianmo model``: the versions a party serves online, and ``lianmo score``, the client."""

from __future__ import annotations

import getpass
import json
import sys
import typing as t
from pathlib import Path

import click

CONFIG = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The party's config (TOML): its state_dir and signing key.",
)


@click.group("model")
def model() -> None:
    """Model versions for online scoring: list, promote, roll back (docs/serving.md)."""


@model.command("list")
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="One JSON object: versions and promotions.")
def list_cmd(config_path: Path, as_json: bool) -> None:
    """The trained versions this party holds and the one promoted under each name."""
    from lianmo.config import PartyConfig
    from lianmo.node.serving.versions import VersionLog, describe, find_versions

    config = PartyConfig.load(config_path)
    versions = find_versions(config)
    promoted = VersionLog(config).promoted()
    if as_json:
        out = {
            "party": config.name,
            "versions": [describe(v) for v in versions],
            "promoted": {
                name: [p.job_id for p in stack] for name, stack in sorted(promoted.items())
            },
        }
        click.echo(json.dumps(out, indent=2))
        return
    serving = {stack[-1].job_id: name for name, stack in promoted.items() if stack}
    if not versions:
        click.echo(f"party '{config.name}' holds no trained model share yet")
    for v in versions:
        mark = f"  <- serving as '{serving[v.job_id]}'" if v.job_id in serving else ""
        purpose = f", purpose {v.purpose}" if v.purpose else ""
        click.echo(
            f"{v.job_id}  {v.model_type} {v.role}{purpose}  model {v.model_sha256[:12]}  "
            f"spec {v.spec_sha256[:12]}{mark}"
        )
    for name, stack in sorted(promoted.items()):
        if stack:
            earlier = ", ".join(p.job_id for p in stack[:-1]) or "none"
            click.echo(f"model '{name}': serving {stack[-1].job_id} (before it: {earlier})")
    click.echo(_log_line(config))


def _log_line(config: t.Any) -> str:
    """Where the promotion log is, and whose key signed it (its chain was just checked)."""
    from lianmo.audit.signing import SigningKey, key_id
    from lianmo.errors import ConfigError
    from lianmo.node.serving.versions import VersionLog, signing_key_of

    path = VersionLog(config).path
    key = signing_key_of(path)
    if key is None:
        return f"version log: none yet ({path})"
    try:
        current = SigningKey.load(config.signing_key_path, party=config.name).public_hex
    except ConfigError:
        current = None
    whose = "this party's signing key" if key == current else "NOT this party's current key"
    return f"version log: {path}, chain and signatures intact, key {key_id(key)} ({whose})"


@model.command("promote")
@CONFIG
@click.argument("name")
@click.argument("job")
def promote_cmd(config_path: Path, name: str, job: str) -> None:
    """Serve the share trained in JOB as model NAME at this party (signed and logged).

    Promote the same JOB under the same NAME at every party of the model: a host answers
    only for the version it has promoted, so until all have, requests fail with an error
    naming both versions (never a mixed score).
    """
    from lianmo.audit.signing import SigningKey
    from lianmo.config import PartyConfig
    from lianmo.config._rules import NAME_RE
    from lianmo.errors import ConfigError
    from lianmo.node.serving.service import ServingService
    from lianmo.node.serving.versions import Promotion, VersionLog, read_version

    config = PartyConfig.load(config_path)
    if not NAME_RE.fullmatch(name):
        raise ConfigError(f"model name {name!r} is not a name (letters, digits, '_', '.', '-')")
    version = read_version(config, config.state_dir / "jobs" / job)
    if version is None:
        raise ConfigError(
            f"party '{config.name}' has no finished training job '{job}' with a model share "
            f"in {config.state_dir / 'jobs'}; see `lianmo model list --config {config_path}`"
        )
    log = VersionLog(config, SigningKey.load(config.signing_key_path, party=config.name))
    candidate = Promotion(name, job, version.model_sha256, version.spec_sha256, -1)
    service = ServingService(config, versions=log)
    try:  # the share loads and the feature store is built before anything is logged
        loaded = service.load(name, candidate)
    finally:
        service.close()
    promotion = log.promote(name, version, operator=getpass.getuser())
    click.echo(
        f"party '{config.name}' serves '{job}' as model '{name}' ({version.model_type}, "
        f"{version.role}, model {promotion.model_sha256[:12]}); logged in {log.path}; "
        f"feature store: {len(loaded.store.columns)} columns"
    )
    replaced, handover = promotion.replaced, config.serving.handover_s
    if version.role == "host" and replaced is not None and handover > 0:
        click.echo(
            f"it still answers '{version.guest}' for '{replaced.job_id}' for {handover:g} s "
            f"([serving] handover_s): promote '{job}' at the guest within that time"
        )


@model.command("rollback")
@CONFIG
@click.argument("name")
def rollback_cmd(config_path: Path, name: str) -> None:
    """Serve the version promoted before the current one as model NAME (signed and logged)."""
    from lianmo.audit.signing import SigningKey
    from lianmo.config import PartyConfig
    from lianmo.node.serving.versions import VersionLog

    config = PartyConfig.load(config_path)
    log = VersionLog(config, SigningKey.load(config.signing_key_path, party=config.name))
    promotion = log.rollback(name, operator=getpass.getuser())
    click.echo(f"party '{config.name}' serves '{promotion.job_id}' as model '{name}' again")


@click.command("score")
@click.option("--address", required=True, help="host:port of the guest's scoring port.")
@click.option("--party", required=True, help="The guest's party name (its certificate's).")
@click.option("--ca", required=True, type=click.Path(path_type=Path), help="The CA certificate.")
@click.option("--cert", required=True, type=click.Path(path_type=Path), help="Your certificate.")
@click.option("--key", required=True, type=click.Path(path_type=Path), help="Your key.")
@click.option("--model", "model_name", default="default", show_default=True, help="Model name.")
@click.option("--version", default="", help="A version (training job id); default: promoted.")
@click.option("--timeout", default=2.0, show_default=True, help="Seconds.")
@click.option("--json", "as_json", is_flag=True, help="The whole answer as JSON.")
@click.argument("ids", nargs=-1, required=True)
def score_cmd(
    address: str,
    party: str,
    ca: Path,
    cert: Path,
    key: Path,
    model_name: str,
    version: str,
    timeout: float,
    as_json: bool,
    ids: tuple[str, ...],
) -> None:
    """Ask a guest's scoring port for the scores of IDS (a decision engine's call).

    Exits 3 if any id got no score (its line, or its JSON entry, says why).
    """
    from lianmo.transport.scoring import ScoreQuery, ScoringClient
    from lianmo.transport.tls import TlsIdentity

    client = ScoringClient(address, TlsIdentity.load(cert, key, ca), party)
    try:
        answer = client.score(ScoreQuery(model_name, version, ids), timeout)
    finally:
        client.close()
    if as_json:
        click.echo(json.dumps(answer_json(answer), indent=2))
        sys.exit(3 if any(s.error for s in answer.scores) else 0)
    click.echo(f"model '{answer.model}' version {answer.version} ({answer.task})")
    for s in answer.scores:
        if s.error:
            click.echo(f"{s.id}\terror: {s.error}")
        else:
            mark = "\tfallback" if s.fallback else ""
            click.echo(f"{s.id}\t{' '.join(f'{v:.6f}' for v in s.values)}{mark}")
    if any(s.error for s in answer.scores):
        sys.exit(3)


def answer_json(answer: object) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(answer)  # type: ignore[call-overload, no-any-return]
