"""Attack tests: idle ``Send`` calls must not starve a node (issue 18, denial of service).

Real gRPC servers over mutual TLS on loopback with real certificates from one CA. The
attacker opens ``Send`` calls that never send a chunk (or stop after one), the way a
certificate holder would to hold all of a node's server threads. A node has 16 threads;
every attack below opens more idle calls than that and checks that a member's message
and the coordinator's control call are still served, quickly.
"""

from __future__ import annotations

import contextlib
import threading
import time
import typing as t
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from lianmo.errors import TransportError
from lianmo.transport import serde
from lianmo.transport._pb import federation_pb2 as pb
from lianmo.transport._pb import federation_pb2_grpc as pb_grpc
from lianmo.transport.admission import CONTROL_RESERVE, CallLimits
from lianmo.transport.control import JobStatusInfo
from lianmo.transport.grpc_channel import ControlClient, PeerClient, channel_options
from lianmo.transport.grpc_errors import RETRY_KEY
from lianmo.transport.tls import TlsIdentity

if t.TYPE_CHECKING:
    from conftest import MakeEnv, Node, Pki, StartNode

SEND: dict[str, t.Any] = {"deadline_s": 5.0, "retries": 0, "backoff_s": 0.01}
SERVER_THREADS = 16
IDLE_CALLS = 40  # well over the server's 16 threads


class StatusOnly:
    """A control handler that answers Status (the coordinator's watch call)."""

    def status(self, caller: str, job_id: str) -> JobStatusInfo:
        return JobStatusInfo(job_id=job_id, party="platform", state="running")

    def prepare(self, caller: str, job_id: str, spec_json: bytes) -> JobStatusInfo:
        raise NotImplementedError

    start = cancel = resume = status


@dataclass
class IdleCalls:
    """``Send`` calls opened by one identity that send ``first`` (if any), then nothing."""

    futures: list[grpc.Future]
    opened_at: float
    ended_at: dict[int, float]

    def outcomes(self, timeout: float) -> list[tuple[grpc.StatusCode, str, float]]:
        """Each call's status code, details and seconds from opening to its end."""
        ends = []
        for i, future in enumerate(self.futures):
            err = future.exception(timeout=timeout)
            assert err is not None, "an idle call succeeded"
            call = t.cast(grpc.Call, err)
            ends.append((call.code(), call.details() or "", self.ended_at[i] - self.opened_at))
        return ends

    def pending(self) -> int:
        return sum(not f.done() for f in self.futures)


@pytest.fixture
def open_idle_calls() -> Iterator[t.Callable[..., IdleCalls]]:
    """Open idle Send calls; released (their streams end) and closed at teardown."""
    release = threading.Event()
    with contextlib.ExitStack() as stack:

        def open_calls(
            identity: TlsIdentity, address: str, count: int, first: pb.Chunk | None = None
        ) -> IdleCalls:
            channel = grpc.secure_channel(
                address, identity.channel_credentials(), options=channel_options("platform")
            )
            stack.callback(channel.close)
            grpc.channel_ready_future(channel).result(timeout=10)
            stub = pb_grpc.FederationStub(channel)

            def stalled() -> Iterator[pb.Chunk]:
                if first is not None:
                    yield first
                release.wait(60)

            idle = IdleCalls([], time.monotonic(), {})
            for i in range(count):
                future = stub.Send.future(stalled(), timeout=60)
                future.add_done_callback(
                    lambda _, i=i: idle.ended_at.setdefault(i, time.monotonic())
                )
                idle.futures.append(future)
            return idle

        yield open_calls
        release.set()


def _wait_until(condition: t.Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the node did not answer the calls in time"
        time.sleep(0.02)


def _served_quickly(pki: Pki, node: Node, make_env: MakeEnv, seq: int) -> float:
    """A member's message and the coordinator's control call both answer; their seconds."""
    started = time.monotonic()
    with PeerClient(node.address, "platform", pki.ids["broker"]) as client:
        assert client.send_envelope(make_env(seq), **SEND) is False
    with ControlClient(node.address, "platform", pki.ids["coordinator"], 5.0) as control:
        assert control.status("job-1").state == "running"
    return time.monotonic() - started


def test_idle_calls_of_a_non_member_are_refused_at_once_and_hold_no_thread(
    pki: Pki, start_node: StartNode, make_env: MakeEnv, open_idle_calls: t.Callable[..., IdleCalls]
) -> None:
    node = start_node("platform", control=StatusOnly())
    idle = open_idle_calls(pki.ids["stranger"], node.address, IDLE_CALLS)
    ends = idle.outcomes(timeout=10)
    # Every call ended without the attacker sending a byte, long before any deadline.
    assert {code for code, _, _ in ends} == {grpc.StatusCode.PERMISSION_DENIED}
    assert max(seconds for _, _, seconds in ends) < 5
    assert ends[0][1] == (
        "party 'platform' holds no job with 'stranger' and does not take messages from it; "
        "a coordinator must prepare a job naming 'stranger' on this node first"
    )
    # The attacker keeps its streams open (it never ends them), but holds nothing.
    more = open_idle_calls(pki.ids["stranger"], node.address, IDLE_CALLS)
    assert _served_quickly(pki, node, make_env, 0) < 5
    assert {code for code, _, _ in more.outcomes(timeout=10)} == {grpc.StatusCode.PERMISSION_DENIED}
    assert node.inboxes["job-1"].arrived("broker") == 1


def test_idle_calls_of_a_member_are_capped_per_peer_and_cut_at_the_first_chunk_deadline(
    pki: Pki, start_node: StartNode, make_env: MakeEnv, open_idle_calls: t.Callable[..., IdleCalls]
) -> None:
    limits = CallLimits(first_chunk_s=4.0, chunk_gap_s=4.0, calls_per_peer=3)
    node = start_node("platform", control=StatusOnly(), limits=limits)
    idle = open_idle_calls(pki.ids["broker"], node.address, IDLE_CALLS)
    _wait_until(lambda: idle.pending() == 3)
    # While the three admitted calls idle, the other members and control are served.
    with PeerClient(node.address, "platform", pki.ids["coordinator"]) as client:
        client.send_envelope(make_env(0, sender="coordinator"), **SEND)
    with ControlClient(node.address, "platform", pki.ids["coordinator"], 5.0) as control:
        assert control.status("job-1").state == "running"
    assert idle.pending() == 3  # served before the idle calls were cut
    ends = idle.outcomes(timeout=15)
    busy = [e for e in ends if e[0] == grpc.StatusCode.RESOURCE_EXHAUSTED]
    cut = [e for e in ends if e[0] == grpc.StatusCode.DEADLINE_EXCEEDED]
    assert (len(busy), len(cut)) == (IDLE_CALLS - 3, 3)
    assert max(seconds for *_, seconds in busy) < 4  # refused at once, not at the deadline
    assert all(4 <= seconds < 9 for *_, seconds in cut)  # held no longer than the deadline
    assert busy[0][1] == (
        "party 'platform' refused a call from 'broker': it already has as many calls in "
        "flight here as one peer may (3, limits.calls_per_peer in 'platform''s party config); "
        "retry when one has finished"
    )
    assert cut[0][1] == "Send from 'broker' was cut: no first chunk within 4s"
    # Once cut, the member's slots are free again: its real messages go through.
    assert _served_quickly(pki, node, make_env, 0) < 5
    assert node.inboxes["job-1"].arrived("coordinator") == 1


def test_a_member_stalling_mid_message_is_cut_and_leaves_nothing_in_the_inbox(
    pki: Pki, start_node: StartNode, make_env: MakeEnv, open_idle_calls: t.Callable[..., IdleCalls]
) -> None:
    limits = CallLimits(first_chunk_s=1.0, chunk_gap_s=1.0, calls_per_peer=2)
    node = start_node("platform", limits=limits)
    env = make_env(0, b"x" * (3 * 2**20))
    first = pb.Chunk(header=serde.header_to_proto(env), data=env.payload[: 2**20])
    idle = open_idle_calls(pki.ids["broker"], node.address, 2, first=first)
    ends = idle.outcomes(timeout=10)
    assert [(code, details) for code, details, _ in ends] == [
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Send from 'broker' was cut: no next chunk within 1s")
    ] * 2
    assert node.inboxes["job-1"].arrived("broker") == 0
    with PeerClient(node.address, "platform", pki.ids["broker"]) as client:
        assert client.send_envelope(env, **SEND) is False  # the whole message, once
    assert node.inboxes["job-1"].take("broker", timeout=1) == env


def test_a_busy_refusal_is_marked_retryable_and_an_honest_sender_retries_it(
    pki: Pki, start_node: StartNode, make_env: MakeEnv, open_idle_calls: t.Callable[..., IdleCalls]
) -> None:
    limits = CallLimits(first_chunk_s=1.0, chunk_gap_s=1.0, calls_per_peer=1)
    node = start_node("platform", limits=limits)
    idle = open_idle_calls(pki.ids["broker"], node.address, 2)
    refused = t.cast(grpc.Call, idle.futures[1].exception(timeout=5))
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(refused.trailing_metadata() or ())[RETRY_KEY] == "busy"
    with PeerClient(node.address, "platform", pki.ids["broker"]) as client:
        # No retries: the busy peer's own error, naming the limit.
        with pytest.raises(TransportError, match=r"^\[platform\] .* \(1, limits\.calls_per_peer"):
            client.send_envelope(make_env(0), **SEND)
        # With retries it gets through once the idle call is cut (after 1 s).
        client.send_envelope(make_env(0), deadline_s=5, retries=6, backoff_s=0.2)
    assert node.inboxes["job-1"].arrived("broker") == 1


def test_control_calls_keep_their_reserved_threads_when_message_streams_fill_the_node(
    pki: Pki, start_node: StartNode, make_env: MakeEnv, open_idle_calls: t.Callable[..., IdleCalls]
) -> None:
    # A peer allowed every thread: the node-wide cap still keeps 4 of the 16 for control.
    limits = CallLimits(first_chunk_s=10.0, chunk_gap_s=10.0, calls_per_peer=SERVER_THREADS)
    node = start_node("platform", control=StatusOnly(), limits=limits)
    idle = open_idle_calls(pki.ids["broker"], node.address, IDLE_CALLS)
    _wait_until(lambda: idle.pending() == SERVER_THREADS - CONTROL_RESERVE)
    with ControlClient(node.address, "platform", pki.ids["coordinator"], 5.0) as control:
        for _ in range(CONTROL_RESERVE + 2):
            assert control.status("job-1").state == "running"
    with PeerClient(node.address, "platform", pki.ids["coordinator"]) as client:
        with pytest.raises(TransportError, match="is serving 12 message streams already"):
            client.send_envelope(make_env(0, sender="coordinator"), **SEND)
    assert idle.pending() == SERVER_THREADS - CONTROL_RESERVE


def test_the_stall_watch_holds_no_thread_once_no_call_waits() -> None:
    from lianmo.transport.stall import StallWatch

    watch = StallWatch()
    chunks = list(watch.paced(iter([1, 2, 3]), t.cast(t.Any, None), first_s=30, gap_s=30, what=""))
    assert chunks == [1, 2, 3]
    deadline = time.monotonic() + 5
    while watch._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watch._thread is None
