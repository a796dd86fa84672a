"""What a protocol step is: its tag, its payload, who sends it to whom, and its one check.

A :class:`Step` is declared once, in :mod:`lianmo.wire.steps`, and used everywhere the
message appears: the sender encodes through it (``ctx.send(STEP, to, value)``), the
receiver decodes and checks through it (``ctx.recv(STEP, frm, count=..., key=...)``),
the node refuses an envelope whose tag, direction or payload type no step allows before
it is spooled, and audit verify, replay and the report name records by it.

A step's :class:`Codec` does both directions. On receipt it checks everything the
receiver can know without trusting the sender: the payload type, counts, the Paillier
key fingerprint, the fixed-point exponent, index bounds, the names and ranges of small
control values. What only the caller knows at that moment (how many rows, which key)
comes in an :class:`Expect`.
"""

from __future__ import annotations

import re
import typing as t
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lianmo.crypto.paillier import CipherVector, PublicKey
from lianmo.errors import ProtocolError, UnexpectedMessageError
from lianmo.transport import serde
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
from lianmo.wire import convert

Role = t.Literal["guest", "host", "arbiter"]
ROLES: tuple[Role, ...] = ("guest", "host", "arbiter")
ANY: tuple[Role, ...] = ROLES

In = t.TypeVar("In")
Out = t.TypeVar("Out")


@dataclass(frozen=True, slots=True)
class Expect:
    """What a receiver knows about a message before it arrives; each check uses its part.

    ``count``: how many values (ciphertexts, floats, integers, indices; rows of a bit
    matrix); ``key``: the job's Paillier key, for encrypted payloads; ``exponent``: the
    fixed-point exponent of ciphertexts whose step does not fix one; ``below``: a bound
    on every index; ``cols``: columns of a bit matrix; ``key_bits`` and
    ``insecure_test_key``: the smallest Paillier key accepted (never below 2048 bits
    outside unit tests).
    """

    count: int | None = None
    key: PublicKey | None = None
    exponent: int | None = None
    below: int | None = None
    cols: int | None = None
    key_bits: int = 0  # convert.public_key_from_msg never accepts fewer than MIN_KEY_BITS
    insecure_test_key: bool = False


class Codec(t.Generic[In, Out]):
    """Turns a step's value into its payload and a received payload back, checking it."""

    payload: t.ClassVar[type]

    def encode(self, value: In) -> Payload:
        raise NotImplementedError

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> Out:
        raise NotImplementedError

    def describe(self) -> str:
        """The check, in a few words (the message table in docs/protocols.md)."""
        raise NotImplementedError


def _need(value: t.Any, what: str, tag: str) -> t.Any:
    if value is None:
        raise TypeError(f"receiving '{tag}' needs Expect.{what} (a bug in the protocol code)")
    return value


@dataclass(frozen=True)
class Ciphertexts(Codec[CipherVector, CipherVector]):
    """Paillier ciphertexts under the job's key, optionally at one fixed-point exponent."""

    payload = EncryptedVector
    exponent: int | None = None

    def encode(self, value: CipherVector) -> Payload:
        return convert.cipher_to_msg(value)

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> CipherVector:
        key = _need(expect.key, "key", tag)
        cv = convert.cipher_from_msg(msg, key, sender, tag, count=expect.count)
        exponent = self.exponent if self.exponent is not None else expect.exponent
        if exponent is not None and cv.exponent != exponent:
            raise ProtocolError(
                f"'{sender}' sent '{tag}' at fixed-point exponent {cv.exponent}, expected "
                f"{exponent}; the parties run incompatible lianmo versions, or the sender "
                "does not follow the protocol"
            )
        return cv

    def describe(self) -> str:
        exp = "" if self.exponent is None else f", exponent {self.exponent}"
        return f"job key's fingerprint, each in Z*_{{n²}}, count{exp}"


@dataclass(frozen=True)
class BigInts(Codec[IntVector, list[int]]):
    """Non-negative integers of fixed width (e.g. decrypted masked values)."""

    payload = IntVector

    def encode(self, value: IntVector) -> Payload:
        return value

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> list[int]:
        return convert.ints_from_msg(msg, sender, tag, _need(expect.count, "count", tag))

    def describe(self) -> str:
        return "count, whole fixed-width values"


@dataclass(frozen=True)
class Floats(Codec[np.ndarray, np.ndarray]):
    """float64 values, all finite."""

    payload = FloatVector

    def encode(self, value: np.ndarray) -> Payload:
        return convert.floats_to_msg(value)

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> np.ndarray:
        return convert.floats_from_msg(msg, sender, tag, _need(expect.count, "count", tag))

    def describe(self) -> str:
        return "count, all finite"


@dataclass(frozen=True)
class Indices(Codec["np.ndarray | Sequence[int]", np.ndarray]):
    """uint32 indices; ``allow_none`` admits the "no index" entry (returned as -1)."""

    payload = IndexList
    allow_none: bool = False
    unique: bool = False

    def encode(self, value: np.ndarray | Sequence[int]) -> Payload:
        return convert.indices_to_msg(value)

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> np.ndarray:
        values = convert.indices_from_msg(
            msg, sender, tag, count=expect.count, below=expect.below, allow_none=self.allow_none
        )
        if self.unique and len(np.unique(values)) != len(values):
            raise ProtocolError(f"'{sender}' sent '{tag}' with an index repeated")
        return values

    def describe(self) -> str:
        extra = (", may be none" if self.allow_none else "") + (", unique" if self.unique else "")
        return f"length and bound when known{extra}"


@dataclass(frozen=True)
class Bits(Codec[np.ndarray, np.ndarray]):
    """A boolean matrix of ``count`` rows and ``cols`` columns, padding bits zero."""

    payload = BitMatrix

    def encode(self, value: np.ndarray) -> Payload:
        return convert.bits_to_msg(value)

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> np.ndarray:
        rows, cols = _need(expect.count, "count", tag), _need(expect.cols, "cols", tag)
        return convert.bits_from_msg(msg, sender, tag, rows, cols)

    def describe(self) -> str:
        return "rows x columns, padding zero"


@dataclass(frozen=True)
class Points(Codec[bytes, bytes]):
    """PSI points, packed: ``width``-byte encodings, as many as the count says."""

    payload = PointList
    width: int = 32

    def encode(self, value: bytes) -> Payload:
        return PointList(count=len(value) // self.width, width=self.width, data=value)

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> bytes:
        if msg.width != self.width or len(msg.data) != msg.count * self.width:
            raise ProtocolError(
                f"party '{sender}' sent a malformed PSI point list as '{tag}' (expected "
                f"{self.width}-byte points, as many as its count says)"
            )
        if expect.count is not None and msg.count != expect.count:
            raise ProtocolError(
                f"party '{sender}' sent {msg.count} points as '{tag}', expected {expect.count}"
            )
        return bytes(msg.data)

    def describe(self) -> str:
        return f"{self.width}-byte points, whole, count"


@dataclass(frozen=True)
class Count(Codec[int, int]):
    """A count in a :class:`Signal` called ``name``, between ``low`` and ``high``."""

    payload = Signal
    name: str
    low: int = 0
    high: int | None = None

    def encode(self, value: int) -> Payload:
        return Signal(self.name, str(int(value)))

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> int:
        value = convert.count_from_msg(msg, sender, tag)
        if (
            msg.name != self.name
            or value < self.low
            or (self.high is not None and value > self.high)
        ):
            top = "" if self.high is None else f" to {self.high}"
            raise ProtocolError(
                f"'{sender}' sent '{tag}' as {msg.name!r} = {value}, expected {self.name!r} "
                f"from {self.low}{top}"
            )
        return value

    def describe(self) -> str:
        bounds = f"≥ {self.low}" if self.high is None else f"{self.low}..{self.high}"
        return f"'{self.name}', {bounds}"


_SHAPE = re.compile(r"^([1-9][0-9]{0,8}) (0|-[1-9][0-9]?)$")


@dataclass(frozen=True)
class Shape(Codec[tuple[int, int], tuple[int, int]]):
    """A vector's length and fixed-point exponent, as ``'count exponent'`` in a
    :class:`Signal` called ``name``: what a receiver later holds a vector to."""

    payload = Signal
    name: str

    def encode(self, value: tuple[int, int]) -> Payload:
        count, exponent = value
        return Signal(self.name, f"{int(count)} {int(exponent)}")

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> tuple[int, int]:
        match = _SHAPE.match(msg.value) if msg.name == self.name else None
        if match is None:
            raise ProtocolError(
                f"'{sender}' sent a malformed '{tag}': expected {self.name!r} as a count "
                "of at least 1 and a fixed-point exponent from -99 to 0"
            )
        return int(match[1]), int(match[2])

    def describe(self) -> str:
        return f"'{self.name}': count ≥ 1, exponent −99..0"


_LAYOUT = re.compile(r"^([1-9][0-9]{0,3}) ([1-9][0-9]?)$")


@dataclass(frozen=True)
class Layout(Codec[tuple[int, int], tuple[int, int]]):
    """A packed matrix's column count and value bits, as ``'count bits'`` in a
    :class:`Signal` called ``name`` (count 1..9999, bits 1..99)."""

    payload = Signal
    name: str

    def encode(self, value: tuple[int, int]) -> Payload:
        count, bits = value
        return Signal(self.name, f"{int(count)} {int(bits)}")

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> tuple[int, int]:
        match = _LAYOUT.match(msg.value) if msg.name == self.name else None
        if match is None:
            raise ProtocolError(
                f"'{sender}' sent a malformed '{tag}': expected {self.name!r} as a column "
                "count from 1 to 9999 and a bit width from 1 to 99"
            )
        return int(match[1]), int(match[2])

    def describe(self) -> str:
        return f"'{self.name}': count 1..9999, bits 1..99"


@dataclass(frozen=True)
class Choice(Codec[str, str]):
    """One of a few words in a :class:`Signal` called ``name``."""

    payload = Signal
    name: str
    options: tuple[str, ...]

    def encode(self, value: str) -> Payload:
        if value not in self.options:
            raise ValueError(f"'{value}' is not one of {self.options}")
        return Signal(self.name, value)

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> str:
        if msg.name != self.name or msg.value not in self.options:
            raise ProtocolError(
                f"'{sender}' sent a malformed '{tag}': expected {self.name!r} with one of "
                f"{list(self.options)}"
            )
        return str(msg.value)

    def describe(self) -> str:
        return f"'{self.name}': " + " or ".join(self.options)


@dataclass(frozen=True)
class PaillierKey(Codec[PublicKey, PublicKey]):
    """A Paillier public key of at least the job's size (never under 2048 bits in production)."""

    payload = PublicKeyMsg

    def encode(self, value: PublicKey) -> Payload:
        return PublicKeyMsg(n=value.n_bytes())

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> PublicKey:
        return convert.public_key_from_msg(
            msg, sender, key_bits=expect.key_bits, insecure_test_key=expect.insecure_test_key
        )

    def describe(self) -> str:
        return "≥ 2048 bits and the job's key_bits"


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Hex32(Codec[str, str]):
    """32 bytes as 64 lower-case hex digits in a :class:`Signal` named ``name``."""

    payload = Signal
    name: str
    what: str  # what the digits are, for the error message

    def encode(self, value: str) -> Payload:
        return Signal(self.name, value)

    def decode(self, msg: t.Any, sender: str, tag: str, expect: Expect) -> str:
        if msg.name != self.name or not _HEX64.match(msg.value):
            raise ProtocolError(
                f"party '{sender}' sent '{tag}' that is not {self.what} in hex; "
                "it runs an incompatible lianmo version"
            )
        return str(msg.value)

    def describe(self) -> str:
        return f"'{self.name}': 64 hex digits"


@dataclass(frozen=True)
class Step(t.Generic[In, Out]):
    """One message of one protocol: declared once in :mod:`lianmo.wire.steps`."""

    tag: str
    senders: tuple[Role, ...]
    receivers: tuple[Role, ...]
    codec: Codec[In, Out]
    carries: str
    """What the message holds, in the notation of the protocol's docs."""
    rounds: str = "-"
    """What the envelope's round number is for this step (batch, tree, chunk, or none)."""
    payload_type: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload_type", serde.payload_type_of(self.codec.payload))

    @property
    def protocol(self) -> str:
        return self.tag.split(".", 1)[0]

    def encode(self, value: In) -> Payload:
        return self.codec.encode(value)

    def decode(self, msg: Payload, sender: str, expect: Expect = Expect()) -> Out:
        """The received ``msg`` as a value, after the step's one check; ProtocolError if not."""
        if not isinstance(msg, self.codec.payload):
            raise ProtocolError(
                f"'{sender}' sent {type(msg).__name__} as '{self.tag}', expected "
                f"{self.codec.payload.__name__}"
            )
        return self.codec.decode(msg, sender, self.tag, expect)

    def check_direction(self, sender: str, sender_role: str, receiver: str, role: str) -> None:
        """Refuse this step from ``sender`` to ``receiver`` if their roles may not use it."""
        if sender_role not in self.senders or role not in self.receivers:
            raise UnexpectedMessageError(
                f"'{self.tag}' from '{sender}' ({sender_role}) to '{receiver}' ({role}) is "
                f"not a step of any lianmo protocol: it goes {self.direction()}"
            )

    def direction(self) -> str:
        return f"{' or '.join(self.senders)} → {' or '.join(self.receivers)}"


class Registry:
    """Every step by tag; an unknown tag is refused, a tag declared twice is a bug."""

    def __init__(self, steps: t.Iterable[Step[t.Any, t.Any]]) -> None:
        self._steps: dict[str, Step[t.Any, t.Any]] = {}
        for step in steps:
            if step.tag in self._steps:
                raise ValueError(f"step '{step.tag}' is declared twice")
            self._steps[step.tag] = step

    def __iter__(self) -> t.Iterator[Step[t.Any, t.Any]]:
        return iter(self._steps.values())

    def __len__(self) -> int:
        return len(self._steps)

    def __contains__(self, tag: object) -> bool:
        return tag in self._steps

    def get(self, tag: str) -> Step[t.Any, t.Any] | None:
        return self._steps.get(tag)

    def screen(self, env: Envelope, sender_role: str, receiver_role: str) -> None:
        """Refuse an arriving envelope no step allows: tag, direction and payload type.

        Runs on the receive path before the payload is kept, so a misdirected or unknown
        message never reaches a protocol or the spool.
        """
        step = self._steps.get(env.tag)
        if step is None:
            raise UnexpectedMessageError(
                f"{env.describe()} has a tag no lianmo protocol step uses; the sender runs "
                "an incompatible lianmo version"
            )
        step.check_direction(env.sender, sender_role, env.receiver, receiver_role)
        if env.payload_type != step.payload_type:
            raise UnexpectedMessageError(
                f"{env.describe()} carries {env.payload_type}, but '{step.tag}' carries "
                f"{step.payload_type}; the sender runs an incompatible lianmo version"
            )
