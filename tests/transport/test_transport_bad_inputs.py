"""Bad inputs over real mutual-TLS gRPC, as the sending party sees them.

Each case checks the error class a sender gets back, that its text names the receiving
party, the message (tag, round, sender, job) and what to do, and, through the inbox's
public methods only, that nothing was delivered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import typing as t
from collections.abc import Iterator

import grpc
import pytest

from lianmo.errors import (
    AuthenticationError,
    LianmoError,
    ProtocolError,
    TransportError,
    UnexpectedMessageError,
    UnknownJobError,
)
from lianmo.transport._pb import federation_pb2 as pb
from lianmo.transport._pb import federation_pb2_grpc as pb_grpc
from lianmo.transport.certs import make_party_cert
from lianmo.transport.grpc_channel import GrpcChannel, PeerClient, channel_options
from lianmo.transport.grpc_errors import error_from_rpc
from lianmo.transport.inbox import Inbox
from lianmo.transport.messages import Signal
from lianmo.transport.tls import TlsIdentity

if t.TYPE_CHECKING:
    from conftest import MakeEnv, Node, Pki, StartNode

JOB = "job-1"
SEND: dict[str, t.Any] = {"deadline_s": 10.0, "retries": 0, "backoff_s": 0.01}


def _nothing_delivered(inbox: Inbox, sender: str = "broker") -> None:
    with pytest.raises(TransportError, match="none came"):
        inbox.take(sender, timeout=0.05)


def _seq0_still_free(client: PeerClient, node: Node, make_env: MakeEnv) -> None:
    """The refused message used up nothing: a good seq 0 is accepted as new afterwards."""
    good = make_env(0, b"good")
    assert client.send_envelope(good, **SEND) is False
    assert node.inboxes[JOB].take("broker", timeout=5) == good


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


def _raw_send(pki: Pki, node: Node, chunks: list[pb.Chunk]) -> LianmoError:
    """Stream hand-made chunks as 'broker'; return the error a lianmo sender would raise."""
    creds = pki.ids["broker"].channel_credentials()
    with grpc.secure_channel(node.address, creds, options=channel_options("platform")) as ch:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.FederationStub(ch).Send(iter(chunks), timeout=10)
    return error_from_rpc(info.value, "platform", node.address)


# ---- 5. truncated payload --------------------------------------------------------------------


def test_truncated_payload_is_a_protocol_error_naming_the_message_and_sizes(
    pki: Pki, platform: Node, broker_client: PeerClient, make_env: MakeEnv
) -> None:
    # The stream ends after 5 of the 10 bytes its header announced.
    err = _raw_send(pki, platform, [pb.Chunk(header=_header(b"0123456789"), data=b"01234")])
    assert type(err) is ProtocolError
    assert re.fullmatch(
        r"\[platform\] message 'step' round 0 (seq 0 )?from 'broker'.* is truncated or "
        r"oversized: header says 10 bytes, received 5",
        str(err),
    ), str(err)
    _nothing_delivered(platform.inboxes[JOB])
    _seq0_still_free(broker_client, platform, make_env)


# ---- 6. oversized payload ----------------------------------------------------------------


def test_payload_over_the_receivers_limit_is_refused_before_any_data(
    pki: Pki, start_node: StartNode, make_env: MakeEnv
) -> None:
    small = start_node("platform", max_message_bytes=1000)
    with PeerClient(small.address, "platform", pki.ids["broker"]) as client:
        with pytest.raises(ProtocolError) as info:
            client.send_envelope(make_env(0, b"x" * 5000), **SEND)
        assert type(info.value) is ProtocolError
        assert str(info.value) == (
            "[platform] message 'step' round 0 from 'broker' in job 'job-1' is 5000 bytes, "
            "over this node's limit of 1000 bytes; raise max_message_mb in the receiving "
            "party's config or use smaller batches"
        )
        _nothing_delivered(small.inboxes[JOB])
        _seq0_still_free(client, small, make_env)


def test_payload_longer_than_its_header_says_is_refused(
    pki: Pki, platform: Node, broker_client: PeerClient, make_env: MakeEnv
) -> None:
    chunks = [pb.Chunk(header=_header(b"abc"), data=b"ab"), pb.Chunk(data=b"cdef")]
    err = _raw_send(pki, platform, chunks)
    assert type(err) is ProtocolError
    assert str(err) == (
        "[platform] message 'step' round 0 from 'broker' is oversized: header says 3 bytes, "
        "received 6 so far"
    )
    _nothing_delivered(platform.inboxes[JOB])
    _seq0_still_free(broker_client, platform, make_env)


def test_lying_header_is_cut_off_at_the_receivers_limit(
    pki: Pki, start_node: StartNode, make_env: MakeEnv
) -> None:
    small = start_node("platform", max_message_bytes=1000)
    # The header claims 900 bytes (under the limit); the stream carries 1200.
    chunks = [pb.Chunk(header=_header(b"x" * 900), data=b"x" * 600), pb.Chunk(data=b"x" * 600)]
    err = _raw_send(pki, small, chunks)
    assert type(err) is ProtocolError
    assert str(err) == (
        "[platform] message 'step' round 0 from 'broker' in job 'job-1' is 1200 bytes, over "
        "this node's limit of 1000 bytes; raise max_message_mb in the receiving party's "
        "config or use smaller batches"
    )
    _nothing_delivered(small.inboxes[JOB])


# ---- 7. unknown job (the real node's text: tests/test_bad_inputs.py) -----------------------


def test_message_for_an_unknown_job_is_refused_before_its_payload(
    broker_client: PeerClient, platform: Node, make_env: MakeEnv
) -> None:
    with pytest.raises(UnknownJobError) as info:
        broker_client.send_envelope(make_env(0, job_id="job-2"), **SEND)
    assert str(info.value).startswith("[platform] party 'platform' is not running job 'job-2'")
    _nothing_delivered(platform.inboxes[JOB])


# ---- 8. wrong round or tag, wrong receiver -----------------------------------------------


@pytest.fixture
def channels(pki: Pki, start_node: StartNode) -> Iterator[dict[str, GrpcChannel]]:
    nodes = {name: start_node(name) for name in ("broker", "platform")}
    made = {
        me: GrpcChannel(
            job_id=JOB,
            party=me,
            inbox=nodes[me].inboxes[JOB],
            peers={other: nodes[other].address},
            identity=pki.ids[me],
            recv_timeout=10,
            retries=0,
        )
        for me, other in (("broker", "platform"), ("platform", "broker"))
    }
    try:
        yield made
    finally:
        for channel in made.values():
            channel.close()


@pytest.mark.parametrize(
    ("sent", "expected"),
    [(("psi.size", 0), ("psi.positions", 0)), (("lr.residual", 3), ("lr.residual", 2))],
    ids=["wrong-tag", "wrong-round"],
)
def test_message_for_another_step_is_refused_by_recv(
    channels: dict[str, GrpcChannel], sent: tuple[str, int], expected: tuple[str, int]
) -> None:
    channels["broker"].send("platform", sent[0], Signal("x"), round=sent[1])
    with pytest.raises(UnexpectedMessageError) as info:
        channels["platform"].recv("broker", expected[0], round=expected[1])
    assert str(info.value) == (
        f"party 'platform' expected '{expected[0]}' round {expected[1]} from 'broker' but "
        f"received message '{sent[0]}' round {sent[1]} seq 0 from 'broker' to 'platform' in "
        "job 'job-1'; the parties run different protocol versions or job settings"
    )


def test_message_addressed_to_another_party_is_refused(
    broker_client: PeerClient, platform: Node, make_env: MakeEnv
) -> None:
    with pytest.raises(UnexpectedMessageError) as info:
        broker_client.send_envelope(make_env(0, receiver="coordinator"), **SEND)
    assert str(info.value).startswith(
        "[platform] party 'platform' received message 'step' addressed to another party"
    )
    _nothing_delivered(platform.inboxes[JOB])


def test_receiving_from_a_party_outside_the_job_is_refused() -> None:
    inbox = Inbox(JOB, "platform", ["broker", "platform"])
    with pytest.raises(UnexpectedMessageError) as info:
        inbox.take("telecom", timeout=0.01)
    assert str(info.value) == (
        "party 'platform' cannot receive from 'telecom': not a party of job 'job-1'"
    )


# ---- 9. replayed messages ---------------------------------------------------------------


def test_identical_resend_is_dropped_as_a_duplicate_without_error(
    broker_client: PeerClient, platform: Node, make_env: MakeEnv
) -> None:
    env = make_env(0, b"once")
    assert broker_client.send_envelope(env, **SEND) is False
    assert broker_client.send_envelope(env, **SEND) is True  # replay: acknowledged, dropped
    assert broker_client.send_envelope(env, **SEND) is True
    inbox = platform.inboxes[JOB]
    assert inbox.take("broker", timeout=5) == env
    _nothing_delivered(inbox)  # delivered exactly once


def test_same_seq_with_a_different_payload_is_rejected(
    broker_client: PeerClient, platform: Node, make_env: MakeEnv
) -> None:
    first = make_env(0, b"first")
    broker_client.send_envelope(first, **SEND)
    with pytest.raises(UnexpectedMessageError) as info:
        broker_client.send_envelope(make_env(0, b"second"), **SEND)
    assert str(info.value) == (
        "[platform] party 'platform' received message 'step' round 0 seq 0 from 'broker' to "
        "'platform' in job 'job-1' whose payload differs from the message it already holds "
        "under that sequence number"
    )
    inbox = platform.inboxes[JOB]
    assert inbox.take("broker", timeout=5) == first  # the original stands
    _nothing_delivered(inbox)


# ---- 10. certificates: another party's, expired, untrusted --------------------------------


def _expired(pki: Pki, name: str) -> TlsIdentity:
    ca_key = (pki.directory / "ca" / "ca.key").read_bytes()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    cert, key = make_party_cert(pki.ids[name].ca_pem, ca_key, name, not_valid_after=past)
    return TlsIdentity(cert, key, pki.ids[name].ca_pem)


@pytest.mark.parametrize("server", ["another-party", "expired", "other-ca"])
def test_sender_refuses_a_peer_with_the_wrong_certificate(
    pki: Pki, start_node: StartNode, make_env: MakeEnv, server: str
) -> None:
    # (the node started, its certificate, the party we dial and expect to find there)
    name, identity, dialled = {
        "another-party": ("broker", pki.ids["broker"], "platform"),
        "expired": ("platform", _expired(pki, "platform"), "platform"),
        "other-ca": ("broker", pki.foreign, "broker"),
    }[server]
    node = start_node(name, identity=identity)
    env = make_env(0, sender="coordinator", receiver=dialled)
    with PeerClient(node.address, dialled, pki.ids["coordinator"]) as client:
        with pytest.raises(AuthenticationError) as info:
            # A certificate problem is not retried: this fails at once despite retries.
            client.send_envelope(env, deadline_s=5, retries=3, backoff_s=10)
    text = str(info.value)
    assert type(info.value) is AuthenticationError
    assert text.startswith(f"TLS handshake with party '{dialled}' at {node.address} failed: ")
    assert text.endswith(
        f"; check that its certificate is issued for the name '{dialled}' by this job's CA "
        "and has not expired, and that both nodes use the same ca.pem"
    )
    if server == "expired":
        assert "certificate has expired" in text
    _nothing_delivered(node.inboxes[JOB], "coordinator")


@pytest.mark.parametrize("client", ["expired", "other-ca"])
def test_receiver_refuses_a_sender_with_an_expired_or_untrusted_certificate(
    pki: Pki, platform: Node, make_env: MakeEnv, client: str
) -> None:
    identity = (
        _expired(pki, "broker")
        if client == "expired"
        else TlsIdentity(pki.foreign.cert_pem, pki.foreign.key_pem, pki.ids["broker"].ca_pem)
    )
    with PeerClient(platform.address, "platform", identity) as sender:
        with pytest.raises(TransportError) as info:
            sender.send_envelope(make_env(0), deadline_s=5, retries=1, backoff_s=0.01)
    # The server drops the handshake; the sender cannot tell that from a network fault,
    # so the text says both.
    assert type(info.value) is TransportError
    assert str(info.value).startswith(
        f"party 'platform' at {platform.address} unreachable after 2 attempts: "
    )
    assert str(info.value).endswith(
        "(sending message 'step' round 0 seq 0 from 'broker' to 'platform' in job 'job-1'); "
        "check that its node runs and listens there and that its address in the job spec is "
        "right (if it runs, it may be refusing this node's certificate: are both issued by "
        "the same CA?)"
    )
    _nothing_delivered(platform.inboxes[JOB])


def test_receiver_refuses_a_sender_using_another_partys_name(
    pki: Pki, platform: Node, make_env: MakeEnv
) -> None:
    with PeerClient(platform.address, "platform", pki.ids["coordinator"]) as impostor:
        with pytest.raises(AuthenticationError) as info:
            impostor.send_envelope(make_env(0, sender="broker"), **SEND)
    assert str(info.value) == (
        "[platform] certificate of 'coordinator' cannot send as 'broker' (message 'step' "
        "round 0 in job 'job-1'); each party sends only under its own certificate name"
    )
    _nothing_delivered(platform.inboxes[JOB])
