"""The online scoring service over gRPC: its domain records, servicer, server and client.

A node's serving port (``[serving] listen``) carries ``lianmo.v1.Scoring`` over the same
mutual TLS as the federation: ``Score`` (a decision engine, the HTTP front or the Python
client asks the guest) and ``Part`` (the guest asks a host for its part). The node's
:class:`ScoringHandler` decides; this module only converts between protobuf and the
records below and maps errors to status codes (:mod:`lianmo.transport.grpc_errors`).

Requests beyond ``max_inflight`` at once are refused at once with RESOURCE_EXHAUSTED
(the bounded queue: an overloaded node says so instead of letting deadlines pass). A host
also answers RESOURCE_EXHAUSTED, with the error kind ``IdBudgetError``, to a ``Part`` call
past its ``[serving] id_budget``; the client raises that error, not :class:`OverloadedError`.
"""

from __future__ import annotations

import typing as t
from concurrent import futures
from dataclasses import dataclass

import grpc
import numpy as np

from lianmo.errors import IdBudgetError, ProtocolError, TransportError
from lianmo.transport._pb import scoring_pb2, scoring_pb2_grpc
from lianmo.transport.grpc_channel import channel_options
from lianmo.transport.grpc_errors import error_from_rpc, maps_errors
from lianmo.transport.grpc_server import SERVER_OPTIONS
from lianmo.transport.tls import TlsIdentity, peer_name

SCORING_SERVICE = "lianmo.v1.Scoring"
#: a request's largest id count (the guest's own ``[serving] max_ids`` may be lower)
MAX_IDS = 10_000
MAX_ID_CHARS = 256

#: one cell of the guest's own features in a request: a number, a text or missing (None)
Cell = float | str | None


class OverloadedError(TransportError):
    """The node has ``max_inflight`` requests in flight: retry shortly (RESOURCE_EXHAUSTED)."""


@dataclass(frozen=True, slots=True)
class ScoreQuery:
    """A request to the guest: model name, version ('' = promoted), ids, own features."""

    model: str
    version: str
    ids: tuple[str, ...]
    features: tuple[dict[str, Cell], ...] = ()  # empty, or one mapping per id


@dataclass(frozen=True, slots=True)
class IdScore:
    """One id's answer: ``values`` (probability, class probabilities or prediction), or
    ``error`` saying why there is none; ``fallback`` marks a guest-only score. A scorecard
    adds its ``points`` and the guest's own ``reasons``."""

    id: str
    values: tuple[float, ...] = ()
    error: str = ""
    fallback: bool = False
    points: float | None = None  # scorecards: the score in points
    reasons: tuple[str, ...] = ()  # scorecards: the guest's own reason codes


@dataclass(frozen=True, slots=True)
class ScoreAnswer:
    model: str
    version: str
    task: str
    scores: tuple[IdScore, ...]
    fallback_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PartQuery:
    """The guest's question to a host: its part for ``ids`` from model version ``version``."""

    model: str
    version: str
    spec_sha256: str
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PartAnswer:
    """A host's part: which ids it has, and an LR partial score or SecureBoost sides.

    ``partial`` is ``(ids, outputs)`` float64 (LR); ``split_ids`` and ``left``
    (``(ids, splits)`` bool: the side each id takes at each of the host's splits) are
    SecureBoost's. Rows of ids not found are zeros.
    """

    version: str
    found: np.ndarray
    partial: np.ndarray | None = None
    split_ids: np.ndarray | None = None
    left: np.ndarray | None = None


class ScoringHandler(t.Protocol):
    """What a node does when it is asked for scores (guest) or for its part (host).

    ``caller`` is the certificate name of whoever called; ``time_left`` the seconds until
    the caller's deadline (None: none set). Methods raise LianmoError subclasses.
    """

    def score(self, caller: str, query: ScoreQuery, time_left: float | None) -> ScoreAnswer: ...

    def part(self, caller: str, query: PartQuery, time_left: float | None) -> PartAnswer: ...


# ---- conversion ----------------------------------------------------------------------


def _cell(value: scoring_pb2.FeatureValue) -> Cell:
    which = value.WhichOneof("value")
    if which == "number":
        return float(value.number)
    if which == "text":
        return str(value.text)
    return None


def _cell_pb(cell: Cell) -> scoring_pb2.FeatureValue:
    if cell is None:
        return scoring_pb2.FeatureValue(missing=True)
    if isinstance(cell, str):
        return scoring_pb2.FeatureValue(text=cell)
    return scoring_pb2.FeatureValue(number=float(cell))


def query_from_pb(request: scoring_pb2.ScoreRequest) -> ScoreQuery:
    ids = _checked_ids(request.ids)
    features = tuple({k: _cell(v) for k, v in row.values.items()} for row in request.features)
    if features and len(features) != len(ids):
        raise ProtocolError(
            f"the request has {len(ids)} ids but {len(features)} feature rows; give one row "
            "per id, in the same order, or none"
        )
    return ScoreQuery(request.model, request.version, ids, features)


def query_to_pb(query: ScoreQuery) -> scoring_pb2.ScoreRequest:
    rows = [
        scoring_pb2.RowFeatures(values={k: _cell_pb(v) for k, v in row.items()})
        for row in query.features
    ]
    return scoring_pb2.ScoreRequest(
        model=query.model, version=query.version, ids=list(query.ids), features=rows
    )


def answer_to_pb(answer: ScoreAnswer) -> scoring_pb2.ScoreReply:
    return scoring_pb2.ScoreReply(
        model=answer.model,
        version=answer.version,
        task=answer.task,
        scores=[
            scoring_pb2.IdScore(
                id=s.id,
                values=list(s.values),
                error=s.error,
                fallback=s.fallback,
                points=s.points,
                reasons=list(s.reasons),
            )
            for s in answer.scores
        ],
        fallback_hosts=list(answer.fallback_hosts),
    )


def answer_from_pb(reply: scoring_pb2.ScoreReply) -> ScoreAnswer:
    return ScoreAnswer(
        model=reply.model,
        version=reply.version,
        task=reply.task,
        scores=tuple(
            IdScore(
                s.id,
                tuple(s.values),
                s.error,
                s.fallback,
                s.points if s.HasField("points") else None,
                tuple(s.reasons),
            )
            for s in reply.scores
        ),
        fallback_hosts=tuple(reply.fallback_hosts),
    )


def part_query_from_pb(request: scoring_pb2.PartRequest) -> PartQuery:
    return PartQuery(request.model, request.version, request.spec_sha256, _checked_ids(request.ids))


def part_to_pb(answer: PartAnswer) -> scoring_pb2.PartReply:
    reply = scoring_pb2.PartReply(
        version=answer.version, found=np.packbits(answer.found.astype(bool)).tobytes()
    )
    if answer.partial is not None:
        partial = np.asarray(answer.partial, dtype="<f8")
        reply.partial = partial.tobytes()
        reply.outputs = partial.shape[1]
    if answer.split_ids is not None and answer.left is not None:
        reply.split_ids = np.asarray(answer.split_ids, dtype="<u8").tobytes()
        reply.left = np.packbits(answer.left.astype(bool), axis=1).tobytes()
    return reply


def part_from_pb(reply: scoring_pb2.PartReply, n: int, party: str) -> PartAnswer:
    """A host's reply for ``n`` ids, checked for shape (a malformed one names ``party``)."""
    try:
        found = np.unpackbits(np.frombuffer(reply.found, dtype=np.uint8), count=n).astype(bool)
        partial = split_ids = left = None
        if reply.partial:
            outputs = int(reply.outputs)
            partial = np.frombuffer(reply.partial, dtype="<f8").reshape(n, outputs)
        if reply.split_ids:
            split_ids = np.frombuffer(reply.split_ids, dtype="<u8")
            width = (len(split_ids) + 7) // 8
            packed = np.frombuffer(reply.left, dtype=np.uint8).reshape(n, width)
            left = np.unpackbits(packed, axis=1, count=len(split_ids)).astype(bool)
    except ValueError as exc:
        raise ProtocolError(
            f"party '{party}' answered a part for {n} ids that does not fit them ({exc})"
        ) from exc
    if len(reply.found) != (n + 7) // 8:
        raise ProtocolError(f"party '{party}' answered 'found' for another number of ids")
    return PartAnswer(reply.version, found, partial, split_ids, left)


def _checked_ids(ids: t.Sequence[str]) -> tuple[str, ...]:
    if not ids:
        raise ProtocolError("the request names no ids; give at least one")
    if len(ids) > MAX_IDS:
        raise ProtocolError(f"the request names {len(ids)} ids; at most {MAX_IDS} per request")
    out = tuple(i.strip() for i in ids)
    for k, i in enumerate(out):
        if not i or len(i) > MAX_ID_CHARS:
            raise ProtocolError(
                f"id number {k + 1} of the request is empty or longer than {MAX_ID_CHARS} "
                "characters"
            )
    return out


# ---- server --------------------------------------------------------------------------


class ScoringServicer(scoring_pb2_grpc.ScoringServicer):
    """``lianmo.v1.Scoring`` in front of a :class:`ScoringHandler`."""

    def __init__(self, handler: ScoringHandler, party: str) -> None:
        self._handler = handler
        self._party = party

    @maps_errors
    def Score(
        self, request: scoring_pb2.ScoreRequest, context: grpc.ServicerContext
    ) -> scoring_pb2.ScoreReply:
        caller = peer_name(context)
        answer = self._handler.score(caller, query_from_pb(request), context.time_remaining())
        return answer_to_pb(answer)

    @maps_errors
    def Part(
        self, request: scoring_pb2.PartRequest, context: grpc.ServicerContext
    ) -> scoring_pb2.PartReply:
        caller = peer_name(context)
        answer = self._handler.part(caller, part_query_from_pb(request), context.time_remaining())
        return part_to_pb(answer)


def serve_scoring(
    listen: str, identity: TlsIdentity, handler: ScoringHandler, *, max_inflight: int = 64
) -> tuple[grpc.Server, int]:
    """Start the mutual-TLS scoring server on ``listen`` (port 0: a free one).

    At most ``max_inflight`` calls run at once (one thread each); grpc refuses the next
    with RESOURCE_EXHAUSTED at once.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_inflight),
        options=SERVER_OPTIONS,
        maximum_concurrent_rpcs=max_inflight,
    )
    scoring_pb2_grpc.add_ScoringServicer_to_server(  # type: ignore[no-untyped-call]
        ScoringServicer(handler, identity.own_name()), server
    )
    try:
        port = server.add_secure_port(listen, identity.server_credentials())
    except RuntimeError:
        port = 0
    if port == 0:
        raise TransportError(
            f"party '{identity.own_name()}' cannot serve scoring on {listen!r} (address in "
            "use or not local); check [serving] listen in the party config"
        )
    server.start()
    return server, int(port)


# ---- client --------------------------------------------------------------------------


class ScoringClient:
    """Calls one node's scoring port over mutual TLS (reused connection; thread-safe).

    ``party`` is the certificate name the node must present. A failed call raises the
    node's own error (see :func:`~lianmo.transport.grpc_errors.error_from_rpc`); an
    unreachable node or a passed deadline a :class:`TransportError`, at once (no waiting
    for a node that is down).
    """

    def __init__(self, address: str, identity: TlsIdentity, party: str) -> None:
        self.address = address
        self.party = party
        options = [
            *channel_options(party),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1_000),
        ]
        self._channel = grpc.secure_channel(address, identity.channel_credentials(), options)
        self._stub = scoring_pb2_grpc.ScoringStub(self._channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._channel.close()

    def ready(self, timeout: float) -> bool:
        """True if a connection to the node is up, or comes up within ``timeout`` seconds.

        Up means the mutual-TLS handshake is done; no call is made and nothing is logged at
        the node, so a health probe may ask as often as it likes.
        """
        future = grpc.channel_ready_future(self._channel)
        try:
            future.result(timeout=timeout)
        except grpc.FutureTimeoutError:
            future.cancel()  # stop watching the channel
            return False
        return True

    def score(self, query: ScoreQuery, timeout: float) -> ScoreAnswer:
        reply = self._call(self._stub.Score, query_to_pb(query), timeout)
        return answer_from_pb(reply)

    def part(self, query: PartQuery, timeout: float) -> PartAnswer:
        request = scoring_pb2.PartRequest(
            model=query.model,
            version=query.version,
            spec_sha256=query.spec_sha256,
            ids=list(query.ids),
        )
        reply = self._call(self._stub.Part, request, timeout)
        return part_from_pb(reply, len(query.ids), self.party)

    def _call(self, method: t.Any, request: object, timeout: float) -> t.Any:
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as err:
            call = t.cast(grpc.Call, err)
            if call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                refused = error_from_rpc(err, self.party, self.address)
                if isinstance(refused, IdBudgetError):  # not overload: retrying cannot help
                    raise refused from err
                raise OverloadedError(
                    f"party '{self.party}' at {self.address} is overloaded: {call.details()}; "
                    "retry shortly"
                ) from err
            raise error_from_rpc(err, self.party, self.address) from err
