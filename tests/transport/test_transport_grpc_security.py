"""Negative tests of mutual TLS: who must be refused, on either side of the connection."""

from __future__ import annotations

import datetime as dt
import typing as t

import grpc
import pytest

from lianmo.errors import AuthenticationError, ConfigError, TransportError
from lianmo.transport._pb import federation_pb2 as pb
from lianmo.transport._pb import federation_pb2_grpc as pb_grpc
from lianmo.transport.certs import make_party_cert
from lianmo.transport.grpc_channel import GrpcChannel, PeerClient, channel_options
from lianmo.transport.grpc_server import serve
from lianmo.transport.inbox import Inbox
from lianmo.transport.tls import TlsIdentity

if t.TYPE_CHECKING:
    from conftest import MakeEnv, Node, Pki, StartNode

SEND: dict[str, t.Any] = {"deadline_s": 10.0, "retries": 0, "backoff_s": 0.01}


def _raw_send(channel: grpc.Channel) -> grpc.RpcError:
    stub = pb_grpc.FederationStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Send(iter([pb.Chunk(data=b"x")]), timeout=5)
    return info.value


def _expired_broker(pki: Pki) -> TlsIdentity:
    ca_key = (pki.directory / "ca" / "ca.key").read_bytes()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    cert, key = make_party_cert(pki.ids["broker"].ca_pem, ca_key, "broker", not_valid_after=past)
    return TlsIdentity(cert, key, pki.ids["broker"].ca_pem)


@pytest.mark.parametrize("client", ["no-certificate", "foreign-ca", "expired", "plaintext"])
def test_server_refuses_clients_without_a_valid_certificate(
    pki: Pki, platform: Node, client: str
) -> None:
    ca = pki.ids["broker"].ca_pem
    options = channel_options("platform")
    if client == "plaintext":
        channel = grpc.insecure_channel(platform.address)
    elif client == "no-certificate":
        creds = grpc.ssl_channel_credentials(root_certificates=ca)
        channel = grpc.secure_channel(platform.address, creds, options=options)
    else:
        identity = pki.foreign if client == "foreign-ca" else _expired_broker(pki)
        creds = grpc.ssl_channel_credentials(ca, identity.key_pem, identity.cert_pem)
        channel = grpc.secure_channel(platform.address, creds, options=options)
    with channel:
        err = _raw_send(channel)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert platform.inboxes["job-1"].arrived("broker") == 0


def test_client_refuses_a_server_with_another_name(
    pki: Pki, start_node: StartNode, make_env: MakeEnv
) -> None:
    # The node at this address is the broker, but we mean to talk to the platform.
    broker = start_node("broker")
    with PeerClient(broker.address, "platform", pki.ids["coordinator"]) as client:
        with pytest.raises(AuthenticationError, match="TLS handshake with party 'platform'"):
            client.send_envelope(make_env(0, sender="coordinator"), **SEND)


def test_client_refuses_a_server_from_another_ca(
    pki: Pki, start_node: StartNode, make_env: MakeEnv
) -> None:
    impostor = start_node("broker", identity=pki.foreign)
    with PeerClient(impostor.address, "broker", pki.ids["platform"]) as client:
        with pytest.raises(AuthenticationError, match="same ca.pem"):
            # Retries must not be spent on a certificate problem: this fails at once.
            env = make_env(0, sender="platform", receiver="broker")
            client.send_envelope(env, deadline_s=5, retries=3, backoff_s=10)


def test_client_with_foreign_certificate_gets_a_clear_transport_error(
    pki: Pki, platform: Node, make_env: MakeEnv
) -> None:
    # It trusts our CA but its own certificate is foreign: the server drops the connection
    # and the client cannot tell that from a network fault.
    mixed = TlsIdentity(pki.foreign.cert_pem, pki.foreign.key_pem, pki.ids["broker"].ca_pem)
    with PeerClient(platform.address, "platform", mixed) as client:
        with pytest.raises(TransportError, match="refusing this node's certificate"):
            client.send_envelope(make_env(0), deadline_s=5, retries=1, backoff_s=0.01)


def test_channel_refuses_an_identity_of_another_party(pki: Pki) -> None:
    with pytest.raises(ConfigError, match="configured with the certificate of 'platform'"):
        GrpcChannel(
            job_id="job-1",
            party="broker",
            inbox=Inbox("job-1", "broker", ["broker"]),
            peers={},
            identity=pki.ids["platform"],
        )


def test_second_node_on_a_used_port_fails_loudly(pki: Pki, platform: Node) -> None:
    with pytest.raises(TransportError, match=rf"party 'broker' cannot listen on .*{platform.port}"):
        serve(
            listen=platform.address,
            identity=pki.ids["broker"],
            inbox_for=platform.inbox_for,
            is_member=lambda name: True,
            control=None,
        )
