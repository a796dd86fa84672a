"""Conversions between crypto objects and wire payloads, with the checks every receiver needs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lianmo.crypto.paillier import (
    CipherVector,
    PublicKey,
    fixed_bytes_to_ints,
    int_to_fixed_bytes,
)
from lianmo.errors import CryptoError, ProtocolError
from lianmo.transport.messages import EncryptedVector, FloatVector, IntVector, Payload, Signal


def cipher_to_msg(cv: CipherVector) -> EncryptedVector:
    """A ciphertext vector as one fixed-width bytes field plus key id and exponent."""
    width, data = cv.to_bytes()
    return EncryptedVector(
        key_id=cv.key.fingerprint, exponent=cv.exponent, count=len(cv), width=width, data=data
    )


def cipher_from_msg(
    msg: Payload, key: PublicKey, sender: str, tag: str, count: int | None = None
) -> CipherVector:
    """Parse and validate an encrypted vector sent by ``sender`` as step ``tag``."""
    if not isinstance(msg, EncryptedVector):
        raise ProtocolError(
            f"'{sender}' sent {type(msg).__name__} as '{tag}', expected EncryptedVector"
        )
    if msg.key_id != key.fingerprint:
        raise CryptoError(
            f"'{sender}' sent '{tag}' encrypted under another public key than this job's; "
            "the parties disagree on the arbiter's key"
        )
    if count is not None and msg.count != count:
        raise ProtocolError(f"'{sender}' sent {msg.count} ciphertexts as '{tag}', expected {count}")
    try:
        return CipherVector.from_bytes(key, msg.exponent, msg.count, msg.width, msg.data)
    except CryptoError as exc:
        raise CryptoError(f"'{sender}' sent invalid ciphertexts as '{tag}': {exc}") from exc


def ints_to_msg(values: Sequence[int], width: int) -> IntVector:
    """Non-negative integers below 2**(8*width) as fixed-width big-endian bytes."""
    return IntVector(count=len(values), width=width, data=int_to_fixed_bytes(values, width))


def ints_from_msg(msg: Payload, sender: str, tag: str, count: int) -> list[int]:
    """Parse an :class:`IntVector` of exactly ``count`` values."""
    if not isinstance(msg, IntVector) or msg.count != count:
        raise ProtocolError(f"'{sender}' sent a malformed '{tag}': expected {count} integers")
    try:
        return fixed_bytes_to_ints(msg.data, msg.count, msg.width)
    except CryptoError as exc:
        raise ProtocolError(f"'{sender}' sent a malformed '{tag}': {exc}") from exc


def floats_to_msg(values: np.ndarray) -> FloatVector:
    """float64 values as little-endian bytes."""
    return FloatVector(data=np.ascontiguousarray(values, dtype="<f8").tobytes())


def floats_from_msg(msg: Payload, sender: str, tag: str, count: int) -> np.ndarray:
    """Parse a :class:`FloatVector` of exactly ``count`` finite values."""
    if not isinstance(msg, FloatVector) or len(msg.data) != 8 * count:
        raise ProtocolError(f"'{sender}' sent a malformed '{tag}': expected {count} floats")
    values = np.frombuffer(msg.data, dtype="<f8").astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ProtocolError(f"'{sender}' sent non-finite values as '{tag}'")
    return values


def count_from_msg(msg: Payload, sender: str, tag: str) -> int:
    """A non-negative count carried in a :class:`Signal` (plain ASCII digits only)."""
    if not isinstance(msg, Signal) or not (msg.value.isascii() and msg.value.isdigit()):
        raise ProtocolError(f"'{sender}' sent a malformed '{tag}': expected a count")
    return int(msg.value)
