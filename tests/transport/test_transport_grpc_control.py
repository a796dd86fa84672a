"""The control path end to end: coordinator client, party server, a fake handler, health."""

from __future__ import annotations

import typing as t
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lianmo.errors import (
    ConfigError,
    DataError,
    JobFailedError,
    LianmoError,
    TransportError,
    UnexpectedMessageError,
    UnknownJobError,
)
from lianmo.transport import serde
from lianmo.transport.control import JobStatusInfo
from lianmo.transport.grpc_channel import ControlClient, channel_options

if t.TYPE_CHECKING:
    from conftest import Node, Pki, StartNode

FULL = JobStatusInfo(
    job_id="job-1",
    party="broker",
    state="failed",
    phase="train",
    step=7,
    total_steps=40,
    error="value out of range at row 3",
    error_kind="DataError",
    result_json=b'{"auc": 0.71}',
    detail="epoch 2 of 5",
)


class FakeHandler:
    """Records calls; answers with ``FULL`` or raises ``self.fail``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail: LianmoError | None = None

    def _answer(self, *call: str) -> JobStatusInfo:
        self.calls.append(call)
        if self.fail is not None:
            raise self.fail
        return replace(FULL, job_id=call[2])

    def prepare(self, caller: str, job_id: str, spec_json: bytes) -> JobStatusInfo:
        return self._answer("prepare", caller, job_id, spec_json.decode())

    def start(self, caller: str, job_id: str) -> JobStatusInfo:
        return self._answer("start", caller, job_id)

    def status(self, caller: str, job_id: str) -> JobStatusInfo:
        return self._answer("status", caller, job_id)

    def cancel(self, caller: str, job_id: str) -> JobStatusInfo:
        return self._answer("cancel", caller, job_id)


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler()


@pytest.fixture
def node(start_node: StartNode, handler: FakeHandler) -> Node:
    return start_node("broker", control=handler)


@pytest.fixture
def client(pki: Pki, node: Node) -> Iterator[ControlClient]:
    with ControlClient(node.address, "broker", pki.ids["coordinator"], deadline_s=5) as c:
        yield c


def test_job_status_serde_round_trips_every_field() -> None:
    assert serde.job_status_from_proto(serde.job_status_to_proto(FULL)) == FULL


def test_every_call_round_trips_and_names_the_caller(
    client: ControlClient, handler: FakeHandler
) -> None:
    assert client.prepare("j", b'{"a": 1}') == replace(FULL, job_id="j")
    assert client.start("j") == replace(FULL, job_id="j")
    assert client.status("j") == replace(FULL, job_id="j")
    assert client.cancel("j") == replace(FULL, job_id="j")
    assert handler.calls == [
        ("prepare", "coordinator", "j", '{"a": 1}'),
        ("start", "coordinator", "j"),
        ("status", "coordinator", "j"),
        ("cancel", "coordinator", "j"),
    ]


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("bad spec"),
        DataError("column 'age' missing in credit.csv"),
        UnknownJobError("no job 'j' here"),
        UnexpectedMessageError("job 'j' is already running"),
        LianmoError("something else"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_handler_errors_come_back_as_the_same_class_with_the_remote_text(
    client: ControlClient, handler: FakeHandler, error: LianmoError
) -> None:
    handler.fail = error
    with pytest.raises(type(error)) as info:
        client.prepare("j", b"{}")
    assert type(info.value) is type(error)
    assert str(info.value) == f"[broker] {error}"


def test_job_failed_keeps_the_failing_party(client: ControlClient, handler: FakeHandler) -> None:
    handler.fail = JobFailedError("platform", "disk full")
    with pytest.raises(JobFailedError) as info:
        client.status("j")
    assert info.value.party == "platform"
    assert str(info.value) == "job failed at party 'platform': [broker] disk full"


@pytest.mark.parametrize("service", ["", "lianmo.v1.Federation", "lianmo.v1.Control"])
def test_health_is_serving(pki: Pki, node: Node, client: ControlClient, service: str) -> None:
    client.wait_healthy(timeout_s=5)
    creds = pki.ids["coordinator"].channel_credentials()
    with grpc.secure_channel(node.address, creds, options=channel_options("broker")) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_wait_healthy_gives_up_naming_party_and_address(pki: Pki, free_port: int) -> None:
    address = f"127.0.0.1:{free_port}"
    with ControlClient(address, "broker", pki.ids["coordinator"]) as client:
        with pytest.raises(
            TransportError, match=rf"party 'broker' at {address} is not serving after 0.3s"
        ):
            client.wait_healthy(timeout_s=0.3)


def test_server_without_control_answers_unimplemented(pki: Pki, start_node: StartNode) -> None:
    node = start_node("platform")
    with ControlClient(node.address, "platform", pki.ids["coordinator"]) as client:
        with pytest.raises(TransportError, match="UNIMPLEMENTED"):
            client.status("j")
