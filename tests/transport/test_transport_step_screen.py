"""Over real mutual-TLS gRPC, a node refuses a message no protocol step allows, unkept."""

from __future__ import annotations

import typing as t

import pytest

from lianmo.errors import UnexpectedMessageError
from lianmo.transport.envelope import Envelope
from lianmo.transport.grpc_channel import PeerClient
from lianmo.transport.inbox import Inbox
from lianmo.transport.messages import Signal
from lianmo.transport.serde import encode_payload
from lianmo.wire.steps import REGISTRY

if t.TYPE_CHECKING:
    from conftest import Pki, StartNode

JOB = "job-1"
ROLES = {"broker": "guest", "platform": "host", "coordinator": "arbiter"}
SEND: dict[str, t.Any] = {"deadline_s": 10.0, "retries": 0, "backoff_s": 0.01}


def _env(tag: str, payload: Signal, seq: int = 0) -> Envelope:
    payload_type, data = encode_payload(payload)
    return Envelope.build(
        job_id=JOB,
        round=0,
        tag=tag,
        sender="broker",
        receiver="platform",
        seq=seq,
        payload_type=payload_type,
        payload=data,
    )


def _screen(env: Envelope) -> None:
    REGISTRY.screen(env, ROLES[env.sender], ROLES[env.receiver])


@pytest.mark.parametrize(
    ("tag", "match"),
    [
        ("sb.made_up", r"^\[platform\] message 'sb.made_up' .* has a tag no lianmo protocol"),
        ("lr.epoch_end", r"^\[platform\] 'lr.epoch_end' from 'broker' \(guest\) to 'platform'"),
    ],
    ids=["unknown", "misdirected"],
)
def test_a_node_refuses_a_step_it_cannot_receive(
    pki: Pki, start_node: StartNode, tag: str, match: str
) -> None:
    platform = start_node("platform")
    inbox = Inbox(JOB, "platform", ROLES, screen=_screen)
    platform.inboxes[JOB] = inbox
    with PeerClient(platform.address, "platform", pki.ids["broker"]) as client:
        with pytest.raises(UnexpectedMessageError, match=match):
            client.send_envelope(_env(tag, Signal("epoch_end", "stop")), **SEND)
        assert inbox.arrived("broker") == 0
        # the same sequence number is still free for a message a step allows
        client.send_envelope(_env("job.commit", Signal("commit", "ok")), **SEND)
    assert inbox.arrived("broker") == 1
