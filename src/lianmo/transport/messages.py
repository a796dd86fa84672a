"""Typed payloads that cross the wire between parties.

Every payload is a frozen dataclass of plain bytes and numbers. Protocol code builds and
reads these; ``transport.serde`` turns them into protobuf bytes and back. Nothing here
knows about Paillier objects or numpy: ciphertext vectors travel as one bytes field of
fixed-width big-endian integers (see ``crypto.paillier.CipherVector.to_bytes``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PublicKeyMsg:
    """A Paillier public key: the modulus ``n`` as big-endian bytes (g is n + 1)."""

    n: bytes


@dataclass(frozen=True, slots=True)
class EncryptedVector:
    """Ciphertexts as ``count`` fixed-width big-endian integers of ``width`` bytes each.

    ``key_id`` is the sha256 fingerprint of the public key, ``exponent`` the shared
    fixed-point exponent (value = mantissa * 16**exponent, as in ``phe``).
    """

    key_id: bytes
    exponent: int
    count: int
    width: int
    data: bytes


@dataclass(frozen=True, slots=True)
class IntVector:
    """Non-negative big integers (e.g. masked plaintexts) as fixed-width big-endian bytes."""

    count: int
    width: int
    data: bytes


@dataclass(frozen=True, slots=True)
class FloatVector:
    """float64 values, little-endian, packed."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PointList:
    """PSI group elements: ``count`` encodings of ``width`` bytes each."""

    count: int
    width: int
    data: bytes


@dataclass(frozen=True, slots=True)
class IndexList:
    """uint32 indices, little-endian, packed."""

    data: bytes


@dataclass(frozen=True, slots=True)
class BitMatrix:
    """A ``rows`` x ``cols`` matrix of bits (e.g. which rows go left at each split).

    Row-major; each row is padded to whole bytes, least significant bit first
    (``numpy.packbits(..., bitorder="little")`` per row).
    """

    rows: int
    cols: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Signal:
    """A small control decision inside a protocol (continue or stop, with a reason)."""

    name: str
    value: str = ""


Payload = (
    PublicKeyMsg
    | EncryptedVector
    | IntVector
    | FloatVector
    | PointList
    | IndexList
    | BitMatrix
    | Signal
)
