"""Fixed-width big-endian packing of non-negative big integers (ciphertexts, masked plaintexts)."""

from __future__ import annotations

import typing as t

import gmpy2

from lianmo.errors import CryptoError


def _check_width(width: int) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise CryptoError(f"byte width must be a positive int, got {width!r}")


def _check_length(data: bytes, count: int, width: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise CryptoError(f"value count must be a non-negative int, got {count!r}")
    if len(data) != count * width:
        raise CryptoError(
            f"packed integers: expected {count} x {width} = {count * width} bytes, "
            f"got {len(data)}; the payload is truncated or was packed with another width"
        )


def int_to_fixed_bytes(values: t.Sequence[int], width: int) -> bytes:
    """Pack non-negative integers as concatenated ``width``-byte big-endian fields.

    Parameters
    ----------
    values : sequence of int
        Integers (Python ``int`` or ``gmpy2.mpz``) in ``[0, 256**width)``.
    width : int
        Bytes per value.

    Returns
    -------
    bytes
        ``len(values) * width`` bytes.

    Raises
    ------
    CryptoError
        Naming the first value that is negative or does not fit in ``width`` bytes.
    """
    _check_width(width)
    mpz = gmpy2.mpz
    # mpz() also takes bools and numeric strings ("12"): only integers may reach it.
    if all(hasattr(v, "__index__") and not isinstance(v, bool) for v in values):
        try:
            return b"".join(mpz(v).to_bytes(width, "big") for v in values)
        except (OverflowError, TypeError, ValueError):
            pass
    for index, value in enumerate(values):
        if not hasattr(value, "__index__") or isinstance(value, bool | float):
            raise CryptoError(
                f"packed integers: element {index} is {type(value).__name__}, expected int"
            ) from None
        if value < 0 or int(value).bit_length() > 8 * width:
            raise CryptoError(
                f"packed integers: element {index} is negative or has "
                f"{int(value).bit_length()} bits, more than a {width}-byte field holds; "
                "reduce it modulo the key's n first"
            ) from None
    raise CryptoError("packed integers: could not pack values")  # pragma: no cover


def fixed_bytes_to_ints(data: bytes, count: int, width: int) -> list[int]:
    """Unpack ``count`` big-endian fields of ``width`` bytes into Python ints.

    Parameters
    ----------
    data : bytes
        Exactly ``count * width`` bytes.
    count : int
        Number of values.
    width : int
        Bytes per value.

    Returns
    -------
    list of int
        The non-negative integers.
    """
    _check_width(width)
    _check_length(data, count, width)
    view = memoryview(data)
    return [int.from_bytes(view[i : i + width], "big") for i in range(0, len(data), width)]


def fixed_bytes_to_mpz(data: bytes, count: int, width: int) -> list[t.Any]:
    """Unpack ``count`` big-endian fields of ``width`` bytes into ``gmpy2.mpz`` values.

    Parameters
    ----------
    data : bytes
        Exactly ``count * width`` bytes.
    count : int
        Number of values.
    width : int
        Bytes per value.

    Returns
    -------
    list of gmpy2.mpz
        The non-negative integers.
    """
    _check_width(width)
    _check_length(data, count, width)
    from_bytes = gmpy2.mpz.from_bytes
    raw = bytes(data)
    return [from_bytes(raw[i : i + width], "big") for i in range(0, len(raw), width)]
