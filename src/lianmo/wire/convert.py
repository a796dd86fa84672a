"""Conversions between crypto objects and wire payloads, with the checks every receiver needs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lianmo.crypto.paillier import (
    MIN_KEY_BITS,
    CipherVector,
    PublicKey,
    fixed_bytes_to_ints,
    int_to_fixed_bytes,
)
from lianmo.errors import CryptoError, ProtocolError
from lianmo.transport.messages import (
    BitMatrix,
    EncryptedVector,
    FloatVector,
    IndexList,
    IntVector,
    Payload,
    PublicKeyMsg,
    Signal,
)


def public_key_from_msg(
    msg: Payload, sender: str, *, key_bits: int, insecure_test_key: bool = False
) -> PublicKey:
    """Check a received public key (at least ``key_bits``, never below 2048 in production)."""
    if not isinstance(msg, PublicKeyMsg):
        raise ProtocolError(f"'{sender}' sent {type(msg).__name__}, expected a public key")
    min_bits = 0 if insecure_test_key else max(MIN_KEY_BITS, key_bits)
    try:
        return PublicKey.from_n(int.from_bytes(msg.n, "big"), min_bits=min_bits)
    except CryptoError as exc:
        raise CryptoError(f"'{sender}' sent a Paillier public key this job refuses: {exc}") from exc


def cipher_to_msg(cv: CipherVector) -> EncryptedVector:
    """A ciphertext vector as one fixed-width bytes field plus key id and exponent."""
    width, data = cv.to_bytes()
    return EncryptedVector(
        key_id=cv.key.fingerprint, exponent=cv.exponent, count=len(cv), width=width, data=data
    )


MAX_EXPONENT = 64  # fixed-point exponents in use are between -16 and 0


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
            f"'{sender}' sent '{tag}' encrypted under another public key (key id "
            f"{msg.key_id.hex()[:16]}) than this job's ({key.fingerprint.hex()[:16]}); the "
            "parties disagree on the job's Paillier key: check they run the same job spec"
        )
    if count is not None and msg.count != count:
        raise ProtocolError(f"'{sender}' sent {msg.count} ciphertexts as '{tag}', expected {count}")
    if abs(msg.exponent) > MAX_EXPONENT:
        # a hostile exponent would make rescaling compute 16**(2**31): refuse it up front
        raise ProtocolError(
            f"'{sender}' sent '{tag}' at fixed-point exponent {msg.exponent}, outside "
            f"±{MAX_EXPONENT}; the sender's software is incompatible or hostile"
        )
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


_MAX_COUNT_DIGITS = 18


def count_from_msg(msg: Payload, sender: str, tag: str) -> int:
    """A non-negative count carried in a :class:`Signal` (plain ASCII digits only).

    At most 18 digits, so that the count fits an int64 and ``int()`` never meets a string
    over Python's 4300-digit conversion limit (a ``ValueError``, not a ProtocolError).
    """
    if (
        not isinstance(msg, Signal)
        or not (msg.value.isascii() and msg.value.isdigit())
        or len(msg.value) > _MAX_COUNT_DIGITS
    ):
        raise ProtocolError(
            f"'{sender}' sent a malformed '{tag}': expected a count of 1 to "
            f"{_MAX_COUNT_DIGITS} ASCII digits"
        )
    return int(msg.value)


#: "no index" in an :class:`IndexList`
NO_INDEX = 0xFFFFFFFF


def indices_to_msg(values: np.ndarray | Sequence[int]) -> IndexList:
    """Non-negative integers below 2**32 as a packed uint32 list."""
    return IndexList(data=np.asarray(values, dtype="<u4").tobytes())


def indices_from_msg(
    msg: Payload,
    sender: str,
    tag: str,
    *,
    count: int | None = None,
    below: int | None = None,
    allow_none: bool = False,
) -> np.ndarray:
    """Parse an :class:`IndexList` as int64; optionally check its length and range.

    ``below`` bounds every entry; with ``allow_none`` the entry :data:`NO_INDEX` is
    accepted too and returned as ``-1``.
    """
    if not isinstance(msg, IndexList) or len(msg.data) % 4:
        raise ProtocolError(f"'{sender}' sent a malformed '{tag}': expected a list of indices")
    values = np.frombuffer(msg.data, dtype="<u4").astype(np.int64)
    if count is not None and len(values) != count:
        raise ProtocolError(f"'{sender}' sent {len(values)} indices as '{tag}', expected {count}")
    if allow_none:
        values[values == NO_INDEX] = -1
    if below is not None and len(values) and (values.max() >= below or values.min() < -1):
        raise ProtocolError(f"'{sender}' sent an index out of range [0, {below}) as '{tag}'")
    return values


def bits_to_msg(matrix: np.ndarray) -> BitMatrix:
    """A boolean matrix as a :class:`BitMatrix` (rows padded to whole bytes)."""
    matrix = np.asarray(matrix, dtype=bool)
    rows, cols = matrix.shape
    packed = np.packbits(matrix, axis=1, bitorder="little") if cols else np.zeros((rows, 0))
    return BitMatrix(rows=rows, cols=cols, data=np.asarray(packed, dtype=np.uint8).tobytes())


def bits_from_msg(msg: Payload, sender: str, tag: str, rows: int, cols: int) -> np.ndarray:
    """Parse a :class:`BitMatrix` of exactly ``rows`` x ``cols`` bits; padding must be 0."""
    if not isinstance(msg, BitMatrix) or (msg.rows, msg.cols) != (rows, cols):
        raise ProtocolError(
            f"'{sender}' sent a malformed '{tag}': expected a {rows} x {cols} bit matrix"
        )
    width = (cols + 7) // 8
    if len(msg.data) != rows * width:
        raise ProtocolError(f"'{sender}' sent a truncated '{tag}'")
    packed = np.frombuffer(msg.data, dtype=np.uint8).reshape(rows, width)
    full = np.unpackbits(packed, axis=1, bitorder="little")
    if full[:, cols:].any():
        raise ProtocolError(f"'{sender}' sent '{tag}' with bits set beyond column {cols}")
    return np.asarray(full[:, :cols], dtype=bool)
