"""The gRPC server of a node: federation messages in, coordinator control, health."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from lianmo.errors import AuthenticationError, ProtocolError, TransportError
from lianmo.transport import serde
from lianmo.transport._pb import control_pb2, control_pb2_grpc, federation_pb2, federation_pb2_grpc
from lianmo.transport.admission import (
    CONTROL_RESERVE,
    DEFAULT_LIMITS,
    Admission,
    CallLimits,
    IsMember,
)
from lianmo.transport.control import ControlHandler
from lianmo.transport.grpc_errors import abort, maps_errors
from lianmo.transport.inbox import Inbox
from lianmo.transport.stall import StallWatch
from lianmo.transport.tls import TlsIdentity, peer_name

DEFAULT_MAX_MESSAGE_BYTES = 2 * 1024**3
FEDERATION_SERVICE = "lianmo.v1.Federation"
CONTROL_SERVICE = "lianmo.v1.Control"
_LOGGER = logging.getLogger(__name__)

SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    # Without SO_REUSEPORT a second node on the same port fails loudly instead of
    # silently sharing (and splitting) the first node's traffic.
    ("grpc.so_reuseport", 0),
    # Clients ping every 60 s to keep long idle streams alive through NAT and firewalls;
    # the server must accept pings that often, or it answers GOAWAY "too_many_pings".
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 30_000),
    ("grpc.http2.max_ping_strikes", 0),
)

InboxLookup = Callable[[str], Inbox]
# The standard gRPC health service; one per node, shared by its TLS and plaintext ports.
HealthServicer: TypeAlias = health.HealthServicer


class FederationServicer(federation_pb2_grpc.FederationServicer):
    """Receives envelopes streamed in chunks and puts them into their job's inbox.

    Method names are PascalCase because the generated base class fixes them.

    Parameters
    ----------
    inbox_for
        Returns the inbox of a job; raises :class:`UnknownJobError` for jobs not run here.
    max_message_bytes
        Largest payload accepted; larger ones end with RESOURCE_EXHAUSTED.
    admission
        Who may call and how many calls at once; None admits every caller (tests).
    limits
        The deadlines on a call's chunks (and the per-caller cap ``admission`` applies).
    """

    def __init__(
        self,
        inbox_for: InboxLookup,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        *,
        admission: Admission | None = None,
        limits: CallLimits = DEFAULT_LIMITS,
    ) -> None:
        self._inbox_for = inbox_for
        self._max_bytes = max_message_bytes
        self._admission = admission
        self._limits = limits
        self._stalls = StallWatch()

    @maps_errors
    def Send(
        self, request_iterator: Iterator[federation_pb2.Chunk], context: grpc.ServicerContext
    ) -> federation_pb2.SendReply:
        """Admit the caller, then reassemble one envelope and deliver it to the inbox."""
        caller = peer_name(context)
        # Strangers and callers over their cap are refused before a byte is read.
        admission = self._admission
        with contextlib.nullcontext() if admission is None else admission.call(caller):
            chunks = self._stalls.paced(
                iter(request_iterator),
                context,
                first_s=self._limits.first_chunk_s,
                gap_s=self._limits.chunk_gap_s,
                what=f"Send from '{caller}'",
            )
            return self._receive(caller, chunks, context)

    def _receive(
        self,
        caller: str,
        chunks: Iterator[federation_pb2.Chunk],
        context: grpc.ServicerContext,
    ) -> federation_pb2.SendReply:
        first = next(chunks, None)
        if first is None:
            raise ProtocolError(
                f"'{caller}' opened a Send stream that ended before its first chunk; the "
                "connection was cut (the sender resends), or its software is incompatible"
            )
        if not first.HasField("header"):
            raise ProtocolError(
                f"'{caller}' opened a Send stream whose first chunk has no envelope header; "
                "the sender's software is incompatible"
            )
        header = first.header
        _check_sender(caller, header)
        inbox = self._inbox_for(header.job_id)  # unknown jobs and strangers: before any data
        inbox.admit(header.job_id, header.sender, header.receiver, f"message '{header.tag}'")
        self._check_size(context, header, header.payload_size)
        datas = self._checked_chunks(context, header, _chunk_data(header, first, chunks))
        duplicate = inbox.put_stream(
            serde.announced_envelope(header), datas, size=header.payload_size
        )
        return federation_pb2.SendReply(duplicate=duplicate)

    def _checked_chunks(
        self,
        context: grpc.ServicerContext,
        header: federation_pb2.EnvelopeHeader,
        datas: Iterator[bytes],
    ) -> Iterator[bytes]:
        """The payload's chunks as they arrive, stopped as soon as they exceed a limit."""
        size = 0
        for data in datas:
            size += len(data)
            # Check as bytes arrive, not after: a lying header must not make us spool 2 GiB.
            self._check_size(context, header, size)
            if size > header.payload_size:
                raise ProtocolError(
                    f"message '{header.tag}' round {header.round} from '{header.sender}' is "
                    f"oversized: header says {header.payload_size} bytes, received {size} so far"
                )
            yield data

    def _check_size(
        self, context: grpc.ServicerContext, header: federation_pb2.EnvelopeHeader, size: int
    ) -> None:
        if size > self._max_bytes:
            exc = ProtocolError(
                f"message '{header.tag}' round {header.round} from '{header.sender}' in job "
                f"'{header.job_id}' is {size} bytes, over this node's limit of "
                f"{self._max_bytes} bytes; raise max_message_mb in the receiving party's "
                "config or use smaller batches"
            )
            _LOGGER.warning("Send from %s refused: %s", context.peer(), exc)
            abort(context, exc, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _chunk_data(
    header: federation_pb2.EnvelopeHeader,
    first: federation_pb2.Chunk,
    rest: Iterator[federation_pb2.Chunk],
) -> Iterator[bytes]:
    yield first.data
    for chunk in rest:
        if chunk.HasField("header"):
            raise ProtocolError(
                f"message '{header.tag}' round {header.round} from '{header.sender}' has "
                "a second envelope header inside its stream; send one envelope per call"
            )
        yield chunk.data


def _check_sender(caller: str, header: federation_pb2.EnvelopeHeader) -> None:
    if header.sender != caller:
        raise AuthenticationError(
            f"certificate of '{caller}' cannot send as '{header.sender}' (message "
            f"'{header.tag}' round {header.round} in job '{header.job_id}'); each party "
            "sends only under its own certificate name"
        )


class ControlServicer(control_pb2_grpc.ControlServicer):
    """Thin adapter from the Control RPCs to a node's :class:`ControlHandler`."""

    def __init__(self, handler: ControlHandler) -> None:
        self._handler = handler

    @maps_errors
    def Prepare(
        self, request: control_pb2.PrepareRequest, context: grpc.ServicerContext
    ) -> control_pb2.JobStatus:
        """Validate a job spec and get ready to run it."""
        info = self._handler.prepare(peer_name(context), request.job_id, request.spec_json)
        return serde.job_status_to_proto(info)

    @maps_errors
    def Start(
        self, request: control_pb2.JobRef, context: grpc.ServicerContext
    ) -> control_pb2.JobStatus:
        """Start a prepared job."""
        info = self._handler.start(peer_name(context), request.job_id)
        return serde.job_status_to_proto(info)

    @maps_errors
    def Status(
        self, request: control_pb2.JobRef, context: grpc.ServicerContext
    ) -> control_pb2.JobStatus:
        """Report a job's state at this party."""
        info = self._handler.status(peer_name(context), request.job_id)
        return serde.job_status_to_proto(info)

    @maps_errors
    def Cancel(
        self, request: control_pb2.JobRef, context: grpc.ServicerContext
    ) -> control_pb2.JobStatus:
        """Stop a job at this party."""
        info = self._handler.cancel(peer_name(context), request.job_id)
        return serde.job_status_to_proto(info)

    @maps_errors
    def Resume(
        self, request: control_pb2.JobRef, context: grpc.ServicerContext
    ) -> control_pb2.JobStatus:
        """Run a stopped job again from this party's latest checkpoint."""
        info = self._handler.resume(peer_name(context), request.job_id)
        return serde.job_status_to_proto(info)


GrpcServer: TypeAlias = grpc.Server


def serve(
    *,
    listen: str,
    identity: TlsIdentity,
    inbox_for: InboxLookup,
    control: ControlHandler | None,
    is_member: IsMember,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    limits: CallLimits = DEFAULT_LIMITS,
    max_workers: int = 16,
    health_servicer: HealthServicer | None = None,
) -> tuple[grpc.Server, int]:
    """Start a mutual-TLS server with the federation, control and health services.

    Parameters
    ----------
    listen
        ``host:port``; port 0 picks a free port.
    identity
        This node's certificate, key and CA.
    inbox_for
        Job id to inbox lookup for incoming federation messages.
    control
        The node's control handler, or None to serve no Control service.
    is_member
        Whether a certificate name may send federation messages here: a coordinator or
        a party of a job this node holds. Others are refused before anything is read.
    max_message_bytes
        Largest federation payload accepted.
    limits
        Deadlines for each call's chunks and the cap on calls per caller.
    max_workers
        Thread pool size; each in-flight call holds one thread. Message streams may take
        all but :data:`~lianmo.transport.admission.CONTROL_RESERVE` of them, so that
        control and health calls are always served.
    health_servicer
        The health service to serve (and mark SERVING); pass one to share it with
        :func:`serve_health`. A new one by default.

    Returns
    -------
    tuple
        The started server and the port it is bound to.

    Raises
    ------
    TransportError
        If ``listen`` cannot be bound.
    """
    if max_workers <= CONTROL_RESERVE:
        raise ValueError(f"max_workers must exceed {CONTROL_RESERVE}, got {max_workers}")
    admission = Admission(
        identity.own_name(),
        is_member,
        calls_per_peer=limits.calls_per_peer,
        total=max_workers - CONTROL_RESERVE,
    )
    # No maximum_concurrent_rpcs: grpc would count calls before knowing who makes them,
    # so a flood from any certificate holder would get the coordinator refused too.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers), options=SERVER_OPTIONS)
    federation = FederationServicer(
        inbox_for, max_message_bytes, admission=admission, limits=limits
    )
    federation_pb2_grpc.add_FederationServicer_to_server(  # type: ignore[no-untyped-call]
        federation, server
    )
    services = ["", FEDERATION_SERVICE]
    if control is not None:
        control_pb2_grpc.add_ControlServicer_to_server(  # type: ignore[no-untyped-call]
            ControlServicer(control), server
        )
        services.append(CONTROL_SERVICE)
    health_servicer = health_servicer or health.HealthServicer()
    for service in services:
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = _bind(server, listen, identity)
    server.start()
    _LOGGER.info("'%s' serving %s on %s (port %d)", identity.own_name(), services, listen, port)
    return server, port


def serve_health(listen: str, health_servicer: HealthServicer) -> tuple[grpc.Server, int]:
    """Start a plaintext server with only the standard gRPC health service on ``listen``.

    For probes that cannot present a client certificate (Docker's HEALTHCHECK, the
    kubelet's gRPC probes). It answers SERVING or NOT_SERVING and nothing else: no job,
    party or data is reachable through it.

    Raises
    ------
    TransportError
        If ``listen`` cannot be bound.
    """
    server = grpc.server(futures.ThreadPoolExecutor(2), options=SERVER_OPTIONS)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError:
        port = 0
    if port == 0:
        raise TransportError(
            f"cannot listen for health checks on {listen!r} (address in use or not local); "
            "check 'health_listen' in the party config"
        )
    server.start()
    _LOGGER.info("health checks (plaintext) on %s (port %d)", listen, port)
    return server, int(port)


def _bind(server: grpc.Server, listen: str, identity: TlsIdentity) -> int:
    try:
        port = server.add_secure_port(listen, identity.server_credentials())
    except RuntimeError as exc:
        port, cause = 0, str(exc)
    else:
        cause = "address in use or not local"
    if port == 0:
        raise TransportError(
            f"party '{identity.own_name()}' cannot listen on {listen!r} ({cause}); check "
            "'listen' in the party config and that no other node uses that port"
        )
    return int(port)


@contextlib.contextmanager
def running_server(
    *,
    listen: str,
    identity: TlsIdentity,
    inbox_for: InboxLookup,
    is_member: IsMember,
    control: ControlHandler | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    limits: CallLimits = DEFAULT_LIMITS,
    max_workers: int = 16,
    grace_s: float = 1.0,
) -> Iterator[tuple[grpc.Server, int]]:
    """:func:`serve` as a context manager that always stops the server on exit."""
    server, port = serve(
        listen=listen,
        identity=identity,
        inbox_for=inbox_for,
        control=control,
        is_member=is_member,
        max_message_bytes=max_message_bytes,
        limits=limits,
        max_workers=max_workers,
    )
    try:
        yield server, port
    finally:
        server.stop(grace_s).wait()
