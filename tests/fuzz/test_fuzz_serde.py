"""Fuzz the envelope, chunk, payload and job status decoders of ``transport.serde``.

Arbitrary bytes and field values must fail with :class:`ProtocolError` (or, one layer
down, protobuf's own ``DecodeError``), never a raw Python exception; valid messages of
every payload type round-trip. The gRPC server's chunk reassembly is not fuzzed here.
"""

from __future__ import annotations

import hashlib
import json
import typing as t

import pytest
from google.protobuf.message import DecodeError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lianmo.errors import ProtocolError
from lianmo.transport import serde
from lianmo.transport._pb import control_pb2 as control_pb
from lianmo.transport._pb import federation_pb2 as pb
from lianmo.transport.control import JobStatusInfo
from lianmo.transport.envelope import Envelope
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


# ---- envelope headers and chunks ------------------------------------------------------

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
    )


headers = st.builds(
    pb.EnvelopeHeader,
    job_id=names,
    round=UINT32,
    tag=names,
    sender=names,
    receiver=names,
    seq=UINT64,
    payload_type=type_names,
    payload_size=st.one_of(st.integers(0, 300), UINT64),
    payload_sha256=st.one_of(st.binary(max_size=40), st.just(hashlib.sha256(b"").digest())),
)


@FUZZ
@given(envelopes())
def test_envelopes_round_trip_through_the_wire_header(env: Envelope) -> None:
    wire = serde.header_to_proto(env).SerializeToString()
    assert serde.header_from_proto(pb.EnvelopeHeader.FromString(wire), env.payload) == env


def _check_header(header: pb.EnvelopeHeader, payload: bytes) -> None:
    """``header_from_proto`` accepts exactly the payloads the header describes."""
    try:
        env = serde.header_from_proto(header, payload)
    except ProtocolError as exc:
        assert header.tag in str(exc) and header.sender in str(exc)
        assert (
            len(payload) != header.payload_size
            or hashlib.sha256(payload).digest() != header.payload_sha256
        )
        return
    assert serde.header_to_proto(env) == header


@FUZZ
@given(headers, blobs)
@example(pb.EnvelopeHeader(payload_size=2**64 - 1), b"")
@example(pb.EnvelopeHeader(payload_sha256=hashlib.sha256(b"").digest()), b"")
def test_arbitrary_header_fields_are_checked(header: pb.EnvelopeHeader, payload: bytes) -> None:
    _check_header(header, payload)


@FUZZ
@given(blobs, blobs)
@example(b"\x12\x01\xff", b"")  # invalid UTF-8 in tag
@example(b"\x30" + b"\xff" * 10 + b"\x01", b"")  # 11-byte varint
def test_arbitrary_header_bytes_parse_or_raise(raw: bytes, payload: bytes) -> None:
    try:
        header = pb.EnvelopeHeader.FromString(raw)
    except DecodeError:
        return  # the server never sees it: grpc answers INTERNAL "Exception deserializing"
    _check_header(header, payload)


@FUZZ
@given(
    st.one_of(
        blobs, st.builds(pb.Chunk, header=headers, data=blobs).map(pb.Chunk.SerializeToString)
    )
)
def test_arbitrary_chunk_bytes_parse_or_raise(raw: bytes) -> None:
    try:
        chunk = pb.Chunk.FromString(raw)
    except DecodeError:
        return
    _check_header(chunk.header, chunk.data)


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
