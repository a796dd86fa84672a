"""Wire a party node to gRPC: the one place that puts config, TLS, node and server together."""

from __future__ import annotations

import threading
import typing as t
from pathlib import Path

from lianmo.audit.signing import signing_key_file, write_signing_key
from lianmo.config import JobSpec, PartyConfig
from lianmo.errors import ConfigError
from lianmo.metrics import NodeMetrics, serve_metrics
from lianmo.node.service import NodeService
from lianmo.node.serving.service import ServingService
from lianmo.transport.admission import CallLimits
from lianmo.transport.certs import write_identity_dir
from lianmo.transport.envelope import MessageObserver
from lianmo.transport.grpc_channel import GrpcChannel
from lianmo.transport.grpc_server import GrpcServer, HealthServicer, serve, serve_health
from lianmo.transport.inbox import Inbox
from lianmo.transport.scoring import PartAnswer, PartQuery, ScoringClient, serve_scoring
from lianmo.transport.tls import TlsIdentity

if t.TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer


def write_identities(
    directory: Path,
    names: t.Sequence[str],
    *,
    force: bool = False,
    ca_dir: Path | None = None,
) -> Path:
    """A throwaway CA, and per name a TLS certificate and key plus an audit signing key.

    The CA key goes to ``ca_dir`` (default ``directory/ca``), apart from the parties'
    files; returns its path.
    """
    ca_key = write_identity_dir(directory, list(names), force=force, ca_dir=ca_dir)
    for name in names:
        write_signing_key(signing_key_file(directory, name), force=force)
    return ca_key


def load_identity(config: PartyConfig) -> TlsIdentity:
    """The node's TLS identity, which must carry the party's own name."""
    identity = TlsIdentity.load(config.cert, config.key, config.ca, party=config.name)
    if identity.own_name() != config.name:
        raise ConfigError(
            f"the party config names the party '{config.name}' but tls.cert belongs to "
            f"'{identity.own_name()}'; point tls.cert and tls.key at {config.name}'s files"
        )
    return identity


def start_party_node(
    config: PartyConfig,
    identity: TlsIdentity,
    *,
    health: HealthServicer | None = None,
    wire_observers: t.Sequence[MessageObserver] = (),
    metrics: NodeMetrics | None = None,
) -> tuple[NodeService, GrpcServer, int]:
    """Start a node serving federation, control and health over mutual TLS.

    Returns the node, the started server and its bound port; the caller stops the server.
    ``health`` is the health service to mark SERVING (shared with the plaintext health
    port, see :func:`start_health_port`). ``wire_observers`` see every message of every job's
    channel besides the node's own (the audit log): e.g. a test's wire recorder.
    ``metrics`` (default: a new :class:`NodeMetrics`) is what the node counts into, as
    ``node.metrics``; :func:`start_metrics_port` serves it.
    """

    def channel_factory(
        spec: JobSpec, inbox: Inbox, observers: t.Sequence[MessageObserver]
    ) -> GrpcChannel:
        peers = {p.name: p.address for p in spec.parties if p.name != config.name}
        return GrpcChannel(
            job_id=spec.job_id,
            party=config.name,
            inbox=inbox,
            peers=peers,
            identity=identity,
            observers=[*observers, *wire_observers],
            recv_timeout=config.recv_timeout_s,
            send_deadline_s=config.send_deadline_s,
            retries=config.peer_retries,
            backoff_s=config.peer_backoff_s,
        )

    config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if metrics is None:
        metrics = NodeMetrics(party=config.name)
    node = NodeService(config, channel_factory, metrics=metrics)
    server, port = serve(
        listen=config.listen,
        identity=identity,
        inbox_for=node.inbox_for,
        control=node,
        is_member=node.is_member,
        max_message_bytes=config.max_message_mb * 2**20,
        limits=CallLimits(
            first_chunk_s=config.first_chunk_s,
            chunk_gap_s=config.chunk_gap_s,
            calls_per_peer=config.calls_per_peer,
        ),
        health_servicer=health,
    )
    return node, server, port


def start_health_port(config: PartyConfig, health: HealthServicer) -> tuple[GrpcServer, int] | None:
    """Serve ``health`` in plaintext on ``health_listen``, if the config sets it."""
    if config.health_listen is None:
        return None
    return serve_health(config.health_listen, health)


def start_scoring(
    config: PartyConfig, identity: TlsIdentity, *, metrics: NodeMetrics | None = None
) -> tuple[ServingService, GrpcServer, int] | None:
    """Serve online scoring on ``[serving] listen`` (None if the config sets no port).

    The guest reaches each host's scoring port at ``[serving] peers``, over the same
    mutual TLS, the host's certificate checked for its party name.
    """
    if config.serving.listen is None:
        return None
    clients = {
        name: ScoringClient(address, identity, name)
        for name, address in config.serving.peers.items()
    }

    def parts(host: str, query: PartQuery, timeout: float) -> PartAnswer:
        client = clients.get(host)
        if client is None:
            raise ConfigError(
                f"party '{config.name}' has no serving address for host '{host}'; add it "
                f"under [serving.peers] in its party config"
            )
        return client.part(query, timeout)

    service = ServingService(config, parts=parts, metrics=metrics)
    service.requests.start()  # the request record: seal a crash's leftovers, prune old days
    threading.Thread(target=service.warm, name="serving-warm-up", daemon=True).start()
    server, port = serve_scoring(
        config.serving.listen, identity, service, max_inflight=config.serving.max_inflight
    )
    return service, server, port


def start_metrics_port(config: PartyConfig, metrics: NodeMetrics) -> tuple[WSGIServer, int] | None:
    """Serve ``metrics`` in plaintext HTTP on ``[metrics] listen``, if the config sets it."""
    if config.metrics_listen is None:
        return None
    return serve_metrics(config.metrics_listen, metrics)
