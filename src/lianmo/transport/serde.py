"""The only translation between payload dataclasses and protobuf bytes.

Symmetric pairs: :func:`encode_payload` / :func:`decode_payload` for payloads,
``header_to_proto`` / ``announced_envelope`` for envelope headers (the payload arrives
apart, in chunks, and the inbox checks it against the announced size and sha256) and
``job_status_to_proto`` / ``job_status_from_proto`` for control replies. Decoding validates
sizes so that a malformed payload fails here with a clear error, not deep in a protocol.
"""

from __future__ import annotations

import json
import re
import typing as t
from collections.abc import Callable

from google.protobuf.message import DecodeError

from lianmo.errors import ProtocolError
from lianmo.transport._pb import control_pb2 as control_pb
from lianmo.transport._pb import federation_pb2 as pb
from lianmo.transport.control import JobState, JobStatusInfo
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


def _public_key_to_proto(p: PublicKeyMsg) -> pb.PublicKey:
    return pb.PublicKey(n=p.n)


def _public_key_from_proto(m: pb.PublicKey) -> PublicKeyMsg:
    return PublicKeyMsg(n=m.n)


def _encrypted_to_proto(p: EncryptedVector) -> pb.EncryptedVector:
    return pb.EncryptedVector(
        key_id=p.key_id, exponent=p.exponent, count=p.count, width=p.width, data=p.data
    )


def _encrypted_from_proto(m: pb.EncryptedVector) -> EncryptedVector:
    _check_fixed_width("EncryptedVector", m.count, m.width, len(m.data))
    return EncryptedVector(
        key_id=m.key_id, exponent=m.exponent, count=m.count, width=m.width, data=m.data
    )


def _ints_to_proto(p: IntVector) -> pb.IntVector:
    return pb.IntVector(count=p.count, width=p.width, data=p.data)


def _ints_from_proto(m: pb.IntVector) -> IntVector:
    _check_fixed_width("IntVector", m.count, m.width, len(m.data))
    return IntVector(count=m.count, width=m.width, data=m.data)


def _floats_to_proto(p: FloatVector) -> pb.FloatVector:
    return pb.FloatVector(data=p.data)


def _floats_from_proto(m: pb.FloatVector) -> FloatVector:
    _check_fixed_width("FloatVector", len(m.data) // 8, 8, len(m.data))
    return FloatVector(data=m.data)


def _points_to_proto(p: PointList) -> pb.PointList:
    return pb.PointList(count=p.count, width=p.width, data=p.data)


def _points_from_proto(m: pb.PointList) -> PointList:
    _check_fixed_width("PointList", m.count, m.width, len(m.data))
    return PointList(count=m.count, width=m.width, data=m.data)


def _indices_to_proto(p: IndexList) -> pb.IndexList:
    return pb.IndexList(data=p.data)


def _indices_from_proto(m: pb.IndexList) -> IndexList:
    _check_fixed_width("IndexList", len(m.data) // 4, 4, len(m.data))
    return IndexList(data=m.data)


def _bits_to_proto(p: BitMatrix) -> pb.BitMatrix:
    return pb.BitMatrix(rows=p.rows, cols=p.cols, data=p.data)


def _bits_from_proto(m: pb.BitMatrix) -> BitMatrix:
    if m.rows * ((m.cols + 7) // 8) != len(m.data):
        raise ProtocolError(
            f"malformed BitMatrix: {m.rows} rows of {m.cols} bits need "
            f"{m.rows * ((m.cols + 7) // 8)} bytes, got {len(m.data)}; the sender's software "
            "is incompatible or the payload was corrupted"
        )
    return BitMatrix(rows=m.rows, cols=m.cols, data=m.data)


def _signal_to_proto(p: Signal) -> pb.Signal:
    return pb.Signal(name=p.name, value=p.value)


def _signal_from_proto(m: pb.Signal) -> Signal:
    return Signal(name=m.name, value=m.value)


def _check_fixed_width(kind: str, count: int, width: int, size: int) -> None:
    if width <= 0 or count * width != size:
        raise ProtocolError(
            f"malformed {kind}: {count} values of {width} bytes need {count * width} bytes, "
            f"got {size}; the sender's software is incompatible or the payload was corrupted"
        )


_ENCODERS: dict[type, tuple[str, Callable[[object], object]]] = {
    PublicKeyMsg: ("lianmo.v1.PublicKey", _public_key_to_proto),  # type: ignore[dict-item]
    EncryptedVector: ("lianmo.v1.EncryptedVector", _encrypted_to_proto),  # type: ignore[dict-item]
    IntVector: ("lianmo.v1.IntVector", _ints_to_proto),  # type: ignore[dict-item]
    FloatVector: ("lianmo.v1.FloatVector", _floats_to_proto),  # type: ignore[dict-item]
    PointList: ("lianmo.v1.PointList", _points_to_proto),  # type: ignore[dict-item]
    IndexList: ("lianmo.v1.IndexList", _indices_to_proto),  # type: ignore[dict-item]
    BitMatrix: ("lianmo.v1.BitMatrix", _bits_to_proto),  # type: ignore[dict-item]
    Signal: ("lianmo.v1.Signal", _signal_to_proto),  # type: ignore[dict-item]
}

_DECODERS: dict[str, tuple[type, Callable[[object], Payload]]] = {
    "lianmo.v1.PublicKey": (pb.PublicKey, _public_key_from_proto),  # type: ignore[dict-item]
    "lianmo.v1.EncryptedVector": (pb.EncryptedVector, _encrypted_from_proto),  # type: ignore[dict-item]
    "lianmo.v1.IntVector": (pb.IntVector, _ints_from_proto),  # type: ignore[dict-item]
    "lianmo.v1.FloatVector": (pb.FloatVector, _floats_from_proto),  # type: ignore[dict-item]
    "lianmo.v1.PointList": (pb.PointList, _points_from_proto),  # type: ignore[dict-item]
    "lianmo.v1.IndexList": (pb.IndexList, _indices_from_proto),  # type: ignore[dict-item]
    "lianmo.v1.BitMatrix": (pb.BitMatrix, _bits_from_proto),  # type: ignore[dict-item]
    "lianmo.v1.Signal": (pb.Signal, _signal_from_proto),  # type: ignore[dict-item]
}


def payload_type_of(cls: type) -> str:
    """The ``payload_type`` an envelope carrying a payload of class ``cls`` names."""
    try:
        return _ENCODERS[cls][0]
    except KeyError:
        raise TypeError(f"not a wire payload: {cls.__name__}") from None


def encode_payload(payload: Payload) -> tuple[str, bytes]:
    """Return ``(payload_type, bytes)`` for a payload dataclass."""
    try:
        name, to_proto = _ENCODERS[type(payload)]
    except KeyError:
        raise TypeError(f"not a wire payload: {type(payload).__name__}") from None
    return name, to_proto(payload).SerializeToString()  # type: ignore[attr-defined]


def decode_payload(payload_type: str, data: bytes) -> Payload:
    """Parse payload bytes of the named type; raise :class:`ProtocolError` if malformed."""
    try:
        cls, from_proto = _DECODERS[payload_type]
    except KeyError:
        raise ProtocolError(f"unknown payload type '{payload_type}'") from None
    message = cls()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise ProtocolError(f"payload of type '{payload_type}' does not parse: {exc}") from exc
    return from_proto(message)


def header_to_proto(env: Envelope) -> pb.EnvelopeHeader:
    """Envelope metadata (everything but the payload bytes) as a protobuf header."""
    return pb.EnvelopeHeader(
        job_id=env.job_id,
        round=env.round,
        tag=env.tag,
        sender=env.sender,
        receiver=env.receiver,
        seq=env.seq,
        payload_type=env.payload_type,
        payload_size=len(env.payload),
        payload_sha256=env.sha256,
        audit_head=env.audit_head,
    )


def announced_envelope(header: pb.EnvelopeHeader) -> Envelope:
    """The envelope a header announces, with the sha256 it claims and no payload yet."""
    if header.audit_head and not _AUDIT_HEAD_RE.fullmatch(header.audit_head):
        raise ProtocolError(
            f"message '{header.tag}' round {header.round} from '{header.sender}' carries "
            f"an audit head that is not a sha256 hex digest ({header.audit_head[:80]!r}); "
            "the sender runs a broken or altered lianmo"
        )
    return Envelope(
        job_id=header.job_id,
        round=header.round,
        tag=header.tag,
        sender=header.sender,
        receiver=header.receiver,
        seq=header.seq,
        payload_type=header.payload_type,
        payload=b"",
        sha256=bytes(header.payload_sha256),
        audit_head=header.audit_head,
    )


def job_status_to_proto(info: JobStatusInfo) -> control_pb.JobStatus:
    """A party's job status as the control service's reply message."""
    return control_pb.JobStatus(
        job_id=info.job_id,
        party=info.party,
        state=info.state,
        phase=info.phase,
        step=info.step,
        total_steps=info.total_steps,
        error=info.error,
        error_kind=info.error_kind,
        result_json=info.result_json,
        detail=info.detail,
        checkpoint_round=info.checkpoint_round,
    )


_JOB_STATES = t.get_args(JobState)
_AUDIT_HEAD_RE = re.compile(r"[0-9a-f]{64}")


def job_status_from_proto(m: control_pb.JobStatus) -> JobStatusInfo:
    """The job status a party reported, as the domain record.

    Raises :class:`ProtocolError` for a state outside :data:`JobState`, and for a
    succeeded job whose ``result_json`` is not a JSON object (the coordinator reads it).
    """
    where = f"party '{m.party}' sent a status of job '{m.job_id}'"
    if m.state not in _JOB_STATES:
        raise ProtocolError(
            f"{where} with unknown state {m.state!r}, expected one of {list(_JOB_STATES)}; "
            "the party runs an incompatible lianmo version"
        )
    if m.state == "succeeded":
        try:
            result = json.loads(m.result_json)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(
                f"{where} that succeeded but whose result_json is not valid JSON ({exc}); "
                "the party's result.json is corrupted"
            ) from None
        if not isinstance(result, dict):
            raise ProtocolError(
                f"{where} that succeeded but whose result_json is a JSON "
                f"{type(result).__name__}, expected an object; the party's result.json "
                "is corrupted"
            )
    return JobStatusInfo(
        job_id=m.job_id,
        party=m.party,
        state=m.state,
        phase=m.phase,
        step=m.step,
        total_steps=m.total_steps,
        error=m.error,
        error_kind=m.error_kind,
        result_json=m.result_json,
        detail=m.detail,
        checkpoint_round=m.checkpoint_round,
    )
