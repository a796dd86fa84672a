"""The Channel contract, run against the in-memory channel and the gRPC channel alike."""

from __future__ import annotations

import threading
import typing as t
from collections.abc import Iterator

import pytest

from lianmo.errors import UnexpectedMessageError
from lianmo.transport.channel import Channel
from lianmo.transport.grpc_channel import GrpcChannel
from lianmo.transport.memory import MemoryHub
from lianmo.transport.messages import (
    BitMatrix,
    EncryptedVector,
    FloatVector,
    IndexList,
    IntVector,
    Payload,
    PointList,
    PublicKeyMsg,
    Signal,
)

if t.TYPE_CHECKING:
    from conftest import Pki, StartNode

JOB = "job-1"


@pytest.fixture(params=["memory", "grpc"])
def channels(
    request: pytest.FixtureRequest, pki: Pki, start_node: StartNode
) -> Iterator[dict[str, Channel]]:
    """Channels of 'broker' and 'platform' in job ``JOB``, over either backend."""
    if request.param == "memory":
        hub = MemoryHub(JOB, ["broker", "platform", "coordinator"])
        yield {p: hub.channel(p, recv_timeout=5) for p in ("broker", "platform")}
        return
    nodes = {p: start_node(p) for p in ("broker", "platform")}
    made: dict[str, Channel] = {
        me: GrpcChannel(
            job_id=JOB,
            party=me,
            inbox=node.inboxes[JOB],
            identity=pki.ids[me],
            peers={p: n.address for p, n in nodes.items()},
            recv_timeout=5,
            retries=0,
        )
        for me, node in nodes.items()
    }
    yield made
    for channel in made.values():
        channel.close()


PAYLOADS: list[Payload] = [
    PublicKeyMsg(n=b"\x01" * 256),
    EncryptedVector(key_id=b"k" * 32, exponent=-8, count=2, width=4, data=b"abcdefgh"),
    IntVector(count=3, width=2, data=b"aabbcc"),
    FloatVector(data=b"\x00" * 16),
    PointList(count=1, width=32, data=b"p" * 32),
    IndexList(data=b"\x01\x00\x00\x00"),
    BitMatrix(rows=2, cols=9, data=b"\x01\x00\xff\x01"),
    Signal("stop", "converged"),
]


def test_every_payload_type_round_trips(channels: dict[str, Channel]) -> None:
    for i, payload in enumerate(PAYLOADS):
        channels["broker"].send("platform", f"step{i}", payload, round=i)
    for i, payload in enumerate(PAYLOADS):
        assert channels["platform"].recv("broker", f"step{i}", round=i) == payload


def test_wrong_step_is_rejected_by_recv(channels: dict[str, Channel]) -> None:
    channels["broker"].send("platform", "gradient", Signal("x"), round=1)
    with pytest.raises(UnexpectedMessageError, match="expected 'residual' round 1"):
        channels["platform"].recv("broker", "residual", round=1)


def test_sending_to_a_non_peer_is_rejected(channels: dict[str, Channel]) -> None:
    with pytest.raises(UnexpectedMessageError, match="not a peer"):
        channels["broker"].send("arbiter", "step", Signal("x"))


def test_concurrent_sends_to_one_peer_all_arrive_in_order(channels: dict[str, Channel]) -> None:
    def send_many(offset: int) -> None:
        for i in range(10):
            channels["broker"].send("platform", "step", Signal("n", str(offset + i)))

    threads = [threading.Thread(target=send_many, args=(k * 100,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = [channels["platform"].recv("broker", "step") for _ in range(40)]
    assert sorted(int(t.cast(Signal, s).value) for s in got) == sorted(
        k * 100 + i for k in range(4) for i in range(10)
    )
