"""Fuzz the payload and job status decoders of ``transport.serde`` and the gRPC server's
receive path (``FederationServicer.Send``: header checks, ``serde.announced_envelope``,
chunk reassembly, limits, the spool's size and digest check).

Arbitrary bytes and field values must fail with :class:`ProtocolError` (or, one layer
down, protobuf's own ``DecodeError``), or end the call with the gRPC status the first
failed check maps to, never a raw Python exception; valid messages round-trip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import typing as t
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lianmo.errors import ProtocolError, UnknownJobError
from lianmo.transport import serde
from lianmo.transport._pb import control_pb2 as control_pb
from lianmo.transport._pb import federation_pb2 as pb
from lianmo.transport.control import JobStatusInfo
from lianmo.transport.envelope import Envelope
from lianmo.transport.grpc_server import FederationServicer
from lianmo.transport.inbox import Inbox
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
from lianmo.transport.spool import Spool

FUZZ = settings(max_examples=250, deadline=None)

PAYLOAD_TYPES = sorted(serde._DECODERS)
UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)
blobs = st.binary(max_size=256)
type_names = st.one_of(st.sampled_from(PAYLOAD_TYPES), st.text(max_size=40))


# ---- payloads -------------------------------------------------------------------------


@st.composite
def _fixed_width(
    draw: st.DrawFn, *, max_count: int = 8, max_width: int = 40
) -> tuple[int, int, bytes]:
    count = draw(st.integers(0, max_count))
    width = draw(st.integers(1, max_width))
    return count, width, draw(st.binary(min_size=count * width, max_size=count * width))


@st.composite
def _encrypted(draw: st.DrawFn) -> EncryptedVector:
    count, width, data = draw(_fixed_width())
    key_id = draw(st.binary(min_size=32, max_size=32))
    exponent = draw(st.integers(-(2**31), 2**31 - 1))
    return EncryptedVector(key_id=key_id, exponent=exponent, count=count, width=width, data=data)


@st.composite
def _ints(draw: st.DrawFn) -> IntVector:
    return IntVector(*draw(_fixed_width()))


@st.composite
def _points(draw: st.DrawFn) -> PointList:
    return PointList(*draw(_fixed_width()))


@st.composite
def _bits(draw: st.DrawFn) -> BitMatrix:
    rows, cols = draw(st.integers(0, 8)), draw(st.integers(0, 40))
    size = rows * ((cols + 7) // 8)
    return BitMatrix(rows=rows, cols=cols, data=draw(st.binary(min_size=size, max_size=size)))


def _packed(width: int) -> st.SearchStrategy[bytes]:
    return st.lists(st.binary(min_size=width, max_size=width), max_size=8).map(b"".join)


#: One valid payload of every type in ``transport.messages``.
payloads: st.SearchStrategy[Payload] = st.one_of(
    st.builds(PublicKeyMsg, n=blobs),
    _encrypted(),
    _ints(),
    st.builds(FloatVector, data=_packed(8)),
    _points(),
    st.builds(IndexList, data=_packed(4)),
    _bits(),
    st.builds(Signal, name=st.text(max_size=20), value=st.text(max_size=20)),
)


def test_every_payload_type_has_a_strategy() -> None:
    assert set(t.get_args(Payload)) == set(serde._ENCODERS)


@FUZZ
@given(payloads)
def test_valid_payloads_round_trip(payload: Payload) -> None:
    name, data = serde.encode_payload(payload)
    decoded = serde.decode_payload(name, data)
    assert decoded == payload
    assert serde.encode_payload(decoded) == (name, data)


@FUZZ
@given(type_names, blobs)
@example("lianmo.v1.Signal", b"\x0a\x01\xff")  # invalid UTF-8 in a string field
@example("lianmo.v1.IntVector", b"\x08\x02\x10\x00")  # width 0
@example("lianmo.v1.EncryptedVector", b"\x10\x01\x18\x01\x20\x01")  # 1 x 1 byte, no data
@example("lianmo.v1.BitMatrix", b"\x08\xff\xff\xff\xff\x0f\x10\x01")  # 2**32-1 rows, no data
@example("lianmo.v1.FloatVector", b"\x0a\x03abc")  # not a whole float64
@example("", b"")
def test_arbitrary_payload_bytes_decode_or_raise_protocol_error(
    payload_type: str, data: bytes
) -> None:
    try:
        payload = serde.decode_payload(payload_type, data)
    except ProtocolError as exc:
        assert str(exc)
        return
    name, again = serde.encode_payload(payload)
    assert name == payload_type
    assert serde.decode_payload(name, again) == payload


@FUZZ
@given(payloads, st.sampled_from(PAYLOAD_TYPES))
def test_a_payload_decoded_as_another_type_parses_or_is_refused(
    payload: Payload, payload_type: str
) -> None:
    _, data = serde.encode_payload(payload)
    try:
        decoded = serde.decode_payload(payload_type, data)
    except ProtocolError:
        return
    assert serde.encode_payload(decoded)[0] == payload_type


# ---- envelope headers and chunks, through what the gRPC server runs --------------------
#
# FederationServicer.Send is driven in process with a fake call context, a real inbox and
# its on-disk spool (a node's set-up): the header check, serde.announced_envelope, the
# chunk reassembly, the size limits and the spool's size and sha256 check all run as they
# do for a real stream. An oracle says which status each stream must end with.

CALLER, RECEIVER, JOB = "host", "guest", "j"
MAX_MESSAGE_BYTES, MAX_JOB_BYTES = 200, 150
Code = grpc.StatusCode


class Aborted(Exception):
    """What the fake context's ``abort`` raises (grpc's raises a bare Exception)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code, self.details = code, details


class FakeContext:
    """Just enough of a grpc.ServicerContext for FederationServicer.Send."""

    def __init__(self, caller: str) -> None:
        self._auth = {"x509_subject_alternative_name": [caller.encode()]}
        self.trailing: tuple[tuple[str, str], ...] = ()

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1234"

    def is_active(self) -> bool:
        return True

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailing = metadata

    def abort(self, code: grpc.StatusCode, details: str) -> t.NoReturn:
        raise Aborted(code, details)


_inboxes = itertools.count()


@dataclasses.dataclass
class Outcome:
    """How a Send call ended, and how many chunks the server read from the stream."""

    inbox: Inbox
    spool: Path
    result: pb.SendReply | Aborted
    read: int


def _send(files: Path, chunks: list[pb.Chunk]) -> Outcome:
    """Run the server's Send on ``chunks`` into a fresh inbox of ``RECEIVER`` in ``JOB``."""
    folder = files / f"spool-{next(_inboxes)}"
    spool = Spool(folder)
    senders = [RECEIVER, CALLER, "arbiter"]
    inbox = Inbox(JOB, RECEIVER, senders, spool=spool, max_job_bytes=MAX_JOB_BYTES)

    def inbox_for(job_id: str) -> Inbox:
        if job_id != JOB:
            raise UnknownJobError(f"party '{RECEIVER}' is not running job '{job_id}'")
        return inbox

    read = 0

    def stream() -> t.Iterator[pb.Chunk]:
        nonlocal read
        for chunk in chunks:
            read += 1
            yield chunk

    servicer = FederationServicer(inbox_for, MAX_MESSAGE_BYTES)
    context = FakeContext(CALLER)
    try:
        reply = servicer.Send(stream(), t.cast(grpc.ServicerContext, context))
    except Aborted as aborted:
        assert aborted.details and context.trailing[0][0] == "lianmo-error-kind"
        return Outcome(inbox, folder, aborted, read)
    return Outcome(inbox, folder, reply, read)


def _expected(chunks: list[pb.Chunk]) -> tuple[grpc.StatusCode | None, int]:
    """The status the server must end ``chunks`` with (None: accepted) and how many chunks
    it may read first: the checks in the server's order, the limits as the data arrives."""
    if not chunks or not chunks[0].HasField("header"):
        return Code.INVALID_ARGUMENT, len(chunks[:1])
    header = chunks[0].header
    if header.sender != CALLER:
        return Code.PERMISSION_DENIED, 1
    if header.job_id != JOB:
        return Code.NOT_FOUND, 1
    if header.receiver != RECEIVER:
        return Code.FAILED_PRECONDITION, 1
    if header.payload_size > MAX_MESSAGE_BYTES:
        return Code.RESOURCE_EXHAUSTED, 1
    if header.seq != 0:  # a fresh inbox expects seq 0 first
        return Code.FAILED_PRECONDITION, 1
    if header.payload_size > MAX_JOB_BYTES:
        return Code.INVALID_ARGUMENT, 1
    size = 0
    for index, chunk in enumerate(chunks):
        if index and chunk.HasField("header"):
            return Code.INVALID_ARGUMENT, index + 1
        size += len(chunk.data)
        if size > MAX_MESSAGE_BYTES:
            return Code.RESOURCE_EXHAUSTED, index + 1
        if size > header.payload_size:  # a lying header: stop reading at once
            return Code.INVALID_ARGUMENT, index + 1
    payload = b"".join(chunk.data for chunk in chunks)
    if size != header.payload_size or hashlib.sha256(payload).digest() != header.payload_sha256:
        return Code.INVALID_ARGUMENT, len(chunks)
    return None, len(chunks)


def _check_send(files: Path, chunks: list[pb.Chunk]) -> None:
    """The server ends ``chunks`` as the oracle says; what it accepts is what was sent."""
    outcome = _send(files, chunks)
    code, read = _expected(chunks)
    assert outcome.read == read
    if isinstance(outcome.result, Aborted):
        assert outcome.result.code == code, outcome.result.details
        assert outcome.inbox.arrived(CALLER) == 0
        assert not [path for path in outcome.spool.rglob("*") if path.is_file()]  # no leftovers
        return
    assert code is None and outcome.result.duplicate is False
    held = outcome.inbox.take(CALLER, timeout=0)
    assert serde.header_to_proto(held) == chunks[0].header
    assert held.payload == b"".join(chunk.data for chunk in chunks)


names = st.text(max_size=24)


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    return Envelope.build(
        job_id=draw(names),
        round=draw(UINT32),
        tag=draw(names),
        sender=draw(names),
        receiver=draw(names),
        seq=draw(UINT64),
        payload_type=draw(type_names),
        payload=draw(blobs),
        audit_head=draw(st.sampled_from(["", "0" * 64, hashlib.sha256(b"h").hexdigest()])),
    )


def _split(payload: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(payload), *(c % (len(payload) + 1) for c in cuts)})
    return [payload[a:b] for a, b in zip(bounds, bounds[1:], strict=False)] or [b""]


def _fields(env: Envelope) -> dict[str, t.Any]:
    """Arguments of Envelope.build that make ``env`` again."""
    return {f.name: getattr(env, f.name) for f in dataclasses.fields(env) if f.name != "sha256"}


def _header(**fields: t.Any) -> pb.EnvelopeHeader:
    """A header addressed as the server accepts, with ``fields`` changed."""
    return pb.EnvelopeHeader(**{"job_id": JOB, "sender": CALLER, "receiver": RECEIVER, **fields})


def _stream(header: pb.EnvelopeHeader, datas: list[bytes]) -> list[pb.Chunk]:
    """The chunks a client sends: the header rides on the first."""
    return [pb.Chunk(header=header, data=datas[0])] + [pb.Chunk(data=d) for d in datas[1:]]


@FUZZ
@given(envelopes(), st.lists(st.integers(0, 300), max_size=4))
def test_envelopes_round_trip_through_the_server(
    files: Path, env: Envelope, cuts: list[int]
) -> None:
    # the sender's envelope, as the receiving node's inbox holds it
    env = dataclasses.replace(env, job_id=JOB, sender=CALLER, receiver=RECEIVER, seq=0)
    if len(env.payload) > MAX_JOB_BYTES:
        env = Envelope.build(**{**_fields(env), "payload": env.payload[:MAX_JOB_BYTES]})
    wire = serde.header_to_proto(env).SerializeToString()
    chunks = _stream(pb.EnvelopeHeader.FromString(wire), _split(env.payload, cuts))
    outcome = _send(files, chunks)
    assert isinstance(outcome.result, pb.SendReply) and not outcome.result.duplicate
    assert outcome.inbox.take(CALLER, timeout=0) == env


def test_a_resent_message_is_a_duplicate_and_a_changed_one_is_refused(files: Path) -> None:
    env = Envelope.build(
        **{**_fields(serde.announced_envelope(_header())), "tag": "t", "payload": b"abc"}
    )
    spool = Spool(files / "resend")
    inbox = Inbox(JOB, RECEIVER, [RECEIVER, CALLER], spool=spool)
    servicer = FederationServicer(lambda job_id: inbox, MAX_MESSAGE_BYTES)
    context = t.cast(grpc.ServicerContext, FakeContext(CALLER))
    for duplicate in (False, True):
        chunks = _stream(serde.header_to_proto(env), [env.payload])
        assert servicer.Send(iter(chunks), context).duplicate is duplicate
    changed = Envelope.build(**{**_fields(env), "payload": b"abd"})
    chunks = _stream(serde.header_to_proto(changed), [changed.payload])
    with pytest.raises(Aborted) as aborted:
        servicer.Send(iter(chunks), context)
    assert aborted.value.code == Code.FAILED_PRECONDITION
    assert "differs from the message it already holds" in aborted.value.details


@pytest.mark.parametrize("head", ["0" * 63, "Z" * 64, "0" * 64 + "\n{}", "x" * 10_000])
def test_a_header_with_a_malformed_audit_head_is_refused(files: Path, head: str) -> None:
    """The sender's audit head lands in the receiver's log: only a sha256 hex digest may."""
    inbox = Inbox(JOB, RECEIVER, [RECEIVER, CALLER], spool=Spool(files / "head"))
    servicer = FederationServicer(lambda job_id: inbox, MAX_MESSAGE_BYTES)
    context = t.cast(grpc.ServicerContext, FakeContext(CALLER))
    header = _header(tag="t", payload_size=1, payload_sha256=hashlib.sha256(b"a").digest())
    header.audit_head = head
    with pytest.raises(Aborted) as aborted:
        servicer.Send(iter(_stream(header, [b"a"])), context)
    assert aborted.value.code == Code.INVALID_ARGUMENT
    assert "carries an audit head that is not a sha256 hex digest" in aborted.value.details
    assert inbox.arrived(CALLER) == 0


#: What a stream can get wrong; :func:`streams` gets none, one or two of them wrong.
FLAWS = ["job", "sender", "receiver", "seq", "size", "sha256", "stray header", "no header"]


@st.composite
def streams(draw: st.DrawFn) -> list[pb.Chunk]:
    """Chunk streams near what the server accepts, so that most get past the identity
    checks to the limits and the digest, with a flaw or two now and then."""
    flaws = draw(st.sets(st.sampled_from(FLAWS), max_size=2))

    def field(flaw: str, good: object, bad: st.SearchStrategy[t.Any]) -> t.Any:
        return draw(bad) if flaw in flaws else good

    datas = draw(st.lists(blobs, min_size=1, max_size=4))
    payload = b"".join(datas)
    header = pb.EnvelopeHeader(
        job_id=field("job", JOB, names),
        round=draw(UINT32),
        tag=draw(names),
        sender=field("sender", CALLER, st.one_of(st.sampled_from([RECEIVER, "arbiter"]), names)),
        receiver=field("receiver", RECEIVER, names),
        seq=field("seq", 0, UINT64),
        payload_type=draw(type_names),
        payload_size=field("size", len(payload), st.one_of(st.integers(0, 300), UINT64)),
        payload_sha256=field("sha256", hashlib.sha256(payload).digest(), st.binary(max_size=40)),
    )
    chunks = _stream(header, datas)
    if "stray header" in flaws:  # a second header later in the stream
        chunks.append(pb.Chunk(header=header, data=draw(blobs)))
        chunks[1:] = draw(st.permutations(chunks[1:]))
    if "no header" in flaws:
        chunks[0].ClearField("header")
    return chunks


@FUZZ
@given(streams())
@example([])  # a stream cut before its first chunk
@example([pb.Chunk(data=b"x")])  # no header
@example(_stream(_header(payload_size=2**64 - 1), [b""]))
@example(_stream(_header(payload_sha256=hashlib.sha256(b"").digest()), [b""]))  # all good
@example(_stream(_header(payload_size=3), [b"ab", b"cd", b"ef"]))  # stops at the 2nd chunk
def test_arbitrary_streams_end_with_the_status_of_the_first_failed_check(
    files: Path, chunks: list[pb.Chunk]
) -> None:
    _check_send(files, chunks)


@FUZZ
@given(st.lists(blobs, min_size=1, max_size=3))
@example([b"\x0a\x03\x12\x01\xff"])  # invalid UTF-8 in the header's tag
@example([b"\x0a\x0b\x30" + b"\xff" * 10 + b"\x01"])  # 11-byte varint seq
def test_arbitrary_chunk_bytes_parse_or_end_with_a_status(files: Path, raws: list[bytes]) -> None:
    try:
        chunks = [pb.Chunk.FromString(raw) for raw in raws]
    except DecodeError:
        return  # the server never sees it: grpc answers INTERNAL "Exception deserializing"
    _check_send(files, chunks)


# ---- job status replies ---------------------------------------------------------------

STATES = ["prepared", "running", "succeeded", "failed", "cancelled"]

statuses = st.builds(
    JobStatusInfo,
    job_id=names,
    party=names,
    state=st.sampled_from(STATES),
    phase=names,
    step=UINT32,
    total_steps=UINT32,
    error=names,
    error_kind=names,
    result_json=st.sampled_from([b"{}", b'{"auc": 0.71}', b'{"party": "a", "n": [1, 2]}']),
    detail=names,
)


@FUZZ
@given(statuses)
def test_job_status_round_trips(info: JobStatusInfo) -> None:
    wire = serde.job_status_to_proto(info).SerializeToString()
    assert serde.job_status_from_proto(control_pb.JobStatus.FromString(wire)) == info


@FUZZ
@given(
    st.one_of(
        blobs,
        st.builds(
            control_pb.JobStatus,
            job_id=names,
            party=names,
            state=st.one_of(st.sampled_from(STATES), names),
            step=UINT32,
            result_json=st.one_of(blobs, st.sampled_from([b"{}", b"[]", b"1", b"[" * 5000])),
        ).map(control_pb.JobStatus.SerializeToString),
    )
)
@example(control_pb.JobStatus(state="succeeded", result_json=b"").SerializeToString())
@example(control_pb.JobStatus(state="succeeded", result_json=b"{").SerializeToString())
@example(control_pb.JobStatus(state="succeeded", result_json=b"[" * 5000).SerializeToString())
@example(control_pb.JobStatus(state="done").SerializeToString())
def test_arbitrary_job_status_bytes_decode_or_raise(raw: bytes) -> None:
    try:
        message = control_pb.JobStatus.FromString(raw)
    except DecodeError:
        return
    try:
        info = serde.job_status_from_proto(message)
    except ProtocolError as exc:
        assert "status" in str(exc)
        return
    assert info.state in STATES
    if info.state == "succeeded":
        assert isinstance(json.loads(info.result_json), dict)  # what the coordinator reads


@pytest.mark.parametrize("state", STATES)
def test_every_job_state_is_accepted(state: str) -> None:
    info = JobStatusInfo(job_id="j", party="p", state=state, result_json=b"{}")
    assert serde.job_status_from_proto(serde.job_status_to_proto(info)) == info
