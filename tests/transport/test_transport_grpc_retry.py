"""Retries: only UNAVAILABLE is retried, with backoff, and a late peer still gets the message."""

from __future__ import annotations

import threading
import time
import typing as t
from collections.abc import Iterator

import pytest

from lianmo.errors import TransportError
from lianmo.transport.grpc_channel import PeerClient
from lianmo.transport.grpc_server import running_server
from lianmo.transport.inbox import Inbox

if t.TYPE_CHECKING:
    from conftest import MakeEnv, Pki

JOB = "job-1"


def test_unreachable_peer_fails_after_the_configured_retries(
    pki: Pki, free_port: int, make_env: MakeEnv
) -> None:
    address = f"127.0.0.1:{free_port}"
    started = time.monotonic()
    with PeerClient(address, "platform", pki.ids["broker"]) as client:
        with pytest.raises(
            TransportError,
            match=rf"party 'platform' at {address} unreachable after 3 attempts: .*seq 0",
        ):
            client.send_envelope(make_env(0), deadline_s=5, retries=2, backoff_s=0.05)
    # Two backoffs (about 0.05 s and 0.1 s): it did wait, but not for long.
    assert 0.1 < time.monotonic() - started < 5


@pytest.fixture
def late_server(pki: Pki, free_port: int) -> Iterator[tuple[str, Inbox]]:
    """A platform server that starts listening on a fixed port 0.5 s from now."""
    inbox = Inbox(JOB, "platform", ["broker", "platform"])
    stop = threading.Event()

    def run() -> None:
        time.sleep(0.5)
        with running_server(
            listen=f"127.0.0.1:{free_port}",
            identity=pki.ids["platform"],
            inbox_for=lambda job_id: inbox,
            is_member=lambda name: True,
            grace_s=0,
        ):
            stop.wait(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"127.0.0.1:{free_port}", inbox
    stop.set()
    thread.join(10)


def test_peer_that_comes_up_late_still_gets_the_message(
    pki: Pki, late_server: tuple[str, Inbox], make_env: MakeEnv
) -> None:
    address, inbox = late_server
    env = make_env(0, b"patience")
    with PeerClient(address, "platform", pki.ids["broker"]) as client:
        duplicate = client.send_envelope(env, deadline_s=5, retries=8, backoff_s=0.1)
    assert duplicate is False
    assert inbox.take("broker", timeout=1) == env
