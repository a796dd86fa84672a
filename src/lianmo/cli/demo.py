"""``lianmo demo``: party nodes as real processes on loopback, and a scenario's jobs.

Makes a throwaway CA and certificates, writes one party config per node, starts
``lianmo party serve`` for each party, runs the jobs as the coordinator and shuts the
nodes down on success, failure and Ctrl-C. Two scenarios (``--scenario``):

- ``credit`` (default): broker (guest), platform (host) and arbiter; one hetero LR job,
  or with ``--workflow scorecard`` the credit scorecard's training and scoring jobs
  (:mod:`lianmo.cli.demo_scorecard`);
- ``suitability``: broker (guest) and platform (host); multi-class SecureBoost, a
  scoring job and the broker's matching step (:mod:`lianmo.cli.demo_suitability`).

Two folders: the output (``demo-output/``: the job's results, each party's config, log
and job folders) is what an auditor may be handed, so it holds no secret; every key and
each party's secrets folder (the jobs' DRBG seeds) go to the secrets folder beside it
(``demo-output-secrets/``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import typing as t
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import click
import yaml

from lianmo.config import JobSpec, ScorecardSpec
from lianmo.errors import ConfigError, TransportError

#: a demo party: role, data set name, shipped file, label column (None: none)
PartyRow = tuple[str, str | None, str | None, str | None]
DEMO_PARTIES: dict[str, PartyRow] = {
    "broker": ("guest", "credit_broker", "credit_broker.csv.gz", "default_next_month"),
    "platform": ("host", "credit_platform", "credit_platform.csv.gz", None),
    "arbiter": ("arbiter", None, None, None),
}
#: what the demo's jobs use the customers' data for (each data set's catalogue allows it)
DEMO_PURPOSE = "credit_scoring"
#: ``--scenario``: the credit model (``--workflow`` picks which) or suitability levels
SCENARIOS = ("credit", "suitability")
#: ``--workflow`` (credit only): one hetero LR job, or the scorecard's training and scoring
WORKFLOWS = ("lr", "scorecard")
LR_EPOCHS = 5
SCORECARD_EPOCHS = ScorecardSpec().epochs
#: the parties a demo node accepts as key-holding arbiter ([policy] arbiters)
DEMO_ARBITERS = tuple(name for name, (role, *_rest) in DEMO_PARTIES.items() if role == "arbiter")


def write_party_config(
    directory: Path,
    name: str,
    certs: Path,
    datasets: Mapping[str, tuple[Path, str, str | None]],
    *,
    audit_level: str = "full",
    arbiters: t.Sequence[str] = DEMO_ARBITERS,
    secrets_dir: Path | None = None,
    dataset_keys: Mapping[str, Mapping[str, t.Any]] | None = None,
) -> Path:
    """Write ``directory/party.toml`` for a node listening on a free loopback port.

    Its ``[policy]`` accepts ``arbiters`` as key holders (the demo's arbiter by default)
    and keeps every other policy default (docs/policy.md). ``secrets_dir`` (default: the
    node's ``state_dir/secrets``) is where it keeps seeds. ``dataset_keys`` adds catalogue
    keys to a data set's table (e.g. ``{"credit": {"categorical": ["sex"]}}``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        f'name = "{name}"',
        'listen = "127.0.0.1:0"',
        'state_dir = "."',
        *([f'secrets_dir = "{secrets_dir.resolve()}"'] if secrets_dir else []),
        "",
        "[tls]",
        f'cert = "{(certs / f"{name}.pem").resolve()}"',
        f'key = "{(certs / f"{name}.key").resolve()}"',
        f'ca = "{(certs / "ca.pem").resolve()}"',
        "",
        "[audit]",
        f'signing_key = "{(certs / f"{name}.signing.key").resolve()}"',
        f'level = "{audit_level}"',
        "",
        "[policy]",
        f"arbiters = {json.dumps(list(arbiters))}",  # a JSON list of strings is TOML too
    ]
    for ds_name, (path, id_col, label) in datasets.items():
        lines += [
            "",
            f"[datasets.{ds_name}]",
            f'path = "{path.resolve()}"',
            f'id_column = "{id_col}"',
        ]
        if label:
            lines.append(f'label_column = "{label}"')
        for key, value in (dataset_keys or {}).get(ds_name, {}).items():
            lines.append(f"{key} = {toml_value(value)}")
    path = directory / "party.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def toml_value(value: t.Any) -> str:
    """A string, number, list or table as a TOML value (tables inline)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # JSON strings, numbers and lists of them are TOML


@contextmanager
def party_processes(
    configs: Mapping[str, Path], *, timeout_s: float = 60.0
) -> Iterator[dict[str, str]]:
    """Start ``lianmo party serve`` per config; yield name -> address; always stop them."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, config in configs.items():
            port_file = config.parent / "node.port"
            port_file.unlink(missing_ok=True)
            log = (config.parent / "node.log").open("wb")
            procs[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lianmo.cli.main",
                    "party",
                    "serve",
                    "--config",
                    str(config),
                    "--port-file",
                    str(port_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
                # own session: Ctrl-C reaches only us, so we can cancel the job cleanly
                # before stopping the nodes ourselves
                start_new_session=True,
            )
        yield {
            name: f"127.0.0.1:{_wait_port(name, procs[name], configs[name], timeout_s)}"
            for name in configs
        }
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_port(name: str, proc: subprocess.Popen[bytes], config: Path, timeout_s: float) -> int:
    port_file = config.parent / "node.port"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (config.parent / "node.log").read_text(errors="replace").strip()
            raise TransportError(f"party node '{name}' exited at start: {log[-2000:]}")
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        time.sleep(0.1)
    raise TransportError(f"party node '{name}' did not start within {timeout_s:.0f}s")


MARKER = ".lianmo-demo-output"


def _reset_output(output: Path) -> None:
    """Wipe a previous demo's output (or secrets), but never a folder the demo did not make."""
    if output.exists():
        if not (output / MARKER).exists() and any(output.iterdir()):
            raise ConfigError(
                f"{output} exists and is not a lianmo demo output folder; choose another "
                "--output or remove it yourself"
            )
        shutil.rmtree(output)
    output.mkdir(parents=True)
    (output / MARKER).write_text("made by lianmo demo; wiped by the next run\n")


@click.command("demo")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the job output and party state go (wiped first); it holds no secret.",
)
@click.option(
    "--secrets",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the keys and the parties' seeds go (wiped first) [default: OUTPUT-secrets].",
)
@click.option(
    "--scenario",
    type=click.Choice(SCENARIOS),
    default="credit",
    show_default=True,
    help="credit: a credit model (see --workflow); suitability: multi-class SecureBoost on "
    "customer risk levels, a scoring job, and products matched to each customer's level.",
)
@click.option(
    "--workflow",
    type=click.Choice(WORKFLOWS),
    default=None,
    help="Credit scenario only. lr (default): one hetero LR job; scorecard: bin, WOE/IV, "
    "select, WOE-LR, scale, then score the same tables (PSI, CSI) and write each party's "
    "model report.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help=f"Credit scenario: training epochs [default: {LR_EPOCHS} for lr, {SCORECARD_EPOCHS} "
    "for scorecard].",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="Suitability scenario: the matching's confidence [default: 0.8].",
)
@click.option("--key-bits", default=2048, show_default=True, help="Paillier key size (>= 2048).")
@click.option(
    "--audit-level",
    type=click.Choice(["full", "chain"]),
    default="full",
    show_default=True,
    help="full: signed logs plus payloads (verify and replay work); chain: hash chain only.",
)
def demo(
    output: Path,
    secrets: Path | None,
    scenario: str,
    workflow: str | None,
    epochs: int | None,
    confidence: float | None,
    key_bits: int,
    audit_level: str,
) -> None:
    """Train a joint model: broker (labels) + platform (behaviour) (+ arbiter for credit).

    The credit scenario trains a credit default model; the suitability scenario
    estimates customers' risk tolerance levels and matches products to them.
    """
    from lianmo.cli.follow import run_and_report, stop_on_signals

    _check_options(scenario, workflow, epochs, confidence)
    workflow = workflow or "lr"
    stop_on_signals()  # Ctrl-C or SIGTERM: cancel the job, then stop the nodes we started
    started = time.perf_counter()
    secrets = secrets_folder(output, secrets)
    if scenario == "suitability":
        from lianmo.cli.demo_suitability import ID_COLUMN, PURPOSE
        from lianmo.cli.demo_suitability import PARTIES as SUITABILITY_PARTIES

        parties: Mapping[str, PartyRow] = SUITABILITY_PARTIES
        certs, configs = lay_out(
            output,
            secrets,
            audit_level=audit_level,
            parties=parties,
            id_column=ID_COLUMN,
            purpose=PURPOSE,
        )
    else:
        certs, configs = lay_out(output, secrets, audit_level=audit_level)
    click.echo(
        f"starting party nodes {', '.join(configs)} (logs in {output}/parties/*/node.log)", err=True
    )
    ca, cert, key = certs / "ca.pem", certs / "coordinator.pem", certs / "coordinator.key"
    with party_processes(configs) as addresses:
        if scenario == "suitability":
            from lianmo.cli.demo_suitability import run_suitability

            spec = run_suitability(
                output,
                addresses,
                key_bits=key_bits,
                confidence=confidence,
                ca=ca,
                cert=cert,
                key=key,
            )
        elif workflow == "scorecard":
            from lianmo.cli.demo_scorecard import run_scorecard

            spec = run_scorecard(
                output,
                addresses,
                epochs=epochs or SCORECARD_EPOCHS,
                key_bits=key_bits,
                ca=ca,
                cert=cert,
                key=key,
            )
        else:
            raw = demo_spec(addresses, epochs=epochs or LR_EPOCHS, key_bits=key_bits)
            (output / "job.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
            spec = JobSpec.from_dict(raw)
            run_and_report(spec, output, ca=ca, cert=cert, key=key)
    click.echo(
        f"demo finished in {time.perf_counter() - started:.1f}s; party state, model "
        f"shares and audit logs in {output}/parties/<party>/jobs/{spec.job_id}/, keys and "
        f"seeds in {secrets}/\n"
        f"audit it: lianmo audit verify {output}; lianmo audit replay --config "
        f"{output}/parties/broker/party.toml {spec.job_id}; lianmo audit report {output}"
    )


def _check_options(
    scenario: str, workflow: str | None, epochs: int | None, confidence: float | None
) -> None:
    """Refuse options of the other scenario (they would be silently ignored)."""
    if scenario == "suitability" and (workflow is not None or epochs is not None):
        raise click.UsageError(
            "--workflow and --epochs belong to the credit scenario; the suitability "
            "scenario trains SecureBoost (drop them, or use --scenario credit)"
        )
    if scenario == "credit" and confidence is not None:
        raise click.UsageError("--confidence belongs to --scenario suitability")


def secrets_folder(output: Path, secrets: Path | None) -> Path:
    """``--secrets``, by default OUTPUT-secrets beside the output; never inside it."""
    secrets = secrets or output.with_name(f"{output.name}-secrets")
    if secrets.resolve().is_relative_to(output.resolve()) or output.resolve().is_relative_to(
        secrets.resolve()
    ):
        raise ConfigError(
            f"--secrets {secrets} and --output {output} overlap; the output is what auditors "
            "may be handed, so keys and seeds go to a folder beside it, not in it"
        )
    return secrets


def lay_out(
    output: Path,
    secrets: Path,
    *,
    audit_level: str = "full",
    parties: Mapping[str, PartyRow] = DEMO_PARTIES,
    id_column: str = "client_id",
    purpose: str = DEMO_PURPOSE,
) -> tuple[Path, dict[str, Path]]:
    """Fresh output and secrets folders, identities and party configs; (certs, configs).

    ``parties``: name -> (role, data set, shipped file, label column), by default the
    credit demo's; each data set's catalogue allows ``purpose`` with all its columns.
    Keys (the CA's in ``secrets/ca``, the parties' and the coordinator's in
    ``secrets/certs``) and each party's ``secrets_dir`` (``secrets/parties/NAME``) live in
    the secrets folder; the output gets the party configs, and the nodes' state.
    """
    from lianmo.cli.wiring import write_identities
    from lianmo.demo_data import demo_file

    _reset_output(output)
    _reset_output(secrets)
    certs = secrets / "certs"
    write_identities(certs, [*parties, "coordinator"], force=True, ca_dir=secrets / "ca")
    configs = {}
    for name, (_role, ds, file, label) in parties.items():
        datasets = {} if ds is None else {ds: (demo_file(str(file)), id_column, label)}
        configs[name] = write_party_config(
            output / "parties" / name,
            name,
            certs,
            datasets,
            audit_level=audit_level,
            secrets_dir=secrets / "parties" / name,
            dataset_keys={ds: {"purposes": {purpose: "*"}} for ds in datasets},
        )
    return certs, configs


def demo_spec(addresses: Mapping[str, str], *, epochs: int, key_bits: int) -> dict[str, t.Any]:
    """The demo job spec as a plain mapping (also written to the output as job.yaml)."""
    return {
        "job_id": "credit-demo",
        "seed": 42,
        "purpose": DEMO_PURPOSE,
        "parties": [
            {
                "name": name,
                "role": role,
                "address": addresses[name],
                **({"dataset": ds} if ds else {}),
            }
            for name, (role, ds, _f, _l) in DEMO_PARTIES.items()
        ],
        "alignment": {"min_intersection": 1000},
        "validation": {"share": 0.2},
        "model": {
            "type": "hetero_lr",
            "epochs": epochs,
            "batch_size": 1024,
            "learning_rate": 0.5,
            "lr_decay": 0.01,
            "l2": 0.0,
            "tol": 1e-4,
            "key_bits": key_bits,
        },
    }
