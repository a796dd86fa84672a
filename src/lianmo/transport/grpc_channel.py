"""Client side of gRPC: the Channel that streams envelopes to peers, and the control client."""

from __future__ import annotations

import logging
import random
import time
import typing as t
from collections.abc import Callable, Iterator, Mapping, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lianmo.errors import ConfigError, TransportError
from lianmo.transport import serde
from lianmo.transport._pb import control_pb2, control_pb2_grpc, federation_pb2, federation_pb2_grpc
from lianmo.transport.channel import DEFAULT_RECV_TIMEOUT, Channel
from lianmo.transport.control import JobStatusInfo
from lianmo.transport.envelope import Envelope, MessageObserver
from lianmo.transport.grpc_errors import error_from_rpc, is_busy, is_tls_failure
from lianmo.transport.inbox import Inbox
from lianmo.transport.tls import TlsIdentity

CHUNK_BYTES = 1024 * 1024
MAX_BACKOFF_S = 30.0
_LOGGER = logging.getLogger(__name__)
_T = t.TypeVar("_T")

Option = tuple[str, str | int]


def channel_options(expected_name: str) -> list[Option]:
    """gRPC channel options for dialling the party whose certificate name is ``expected_name``.

    Peers are dialled by IP or any host name, but the server certificate must carry the
    *party* name: ``ssl_target_name_override`` makes TLS check that name instead of the
    address's host. Keepalive pings detect dead connections during long protocol steps
    (the server accepts one every 30 s). A short reconnect backoff lets our own retry
    loop, not grpc's hidden backoff, decide when to try again.
    """
    return [
        ("grpc.ssl_target_name_override", expected_name),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]


def call_with_retries(
    call: Callable[[], _T],
    *,
    party: str,
    address: str,
    retries: int,
    backoff_s: float,
    what: str,
) -> _T:
    """Run one RPC, retrying UNAVAILABLE (never a TLS failure) and a busy peer's refusal
    with exponential backoff.

    Other failures become the lianmo error the remote party raised (see
    :func:`~lianmo.transport.grpc_errors.error_from_rpc`).

    Raises
    ------
    TransportError
        If the peer is still unavailable, or still busy, after ``retries`` retries.
    """
    for attempt in range(retries + 1):
        try:
            return call()
        except grpc.RpcError as err:
            rpc = t.cast(grpc.Call, err)
            details = rpc.details() or ""
            unavailable = rpc.code() == grpc.StatusCode.UNAVAILABLE
            retryable = (unavailable and not is_tls_failure(details)) or is_busy(err)
            if not retryable or (attempt == retries and not unavailable):
                raise error_from_rpc(err, party, address) from err
            if attempt == retries:
                raise _unreachable(party, address, attempt + 1, details, what) from err
            delay = min(backoff_s * 2**attempt, MAX_BACKOFF_S) * random.uniform(0.8, 1.2)
            _LOGGER.warning(
                "party '%s' at %s %s (%s), retry %d/%d in %.1fs",
                *(party, address, "unavailable" if unavailable else "busy", details),
                *(attempt + 1, retries, delay),
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _unreachable(
    party: str, address: str, attempts: int, details: str, what: str
) -> TransportError:
    return TransportError(
        f"party '{party}' at {address} unreachable after {attempts} attempts: {details} "
        f"({what}); check that its node runs and listens there and that its address in the "
        "job spec is right (if it runs, it may be refusing this node's certificate: are "
        "both issued by the same CA?)"
    )


def _chunks(env: Envelope) -> Iterator[federation_pb2.Chunk]:
    header = serde.header_to_proto(env)
    payload = memoryview(env.payload)
    yield federation_pb2.Chunk(header=header, data=bytes(payload[:CHUNK_BYTES]))
    for offset in range(CHUNK_BYTES, len(payload), CHUNK_BYTES):
        yield federation_pb2.Chunk(data=bytes(payload[offset : offset + CHUNK_BYTES]))


class PeerClient:
    """One mutual-TLS connection to one peer party, for sending it envelopes.

    Parameters
    ----------
    address
        ``host:port`` the peer listens on.
    expected_name
        The party name its certificate must carry.
    identity
        This node's TLS identity.
    options
        Extra gRPC channel options.
    """

    def __init__(
        self,
        address: str,
        expected_name: str,
        identity: TlsIdentity,
        *,
        options: Sequence[Option] = (),
    ) -> None:
        self.address = address
        self.name = expected_name
        self._channel = grpc.secure_channel(
            address,
            identity.channel_credentials(),
            options=[*channel_options(expected_name), *options],
        )
        self._stub = federation_pb2_grpc.FederationStub(self._channel)  # type: ignore[no-untyped-call]

    def send_envelope(
        self, env: Envelope, *, deadline_s: float, retries: int, backoff_s: float
    ) -> bool:
        """Stream ``env`` to the peer in chunks; return True if it already had it.

        Every attempt has its own deadline of ``deadline_s``. A resend after UNAVAILABLE
        carries the same sequence number, so the receiver drops it if the first attempt
        did arrive.
        """

        def attempt() -> bool:
            reply = self._stub.Send(_chunks(env), timeout=deadline_s)
            return bool(reply.duplicate)

        return call_with_retries(
            attempt,
            party=self.name,
            address=self.address,
            retries=retries,
            backoff_s=backoff_s,
            what=f"sending {env.describe()}",
        )

    def close(self) -> None:
        """Close the connection."""
        self._channel.close()

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GrpcChannel(Channel):
    """A party's :class:`Channel` for one job, delivering over mutual-TLS gRPC.

    Parameters
    ----------
    job_id, party, inbox, observers, recv_timeout
        As for :class:`Channel`; ``inbox`` is filled by this node's gRPC server.
    peers
        Party name to ``host:port`` of every other party of the job.
    identity
        This node's TLS identity; its certificate name must be ``party``.
    send_deadline_s
        Deadline of one send attempt.
    retries, backoff_s
        Retries after UNAVAILABLE and the first backoff (doubling each time).
    """

    def __init__(
        self,
        *,
        job_id: str,
        party: str,
        inbox: Inbox,
        peers: Mapping[str, str],
        identity: TlsIdentity,
        observers: Sequence[MessageObserver] = (),
        recv_timeout: float = DEFAULT_RECV_TIMEOUT,
        send_deadline_s: float = 600.0,
        retries: int = 8,
        backoff_s: float = 0.2,
    ) -> None:
        if identity.own_name() != party:
            raise ConfigError(
                f"party '{party}' is configured with the certificate of "
                f"'{identity.own_name()}'; peers would refuse its messages. Point tls.cert "
                f"and tls.key at {party}.pem and {party}.key"
            )
        super().__init__(
            job_id=job_id,
            party=party,
            inbox=inbox,
            peers=peers.keys(),
            observers=observers,
            recv_timeout=recv_timeout,
        )
        self._clients = {
            name: PeerClient(address, name, identity)
            for name, address in peers.items()
            if name != party
        }
        self._send_deadline_s = send_deadline_s
        self._retries = retries
        self._backoff_s = backoff_s

    def _deliver(self, env: Envelope) -> None:
        duplicate = self._clients[env.receiver].send_envelope(
            env,
            deadline_s=self._send_deadline_s,
            retries=self._retries,
            backoff_s=self._backoff_s,
        )
        if duplicate:
            _LOGGER.info("'%s' already had %s (resend dropped)", env.receiver, env.describe())

    def close(self) -> None:
        """Close the connections to every peer."""
        for client in self._clients.values():
            client.close()


def check_health_plaintext(address: str, timeout_s: float) -> str:
    """Ask the plaintext health port at ``address`` (a node's ``health_listen``).

    Returns "SERVING".

    Raises
    ------
    TransportError
        If nothing answers within ``timeout_s``, or the node answers anything but SERVING.
    """
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s, wait_for_ready=True
            )
        except grpc.RpcError as err:
            rpc = t.cast(grpc.Call, err)
            raise TransportError(
                f"no health answer from {address} within {timeout_s:g}s "
                f"({rpc.code().name}: {rpc.details()}); is the node running, and is "
                "health_listen set to this address in its party config?"
            ) from err
    status = str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    if status != "SERVING":
        raise TransportError(f"the node at {address} answers {status}: it is starting or stopping")
    return status


class ControlClient:
    """The coordinator's connection to one party node's Control service.

    Parameters
    ----------
    address
        ``host:port`` of the party node.
    expected_name
        The party name its certificate must carry.
    identity
        The coordinator's TLS identity.
    deadline_s
        Deadline of each call.
    retries, backoff_s
        Retries after UNAVAILABLE and the first backoff.
    """

    def __init__(
        self,
        address: str,
        expected_name: str,
        identity: TlsIdentity,
        deadline_s: float = 30.0,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.address = address
        self.name = expected_name
        self._deadline_s = deadline_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._channel = grpc.secure_channel(
            address, identity.channel_credentials(), options=channel_options(expected_name)
        )
        self._stub = control_pb2_grpc.ControlStub(self._channel)  # type: ignore[no-untyped-call]
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def prepare(self, job_id: str, spec_json: bytes) -> JobStatusInfo:
        """Send the job spec; the party checks it and its data and gets ready."""
        request = control_pb2.PrepareRequest(job_id=job_id, spec_json=spec_json)
        return self._call("Prepare", request, job_id)

    def start(self, job_id: str) -> JobStatusInfo:
        """Start a prepared job at the party."""
        return self._call("Start", control_pb2.JobRef(job_id=job_id), job_id)

    def status(self, job_id: str) -> JobStatusInfo:
        """The party's current state of the job."""
        return self._call("Status", control_pb2.JobRef(job_id=job_id), job_id)

    def cancel(self, job_id: str) -> JobStatusInfo:
        """Stop the job at the party."""
        return self._call("Cancel", control_pb2.JobRef(job_id=job_id), job_id)

    def resume(self, job_id: str) -> JobStatusInfo:
        """Run a stopped job at the party again from its latest checkpoint."""
        return self._call("Resume", control_pb2.JobRef(job_id=job_id), job_id)

    def _call(self, method: str, request: object, job_id: str) -> JobStatusInfo:
        rpc = getattr(self._stub, method)

        def attempt() -> JobStatusInfo:
            return serde.job_status_from_proto(rpc(request, timeout=self._deadline_s))

        return call_with_retries(
            attempt,
            party=self.name,
            address=self.address,
            retries=self._retries,
            backoff_s=self._backoff_s,
            what=f"{method} of job '{job_id}'",
        )

    def wait_healthy(self, timeout_s: float) -> None:
        """Wait until the party node answers its health check with SERVING.

        Raises
        ------
        AuthenticationError
            If the TLS handshake fails (wrong CA or certificate name): waiting cannot help.
        TransportError
            If the node is not serving within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while (remaining := deadline - time.monotonic()) > 0:
            problem = self._check_health(min(remaining, 5.0))
            if problem is None:
                return
            last = problem
            time.sleep(min(0.1, max(remaining, 0.0)))
        raise TransportError(
            f"party '{self.name}' at {self.address} is not serving after {timeout_s:g}s: "
            f"{last}; check that its node is running and listens on that address (if it "
            "runs, it may be refusing this node's certificate: are both issued by the same CA?)"
        )

    def _check_health(self, timeout_s: float) -> str | None:
        """One health check: None when SERVING, else what was wrong."""
        request = health_pb2.HealthCheckRequest(service="")
        try:
            reply = self._health.Check(request, timeout=timeout_s)
        except grpc.RpcError as err:
            rpc = t.cast(grpc.Call, err)
            if is_tls_failure(rpc.details() or ""):
                raise error_from_rpc(err, self.name, self.address) from err
            return f"{rpc.code().name}: {rpc.details()}"
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return None
        return f"health status {reply.status}"

    def close(self) -> None:
        """Close the connection."""
        self._channel.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
