"""The ``lianmo`` command: the composition root wiring config, gRPC, nodes and coordinator."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import typing as t
from pathlib import Path

import click

from lianmo.config import JobSpec, PartyConfig
from lianmo.errors import ConfigError, JobFailedError, LianmoError
from lianmo.fileio import write_atomic

_IDENTITY_HELP = "coordinator TLS {}: defaults to $LIANMO_{}"


def identity_options(fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """--ca/--cert/--key options for commands that act as the coordinator."""
    for name in ("key", "cert", "ca"):
        fn = click.option(
            f"--{name}",
            envvar=f"LIANMO_{name.upper()}",
            required=True,
            type=click.Path(path_type=Path),
            help=_IDENTITY_HELP.format(name, name.upper()),
        )(fn)
    return fn


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
@click.version_option(package_name="lianmo")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """lianmo (联模): privacy-preserving vertical federated learning.

    Logs go to stderr: $LIANMO_LOG_LEVEL (default WARNING; INFO for 'party serve') and
    $LIANMO_LOG_FORMAT (text or json, one object per line).
    """
    from lianmo.cli.logs import configure_logging

    ctx.obj = {"verbose": verbose}
    configure_logging(verbose=verbose)


# ---- certs ---------------------------------------------------------------------------


@cli.group()
def certs() -> None:
    """Make TLS identities (a CA and one certificate per party)."""


@certs.command("init")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--name",
    "names",
    multiple=True,
    required=True,
    help="A party (or 'coordinator') to issue a certificate for; repeat.",
)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def certs_init(directory: Path, names: tuple[str, ...], force: bool) -> None:
    """Write ca.pem/ca.key, NAME.pem/NAME.key and NAME.signing.key for every --name.

    For a throwaway setup only: in production each institution's certificates come
    from a CA both sides agreed on (see README.md, "Certificates"). NAME.signing.key is
    the Ed25519 key a party signs its audit logs with.
    """
    from lianmo.cli.wiring import write_identities

    write_identities(directory, names, force=force)
    click.echo(
        f"wrote a CA, certificates and audit signing keys for {', '.join(names)} to {directory}"
    )


@certs.command("signing-key")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing key (rotation).")
def certs_signing_key(path: Path, force: bool) -> None:
    """Make a party's Ed25519 audit signing key at PATH (or rotate it with --force).

    Rotation does not affect old jobs: each log carries the public key it was signed
    with, and the party's peers logged that key when the job started.
    """
    from lianmo.audit.signing import key_id, write_signing_key

    key = write_signing_key(path, force=force)
    click.echo(f"wrote signing key {path} (key id {key_id(key.public_hex)})")


# ---- party ---------------------------------------------------------------------------


@cli.group()
def party() -> None:
    """Run a party node."""


@party.command("serve")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Party config (TOML).",
)
@click.option(
    "--port-file",
    type=click.Path(path_type=Path),
    help="Write the bound port here once listening (useful with port 0).",
)
@click.pass_context
def party_serve(ctx: click.Context, config_path: Path, port_file: Path | None) -> None:
    """Serve this party's node until SIGINT/SIGTERM.

    The node logs every job's life at INFO: set $LIANMO_LOG_LEVEL to change the level and
    $LIANMO_LOG_FORMAT=json for one JSON object per line (docs/operations.md).
    """
    from lianmo.cli.logs import configure_logging
    from lianmo.cli.wiring import load_identity, start_health_port, start_party_node
    from lianmo.transport.grpc_server import HealthServicer

    logs = configure_logging(
        default_level="INFO", verbose=dict(ctx.obj or {}).get("verbose", False)
    )
    say = _node_logger(logs.json)
    config = PartyConfig.load(config_path)
    stop = threading.Event()  # handlers first: a supervisor may signal once the port is out
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    health = HealthServicer()
    node, server, port = start_party_node(config, load_identity(config), health=health)
    host = config.listen.rsplit(":", 1)[0]
    health_port = start_health_port(config, health)
    health_note = "" if health_port is None else f"; health checks on port {health_port[1]}"
    say(
        f"party '{config.name}' listening on {host}:{port} (mutual TLS); "
        f"state in {config.state_dir}{health_note}"
    )
    if port_file is not None:
        write_atomic(port_file, str(port).encode())
    stop.wait()
    health.enter_graceful_shutdown()  # probes see NOT_SERVING while the node drains
    server.stop(grace=2.0).wait()
    if health_port is not None:
        health_port[0].stop(0).wait()
    node.close()
    say(f"party '{config.name}' stopped")


def _node_logger(json_lines: bool) -> t.Callable[[str], None]:
    """How ``party serve`` announces itself: a plain line, or in JSON logs an INFO record
    (so that every line of a JSON log parses)."""
    if not json_lines:
        return lambda message: click.echo(message, err=True)
    return logging.getLogger("lianmo.node").info


@party.command("health")
@click.option(
    "--address",
    required=True,
    help="host:port of the node's plaintext health port (its health_listen).",
)
@click.option("--timeout", "timeout_s", default=5.0, show_default=True, help="Seconds.")
def party_health(address: str, timeout_s: float) -> None:
    """Ask a node's gRPC health service; exit 0 only if it answers SERVING.

    The image's HEALTHCHECK and other probes without a client certificate use this.
    """
    from lianmo.transport.grpc_channel import check_health_plaintext

    status = check_health_plaintext(address, timeout_s)
    click.echo(f"{status} ({address})")


# ---- jobs ----------------------------------------------------------------------------


@cli.group()
def job() -> None:
    """Run jobs across party nodes (as the coordinator)."""


def coordinator_command(fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """SPEC_PATH, --output and the coordinator's TLS identity options."""
    fn = identity_options(fn)
    fn = click.option(
        "--output",
        type=click.Path(path_type=Path),
        default=None,
        help="Where to write metrics.json and job.json (default: ./jobs/JOB_ID).",
    )(fn)
    return click.argument("spec_path", type=click.Path(path_type=Path))(fn)


@job.command("run")
@coordinator_command
def job_run(spec_path: Path, output: Path | None, ca: Path, cert: Path, key: Path) -> None:
    """Run the job in SPEC_PATH (YAML) and write its metrics."""
    spec = JobSpec.load(spec_path)
    run_and_report(spec, output or Path("jobs") / spec.job_id, ca=ca, cert=cert, key=key)


@cli.command("predict")
@coordinator_command
def predict_cmd(spec_path: Path, output: Path | None, ca: Path, cert: Path, key: Path) -> None:
    """Score aligned ids with a trained model (SPEC has task: predict and model_job).

    The guest receives the scores, in scores.csv in its job folder.
    """
    spec = JobSpec.load(spec_path)
    if spec.task != "predict":
        raise ConfigError(f"{spec_path}: 'lianmo predict' needs task: predict in the spec")
    run_and_report(spec, output or Path("jobs") / spec.job_id, ca=ca, cert=cert, key=key)


def stop_on_signals() -> None:
    """Turn SIGTERM (and SIGINT, even if inherited as ignored) into KeyboardInterrupt.

    Coordinator commands then unwind through their ``finally`` blocks: the job is
    cancelled at every party and any node processes they started are stopped.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_and_report(
    spec: JobSpec, output: Path, *, ca: Path, cert: Path, key: Path, resume: bool = False
) -> dict[str, t.Any]:
    """Coordinate ``spec`` over gRPC, show progress, write and print the results."""
    from lianmo.cli.progress import ProgressView
    from lianmo.coordinator.output import clear_output, write_output, write_spec, write_state
    from lianmo.coordinator.run import run_job
    from lianmo.transport.grpc_channel import ControlClient
    from lianmo.transport.tls import TlsIdentity

    stop_on_signals()
    identity = TlsIdentity.load(cert, key, ca, party="coordinator")
    clear_output(output)
    write_spec(output, spec)
    clients = {p.name: ControlClient(p.address, p.name, identity) for p in spec.parties}
    view = ProgressView()
    last: dict[str, t.Any] = {}

    def progress(statuses: t.Mapping[str, t.Any]) -> None:
        view(statuses)
        last.update(statuses)
        write_state(output, spec, "running", statuses)

    try:
        if not resume:
            for client in clients.values():
                client.wait_healthy(timeout_s=30.0)
        click.echo(
            f"job '{spec.job_id}': {'resuming with ' if resume else ''}{len(clients)} parties "
            f"{'' if resume else 'reachable '}"
            f"({', '.join(f'{p.name}={p.role}' for p in spec.parties)})",
            err=True,
        )
        report = run_job(spec, clients, on_progress=progress, resume=resume)
    except JobFailedError as exc:
        write_state(output, spec, "failed", last, failed_party=exc.party, error=exc.reason)
        raise
    finally:
        view.close()
        for client in clients.values():
            client.close()
    path = write_output(output, report)
    write_state(output, spec, "succeeded", last)
    metrics = report.metrics()
    print_summary(metrics, path)
    return metrics


def job_folder(job_ref: str) -> Path:
    """A job's coordinator output folder, from the folder itself or the job id."""
    path = Path(job_ref)
    return path if (path / "job.json").exists() or path.is_dir() else Path("jobs") / job_ref


@job.command("resume")
@click.argument("job_ref", metavar="JOB")
@identity_options
def job_resume(job_ref: str, ca: Path, cert: Path, key: Path) -> None:
    """Resume JOB (its output folder, or its id under ./jobs) from the parties' checkpoints.

    Every party that stopped -- failed, cancelled, or interrupted by a node restart --
    continues from its own latest checkpoint; running parties are watched as they are.
    The final model and metrics are those of an uninterrupted run.
    """
    from lianmo.coordinator.output import read_spec

    folder = job_folder(job_ref)
    spec = read_spec(folder)
    run_and_report(spec, folder, ca=ca, cert=cert, key=key, resume=True)


@job.command("status")
@click.argument("job_ref", metavar="JOB")
@click.option("--ca", envvar="LIANMO_CA", type=click.Path(path_type=Path), default=None)
@click.option("--cert", envvar="LIANMO_CERT", type=click.Path(path_type=Path), default=None)
@click.option("--key", envvar="LIANMO_KEY", type=click.Path(path_type=Path), default=None)
def job_status(job_ref: str, ca: Path | None, cert: Path | None, key: Path | None) -> None:
    """Where JOB stands and why it stopped: asks every party if the coordinator's TLS
    identity is given (--ca/--cert/--key or $LIANMO_*), else shows the last recorded state."""
    from lianmo.cli.status import show_status

    show_status(job_folder(job_ref), ca=ca, cert=cert, key=key)


def print_summary(metrics: dict[str, t.Any], path: Path) -> None:
    """Human summary of a finished job: the model's own metrics, losses, time, traffic."""
    if metrics.get("validation"):
        click.echo(metric_line("validation", metrics["validation"]))
    if metrics.get("metrics"):
        click.echo(metric_line("scored rows", metrics["metrics"]))
    if metrics.get("task") == "align" and "aligned" in metrics:
        click.echo(f"aligned {metrics['aligned']} ids common to every data party")
    per = "round" if "trees" in metrics else "epoch"
    if metrics.get("loss"):
        click.echo(f"training loss per {per}: " + _numbers(metrics["loss"], ".5f"))
    if metrics.get("validation_loss"):
        click.echo(f"validation loss per {per}: " + _numbers(metrics["validation_loss"], ".5f"))
    if metrics.get("epoch_seconds"):
        click.echo("seconds per epoch: " + _numbers(metrics["epoch_seconds"], ".1f"))
    click.echo(f"wall time {metrics['wall_seconds']:.1f}s")
    for name, p in metrics["parties"].items():
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in p["phase_seconds"].items())
        sent = (p["bytes_sent"] or 0) / 2**20
        click.echo(
            f"  {name:<10} {p['role']:<8} sent {p['messages_sent']} messages "
            f"({sent:.1f} MiB); {phases}"
        )
    click.echo(f"metrics: {path}")


#: what each kind of model reports, as (key, label); the first key tells the kind
_METRICS = (
    (("auc", "AUC"), ("ks", "KS")),  # binary
    (("accuracy", "accuracy"), ("log_loss", "log loss")),  # multi-class
    (("rmse", "RMSE"), ("mae", "MAE"), ("r2", "R²")),  # regression
)


def metric_line(scope: str, values: t.Mapping[str, t.Any]) -> str:
    """``scope`` followed by the metrics the guest reported for its kind of model.

    Binary models report AUC and KS, multi-class ones accuracy and log loss, regression
    RMSE, MAE and R²; a metric of another name is shown as it is named.
    """
    known = next((names for names in _METRICS if names[0][0] in values), ())
    shown = [f"{label} {float(values[key]):.4f}" for key, label in known if key in values]
    listed = {key for key, _ in known} | {"rows"}
    shown += [f"{key} {value}" for key, value in sorted(values.items()) if key not in listed]
    rows = f"  ({values['rows']} rows)" if "rows" in values else ""
    return f"{scope} {'  '.join(shown)}{rows}"


def _numbers(values: t.Iterable[float], spec: str) -> str:
    return ", ".join(format(v, spec) for v in values)


# ---- entry point ---------------------------------------------------------------------


def _register_demo() -> None:
    from lianmo.cli.audit import audit
    from lianmo.cli.data import data
    from lianmo.cli.demo import demo

    cli.add_command(audit)
    cli.add_command(data)
    cli.add_command(demo)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors (no traceback) with a distinct exit code per class."""
    # grpc's C core logs TLS handshake failures to stderr at INFO; our one-line error says it
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    _register_demo()
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except JobFailedError as exc:
        click.echo(f"lianmo: {exc}", err=True)
        sys.exit(exc.exit_code)
    except LianmoError as exc:
        click.echo(f"lianmo: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
