"""Federation messages over mutual-TLS gRPC: chunking, dedupe, ordering, identity, limits."""

from __future__ import annotations

import hashlib
import os
import typing as t
from collections.abc import Iterator

import grpc
import pytest

from lianmo.errors import (
    AuthenticationError,
    ProtocolError,
    TransportError,
    UnexpectedMessageError,
    UnknownJobError,
)
from lianmo.transport._pb import federation_pb2 as pb
from lianmo.transport._pb import federation_pb2_grpc as pb_grpc
from lianmo.transport.grpc_channel import GrpcChannel, PeerClient, channel_options
from lianmo.transport.grpc_errors import ERROR_KIND_KEY
from lianmo.transport.messages import IntVector, Signal

if t.TYPE_CHECKING:
    from conftest import MakeEnv, Node, Pki, StartNode

JOB = "job-1"
SEND: dict[str, t.Any] = {"deadline_s": 10.0, "retries": 0, "backoff_s": 0.01}


def test_message_over_4mib_arrives_intact(pki: Pki, start_node: StartNode) -> None:
    broker, platform = start_node("broker"), start_node("platform")
    data = os.urandom(5 * 2**20 + 3)
    channels = [
        GrpcChannel(
            job_id=JOB,
            party=me.name,
            inbox=me.inboxes[JOB],
            peers={other.name: other.address},
            identity=pki.ids[me.name],
            recv_timeout=10,
            retries=0,
        )
        for me, other in ((broker, platform), (platform, broker))
    ]
    try:
        channels[0].send("platform", "big", IntVector(count=len(data), width=1, data=data))
        got = channels[1].recv("broker", "big")
        channels[1].send("broker", "ack", Signal("ok"))
        assert channels[0].recv("platform", "ack") == Signal("ok")
    finally:
        for channel in channels:
            channel.close()
    assert got == IntVector(count=len(data), width=1, data=data)


def test_resend_is_acknowledged_as_duplicate_and_delivered_once(
    broker_client: PeerClient, platform: Node, make_env: MakeEnv
) -> None:
    env = make_env(0)
    assert broker_client.send_envelope(env, **SEND) is False
    assert broker_client.send_envelope(env, **SEND) is True

    inbox = platform.inboxes[JOB]
    assert inbox.take("broker", timeout=1) == env
    with pytest.raises(TransportError, match="none came"):
        inbox.take("broker", timeout=0.05)


def test_out_of_order_seq_is_rejected_with_the_receivers_text(
    broker_client: PeerClient, make_env: MakeEnv
) -> None:
    match = r"^\[platform\] .* out of order: expected seq 0"
    with pytest.raises(UnexpectedMessageError, match=match):
        broker_client.send_envelope(make_env(3), **SEND)


def test_same_seq_with_different_payload_is_rejected(
    broker_client: PeerClient, make_env: MakeEnv
) -> None:
    broker_client.send_envelope(make_env(0, b"first"), **SEND)
    with pytest.raises(UnexpectedMessageError, match="payload differs"):
        broker_client.send_envelope(make_env(0, b"second"), **SEND)


def test_unknown_job(broker_client: PeerClient, make_env: MakeEnv) -> None:
    match = r"^\[platform\] party 'platform' is not running job 'x'"
    with pytest.raises(UnknownJobError, match=match):
        broker_client.send_envelope(make_env(0, job_id="x"), **SEND)


def test_certificate_name_must_match_envelope_sender(
    pki: Pki, platform: Node, make_env: MakeEnv
) -> None:
    with PeerClient(platform.address, "platform", pki.ids["coordinator"]) as impostor:
        with pytest.raises(
            AuthenticationError, match="certificate of 'coordinator' cannot send as 'broker'"
        ):
            impostor.send_envelope(make_env(0, sender="broker"), **SEND)
    assert platform.inboxes[JOB].arrived("broker") == 0


# ---- crafted chunk streams, driving the stub directly ----------------------------------


@pytest.fixture
def stub(pki: Pki, platform: Node) -> Iterator[pb_grpc.FederationStub]:
    creds = pki.ids["broker"].channel_credentials()
    with grpc.secure_channel(platform.address, creds, options=channel_options("platform")) as ch:
        yield pb_grpc.FederationStub(ch)


def _header(payload: bytes, **override: t.Any) -> pb.EnvelopeHeader:
    fields: dict[str, t.Any] = {
        "job_id": JOB,
        "round": 0,
        "tag": "step",
        "sender": "broker",
        "receiver": "platform",
        "seq": 0,
        "payload_type": "lianmo.v1.Signal",
        "payload_size": len(payload),
        "payload_sha256": hashlib.sha256(payload).digest(),
    }
    fields.update(override)
    return pb.EnvelopeHeader(**fields)


def _send(stub: pb_grpc.FederationStub, chunks: list[pb.Chunk]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.Send(iter(chunks), timeout=10)
    return info.value


@pytest.mark.parametrize(
    ("chunks", "match"),
    [
        ([pb.Chunk(header=_header(b"0123456789"), data=b"01234")], "truncated or oversized"),
        (
            [pb.Chunk(header=_header(b"abc"), data=b"ab"), pb.Chunk(data=b"cdef")],
            "oversized: header says 3 bytes, received 6",
        ),
        ([pb.Chunk(header=_header(b"abc"), data=b"abd")], "fails its sha256 check"),
        ([pb.Chunk(data=b"abc")], "first chunk has no envelope header"),
        ([], "ended before its first chunk"),
        (
            [pb.Chunk(header=_header(b"ab"), data=b"a"), pb.Chunk(header=_header(b"b"))],
            "second envelope header",
        ),
    ],
    ids=["truncated", "longer-than-header", "sha256", "no-header", "empty", "two-headers"],
)
def test_malformed_streams_are_invalid_argument(
    stub: pb_grpc.FederationStub, platform: Node, chunks: list[pb.Chunk], match: str
) -> None:
    err = _send(stub, chunks)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert match in err.details()
    assert (ERROR_KIND_KEY, "ProtocolError") in err.trailing_metadata()
    assert platform.inboxes[JOB].arrived("broker") == 0


def test_oversize_header_is_refused_before_any_data(
    pki: Pki, start_node: StartNode, make_env: MakeEnv
) -> None:
    small = start_node("platform", max_message_bytes=1000)
    with PeerClient(small.address, "platform", pki.ids["broker"]) as client:
        with pytest.raises(ProtocolError, match="is 5000 bytes, over this node's limit of 1000"):
            client.send_envelope(make_env(0, b"x" * 5000), **SEND)


def test_lying_header_is_cut_off_at_the_limit(pki: Pki, start_node: StartNode) -> None:
    small = start_node("platform", max_message_bytes=1000)
    creds = pki.ids["broker"].channel_credentials()
    with grpc.secure_channel(small.address, creds, options=channel_options("platform")) as ch:
        stub = pb_grpc.FederationStub(ch)
        chunks = [pb.Chunk(header=_header(b"x" * 900), data=b"x" * 600), pb.Chunk(data=b"x" * 600)]
        err = _send(stub, chunks)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "is 1200 bytes, over this node's limit of 1000 bytes" in err.details()
