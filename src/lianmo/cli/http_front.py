"""``lianmo http-front``: the HTTP/JSON front for decision engines, and its bearer tokens."""

from __future__ import annotations

import importlib
import ipaddress
import types
from pathlib import Path

import click

from lianmo.errors import ConfigError
from lianmo.fileio import write_atomic

#: the packages of the optional extra `http`
EXTRA_PACKAGES = ("starlette", "uvicorn", "anyio", "h11")

TOKENS = click.option(
    "--tokens",
    "tokens_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The tokens file: one sha256 digest and name per line, never a token.",
)


@click.group("http-front")
def http_front() -> None:
    """An HTTP/JSON front on a guest's scoring port, for decision engines (docs/serving.md)."""


def front_module() -> types.ModuleType:
    """:mod:`lianmo.transport.http_front`, or a ConfigError saying how to install it."""
    try:
        module = importlib.import_module("lianmo.transport.http_front")
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in EXTRA_PACKAGES:
            raise
        raise ConfigError(
            f"the HTTP front needs the optional extra 'http' ({exc.name} is not installed): "
            "pip install 'lianmo[http]'"
        ) from exc
    return module


@http_front.command("serve")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT.")
@click.option("--guest", required=True, help="host:port of the guest's scoring port.")
@click.option("--party", required=True, help="The guest's party name (its certificate's).")
@click.option("--ca", required=True, type=click.Path(path_type=Path), help="The CA certificate.")
@click.option(
    "--cert",
    required=True,
    type=click.Path(path_type=Path),
    help="The front's certificate to the guest (a name in its [serving] clients).",
)
@click.option("--key", required=True, type=click.Path(path_type=Path), help="Its key.")
@TOKENS
@click.option("--tls-cert", type=click.Path(path_type=Path), help="HTTPS certificate (PEM).")
@click.option("--tls-key", type=click.Path(path_type=Path), help="HTTPS private key (PEM).")
@click.option("--timeout", default=2.0, show_default=True, help="Seconds, if a request sets none.")
@click.option("--max-ids", default=1000, show_default=True, help="Ids per request, at most.")
@click.option("--max-body", default=1 << 20, show_default=True, help="Bytes per request body.")
@click.option("--max-inflight", default=64, show_default=True, help="Requests at the guest.")
@click.option(
    "--port-file",
    type=click.Path(path_type=Path),
    help="Write the bound port here once listening (useful with port 0).",
)
@click.pass_context
def serve_cmd(
    ctx: click.Context,
    listen: str,
    guest: str,
    party: str,
    ca: Path,
    cert: Path,
    key: Path,
    tokens_path: Path,
    tls_cert: Path | None,
    tls_key: Path | None,
    timeout: float,
    max_ids: int,
    max_body: int,
    max_inflight: int,
    port_file: Path | None,
) -> None:
    """Serve POST /v1/score and GET /healthz until SIGINT/SIGTERM.

    Without --tls-cert the front speaks plaintext HTTP: run it that way only behind a
    TLS-terminating proxy, never open to a network.
    """
    from lianmo.cli.logs import configure_logging
    from lianmo.transport.http_tokens import TokenFile
    from lianmo.transport.scoring import ScoringClient
    from lianmo.transport.tls import TlsIdentity

    front = front_module()
    settings = front.FrontSettings(
        max_body=max_body, max_ids=max_ids, timeout_s=timeout, max_inflight=max_inflight
    )
    tokens = TokenFile(tokens_path)
    configure_logging(default_level="INFO", verbose=dict(ctx.obj or {}).get("verbose", False))
    client = ScoringClient(guest, TlsIdentity.load(cert, key, ca), party)
    try:
        app = front.make_app(client, tokens, settings)
        server = front.HttpServer(app, listen, tls_cert=tls_cert, tls_key=tls_key)
        if not server.https and not _loopback(server.host):
            click.echo(
                f"warning: plaintext HTTP on {server.host}: bearer tokens and scores cross "
                "the network in the clear; give --tls-cert/--tls-key, or keep the front "
                "behind a TLS-terminating proxy on a private network",
                err=True,
            )
        click.echo(
            f"HTTP front on {server.url} -> guest '{party}' at {guest} (mutual TLS); "
            f"{len(tokens)} token(s) in {tokens_path}",
            err=True,
        )
        if port_file is not None:
            write_atomic(port_file, str(server.port).encode())
        server.run()
    finally:
        client.close()
    click.echo("HTTP front stopped", err=True)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@http_front.command("token")
@TOKENS
@click.option("--name", required=True, help="Who holds the token (shown in the front's log).")
def token_cmd(tokens_path: Path, name: str) -> None:
    """Make a bearer token: print it once, append only its sha256 to the tokens file.

    A running front accepts it at once; delete its line to revoke it.
    """
    from lianmo.transport.http_tokens import add_token

    token = add_token(tokens_path, name)
    click.echo(token)
    click.echo(
        f"token '{name}' added to {tokens_path} (only its sha256); it is shown this once: "
        "hand it to the decision engine now",
        err=True,
    )
