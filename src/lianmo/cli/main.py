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

from lianmo.config import PartyConfig
from lianmo.errors import JobFailedError, LianmoError
from lianmo.fileio import write_atomic

if t.TYPE_CHECKING:
    from lianmo.cli.follow import run_and_report as run_and_report
    from lianmo.cli.follow import stop_on_signals as stop_on_signals
    from lianmo.cli.summary import metric_line as metric_line
    from lianmo.cli.summary import print_summary as print_summary

#: names that moved out of this module, still importable from it (scripts use them)
_MOVED = {
    "run_and_report": "lianmo.cli.follow",
    "stop_on_signals": "lianmo.cli.follow",
    "print_summary": "lianmo.cli.summary",
    "metric_line": "lianmo.cli.summary",
}


def __getattr__(name: str) -> object:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_MOVED[name]), name)


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
@click.option(
    "--ca-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the CA key ca.key (mode 0700) [default: DIRECTORY/ca]. Never mount "
    "it into a party node.",
)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def certs_init(directory: Path, names: tuple[str, ...], ca_dir: Path | None, force: bool) -> None:
    """Write ca.pem, NAME.pem/NAME.key and NAME.signing.key for every --name; the CA key apart.

    The CA key goes to its own folder (--ca-dir): whoever holds it can mint any party's
    certificate, so it never belongs among the files a party node gets. For a throwaway
    setup only: in production each institution's certificates come from a CA both sides
    agreed on (see README.md, "Certificates"). NAME.signing.key is the Ed25519 key a
    party signs its audit logs with.
    """
    from lianmo.cli.wiring import write_identities

    ca_key = write_identities(directory, names, force=force, ca_dir=ca_dir)
    click.echo(
        f"wrote a CA, certificates and audit signing keys for {', '.join(names)} to "
        f"{directory}; the CA key to {ca_key} (keep it off the party nodes)"
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
@click.option(
    "--serving-port-file",
    type=click.Path(path_type=Path),
    help="Write the online scoring port here once listening ([serving] listen).",
)
@click.pass_context
def party_serve(
    ctx: click.Context, config_path: Path, port_file: Path | None, serving_port_file: Path | None
) -> None:
    """Serve this party's node until SIGINT/SIGTERM.

    The node logs every job's life at INFO: set $LIANMO_LOG_LEVEL to change the level and
    $LIANMO_LOG_FORMAT=json for one JSON object per line (docs/operations.md).
    """
    from lianmo.cli.logs import configure_logging
    from lianmo.cli.wiring import (
        load_identity,
        start_health_port,
        start_metrics_port,
        start_party_node,
        start_scoring,
    )
    from lianmo.metrics import NodeMetrics
    from lianmo.transport.grpc_server import HealthServicer

    logs = configure_logging(
        default_level="INFO", verbose=dict(ctx.obj or {}).get("verbose", False)
    )
    say = _node_logger(logs.json)
    config = PartyConfig.load(config_path)
    stop = threading.Event()  # handlers first: a supervisor may signal once the port is out
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    health, metrics = HealthServicer(), NodeMetrics(party=config.name)
    metrics_port = start_metrics_port(config, metrics)  # a port in use: stop before serving
    identity = load_identity(config)
    node, server, port = start_party_node(config, identity, health=health, metrics=metrics)
    host = config.listen.rsplit(":", 1)[0]
    scoring = start_scoring(config, identity, metrics=metrics)
    health_port = start_health_port(config, health)  # last: ready means every port is up
    notes = "" if health_port is None else f"; health checks on port {health_port[1]}"
    if metrics_port is not None:
        notes += f"; metrics (plaintext HTTP) on port {metrics_port[1]}"
    if scoring is not None:
        notes += f"; online scoring on port {scoring[2]}"
        if serving_port_file is not None:
            write_atomic(serving_port_file, str(scoring[2]).encode())
    say(
        f"party '{config.name}' listening on {host}:{port} (mutual TLS); "
        f"state in {config.state_dir}{notes}"
    )
    if port_file is not None:
        write_atomic(port_file, str(port).encode())
    stop.wait()
    health.enter_graceful_shutdown()  # probes see NOT_SERVING while the node drains
    if scoring is not None:
        scoring[1].stop(grace=1.0).wait()
        scoring[0].close()
    server.stop(grace=2.0).wait()
    if health_port is not None:
        health_port[0].stop(0).wait()
    if metrics_port is not None:
        metrics_port[0].shutdown()
        metrics_port[0].server_close()
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


# ---- entry point ---------------------------------------------------------------------


def _register_commands() -> None:
    from lianmo.cli.audit import audit
    from lianmo.cli.data import data
    from lianmo.cli.demo import demo
    from lianmo.cli.http_front import http_front
    from lianmo.cli.job import job, predict_cmd
    from lianmo.cli.model import model, score_cmd
    from lianmo.cli.report import report_cmd
    from lianmo.cli.state import state
    from lianmo.cli.suitability import suitability

    cli.add_command(job)
    cli.add_command(predict_cmd)
    cli.add_command(model)
    cli.add_command(score_cmd)
    cli.add_command(http_front)
    cli.add_command(audit)
    cli.add_command(data)
    cli.add_command(demo)
    cli.add_command(report_cmd)
    cli.add_command(state)
    cli.add_command(suitability)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors (no traceback) with a distinct exit code per class."""
    # grpc's C core logs TLS handshake failures to stderr at INFO; our one-line error says it
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    _register_commands()
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
