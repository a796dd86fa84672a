"""Shared fixtures for the gRPC transport tests: one test PKI per session, servers on port 0."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lianmo.errors import UnknownJobError
from lianmo.transport.admission import DEFAULT_LIMITS, CallLimits
from lianmo.transport.certs import make_ca, make_party_cert, write_identity_dir
from lianmo.transport.control import ControlHandler
from lianmo.transport.envelope import Envelope
from lianmo.transport.grpc_channel import PeerClient
from lianmo.transport.grpc_server import DEFAULT_MAX_MESSAGE_BYTES, running_server
from lianmo.transport.inbox import Inbox
from lianmo.transport.tls import TlsIdentity

PARTIES = ("broker", "platform")
NAMES = (*PARTIES, "coordinator")
STRANGER = "stranger"  # a certificate from the same CA, in no job of any test node
JOB = "job-1"


@dataclass(frozen=True)
class Pki:
    """The session's identities: one CA for everyone, plus a foreign CA."""

    directory: Path
    ids: dict[str, TlsIdentity]
    foreign: TlsIdentity  # a "broker" certificate from another CA


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    write_identity_dir(directory, [*NAMES, STRANGER])
    ids = {
        n: TlsIdentity.load(directory / f"{n}.pem", directory / f"{n}.key", directory / "ca.pem")
        for n in (*NAMES, STRANGER)
    }
    other_ca, other_key = make_ca("another CA")
    cert, key = make_party_cert(other_ca, other_key, "broker")
    return Pki(directory, ids, TlsIdentity(cert, key, other_ca))


@dataclass
class Node:
    """A running test server of one party with an inbox per job."""

    name: str
    port: int
    inboxes: dict[str, Inbox] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def inbox_for(self, job_id: str) -> Inbox:
        try:
            return self.inboxes[job_id]
        except KeyError:
            raise UnknownJobError(f"party '{self.name}' is not running job '{job_id}'") from None


StartNode = Callable[..., Node]


@pytest.fixture
def start_node(pki: Pki) -> Iterator[StartNode]:
    """Start a party's server (stopped at teardown) with an inbox for job ``JOB``."""
    with contextlib.ExitStack() as stack:

        def start(
            name: str,
            *,
            identity: TlsIdentity | None = None,
            port: int = 0,
            control: ControlHandler | None = None,
            max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
            limits: CallLimits = DEFAULT_LIMITS,
        ) -> Node:
            node = Node(name, 0, {JOB: Inbox(JOB, name, NAMES)})
            _, node.port = stack.enter_context(
                running_server(
                    listen=f"127.0.0.1:{port}",
                    identity=identity or pki.ids[name],
                    inbox_for=node.inbox_for,
                    is_member=NAMES.__contains__,
                    control=control,
                    max_message_bytes=max_message_bytes,
                    limits=limits,
                    grace_s=0,
                )
            )
            return node

        yield start


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MakeEnv = Callable[..., Envelope]


@pytest.fixture
def make_env() -> MakeEnv:
    """Build test envelopes (see :func:`_envelope`)."""
    return _envelope


def _envelope(
    seq: int = 0,
    payload: bytes = b"hello",
    *,
    sender: str = "broker",
    receiver: str = "platform",
    job_id: str = JOB,
) -> Envelope:
    """A test envelope carrying a Signal-typed payload of arbitrary bytes."""
    return Envelope.build(
        job_id=job_id,
        round=0,
        tag="step",
        sender=sender,
        receiver=receiver,
        seq=seq,
        payload_type="lianmo.v1.Signal",
        payload=payload,
    )


@pytest.fixture
def platform(start_node: StartNode) -> Node:
    """A running node for party 'platform'."""
    return start_node("platform")


@pytest.fixture
def broker_client(pki: Pki, platform: Node) -> Iterator[PeerClient]:
    """Party 'broker''s connection to the 'platform' node."""
    with PeerClient(platform.address, "platform", pki.ids["broker"]) as client:
        yield client
