"""Fixed-point codec for Paillier plaintexts, compatible with phe's ``EncodedNumber``.

A real value ``v`` is carried as an integer mantissa ``m`` with ``v = m * BASE**exponent``
(``BASE = 16``, ``exponent`` usually negative, e.g. ``-6``). Negative mantissas are
stored as ``n + m`` in ``[0, n)``, and only ``|m| <= max_int(n) = n // 3 - 1`` is allowed
(the same bound as phe), so that a decrypted value in the middle third of ``[0, n)`` is
recognised as an overflow instead of silently wrapping.
"""

from __future__ import annotations

import math
import operator
import typing as t

import numpy as np
import numpy.typing as npt

from lianmo.errors import CryptoError

BASE = 16
_LOG2_BASE = 4
_FLOAT_EXACT = 2**53
_QUANT_LIMIT = 2**62


def max_int(n: int) -> int:
    """Return the largest mantissa magnitude a modulus ``n`` can carry (``n // 3 - 1``).

    Parameters
    ----------
    n : int
        The Paillier modulus.

    Returns
    -------
    int
        ``n // 3 - 1``, as phe's ``PaillierPublicKey.max_int``.
    """
    return int(n) // 3 - 1


def _check_exponent(exponent: int) -> None:
    if isinstance(exponent, bool) or not isinstance(exponent, int | np.integer):
        raise CryptoError(
            f"fixed-point exponent must be an int such as -6, got {type(exponent).__name__}"
        )


def _scaled(values: npt.ArrayLike, exponent: int, what: str) -> npt.NDArray[np.float64]:
    """Return ``rint(values * BASE**-exponent)`` as float64, checking finiteness."""
    _check_exponent(exponent)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CryptoError(f"{what} needs numeric values, could not convert: {exc}") from exc
    # ldexp scales by an exact power of two, so no rounding happens before rint.
    scaled = np.rint(np.ldexp(arr, -_LOG2_BASE * int(exponent)))
    bad = ~np.isfinite(scaled)
    if bad.any():
        index = _first_index(bad)
        raise CryptoError(
            f"{what}: value at index {index} is {arr[index]!r} (or overflows when scaled by "
            f"16**{-int(exponent)}); expected finite numbers, clean the data first"
        )
    return scaled


def _first_index(mask: npt.NDArray[np.bool_]) -> int | tuple[int, ...]:
    where = np.argwhere(mask)[0]
    return int(where[0]) if where.size == 1 else tuple(int(i) for i in where)


def encode(values: npt.ArrayLike, exponent: int, n: int) -> list[int]:
    """Encode real values as fixed-point plaintexts in ``[0, n)``.

    Parameters
    ----------
    values : numpy.ndarray
        One-dimensional array of finite floats.
    exponent : int
        Fixed-point exponent; mantissa is ``round(v * 16**-exponent)``.
    n : int
        Paillier modulus.

    Returns
    -------
    list of int
        Plaintexts, negative mantissas stored as ``n + m``.

    Raises
    ------
    CryptoError
        If a value is not finite, its mantissa reaches ``2**53`` (float precision lost:
        use a larger exponent), or exceeds ``max_int(n)``.
    """
    if np.ndim(values) != 1:
        raise CryptoError(
            f"encode expects a 1-D array, got shape {np.shape(values)}; pass values.ravel()"
        )
    scaled = _scaled(values, exponent, "encode")
    too_big = np.abs(scaled) >= _FLOAT_EXACT
    if too_big.any():
        index = _first_index(too_big)
        raise CryptoError(
            f"encode: value at index {index} scales to {scaled[index]:.6g}, beyond 2**53 "
            f"where float64 is no longer exact; use an exponent above {exponent} or "
            "quantise the data first"
        )
    return encode_ints(scaled.astype(np.int64).tolist(), n)


def encode_ints(values: t.Sequence[int] | npt.NDArray[np.integer[t.Any]], n: int) -> list[int]:
    """Encode signed integer mantissas as plaintexts in ``[0, n)``.

    Parameters
    ----------
    values : sequence of int or integer numpy.ndarray
        Signed mantissas; arbitrary-size Python ints are allowed.
    n : int
        Paillier modulus.

    Returns
    -------
    list of int
        ``m`` for ``m >= 0`` and ``n + m`` for ``m < 0``.

    Raises
    ------
    CryptoError
        If a value is not an integer or ``|m| > max_int(n)``.
    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iu":
            raise CryptoError(
                f"encode_ints expects an integer array, got dtype {values.dtype}; "
                "use encode() for floats or quantise() first"
            )
        values = values.ravel().tolist()
    limit = max_int(n)
    out: list[int] = []
    for index, m in enumerate(values):
        if isinstance(m, bool | float) or not hasattr(m, "__index__"):
            raise CryptoError(f"encode_ints: element {index} is {type(m).__name__}, expected int")
        m = operator.index(m)
        if m > limit or -m > limit:
            raise CryptoError(
                f"encode_ints: mantissa at index {index} has {int(m).bit_length()} bits, "
                f"above max_int = n // 3 - 1 ({limit.bit_length()} bits); use a larger "
                "key or smaller values"
            )
        out.append(m if m >= 0 else n + m)
    return out


def decode_ints(mantissas: t.Sequence[int], n: int) -> list[int]:
    """Decode plaintexts in ``[0, n)`` back to signed integer mantissas.

    Parameters
    ----------
    mantissas : sequence of int
        Plaintexts, e.g. from :meth:`PrivateKey.decrypt_raw`.
    n : int
        Paillier modulus.

    Returns
    -------
    list of int
        ``m`` if ``m <= max_int(n)``, ``m - n`` if ``m >= n - max_int(n)``.

    Raises
    ------
    CryptoError
        If a plaintext lies in the overflow band between, or outside ``[0, n)``.
    """
    limit = max_int(n)
    low = n - limit
    out: list[int] = []
    for index, m in enumerate(mantissas):
        if 0 <= m <= limit:
            out.append(int(m))
        elif low <= m < n:
            out.append(int(m - n))
        else:
            raise CryptoError(
                f"decode: plaintext at index {index} is in the overflow band (not within "
                f"+/- n // 3 of zero) or outside [0, n); the encrypted computation "
                "overflowed: reduce values, the fixed-point exponent or the number of terms"
            )
    return out


def decode(mantissas: t.Sequence[int], exponent: int, n: int) -> npt.NDArray[np.float64]:
    """Decode plaintexts in ``[0, n)`` to float64 values ``m * 16**exponent``.

    Parameters
    ----------
    mantissas : sequence of int
        Plaintexts, e.g. from :meth:`PrivateKey.decrypt_raw`.
    exponent : int
        Fixed-point exponent the plaintexts carry.
    n : int
        Paillier modulus.

    Returns
    -------
    numpy.ndarray
        float64 values, correctly rounded.

    Raises
    ------
    CryptoError
        On overflow (see :func:`decode_ints`) or a value beyond float64 range.
    """
    _check_exponent(exponent)
    signed = decode_ints(mantissas, n)
    try:
        floats = np.array([float(m) for m in signed], dtype=np.float64)
    except OverflowError as exc:
        raise CryptoError(
            "decode: a mantissa is beyond float64 range; use decode_ints for exact integers"
        ) from exc
    # Scaling by an exact power of two keeps float(m) / 16**-e correctly rounded.
    return np.ldexp(floats, _LOG2_BASE * int(exponent))


def quantise(X: npt.ArrayLike, exponent: int) -> npt.NDArray[np.int64]:
    """Round an array to int64 fixed-point mantissas ``round(X * 16**-exponent)``.

    Parameters
    ----------
    X : numpy.ndarray
        Array of finite floats, any shape.
    exponent : int
        Fixed-point exponent, e.g. ``-4`` keeps about 16 bits of fraction.

    Returns
    -------
    numpy.ndarray
        int64 array of the same shape.

    Raises
    ------
    CryptoError
        If a value is not finite or its mantissa reaches ``2**62``.
    """
    scaled = _scaled(X, exponent, "quantise")
    too_big = np.abs(scaled) >= _QUANT_LIMIT
    if too_big.any():
        index = _first_index(too_big)
        raise CryptoError(
            f"quantise: value at index {index} scales to {scaled[index]:.6g}, beyond 2**62; "
            f"use an exponent above {exponent} or rescale the data"
        )
    return scaled.astype(np.int64)


#: Default bound on the rounding error of :func:`choose_exponent`, relative to the data.
DEFAULT_REL_ERROR = 2.0**-10


def choose_exponent(X: npt.ArrayLike, rel_error: float = DEFAULT_REL_ERROR) -> int:
    """Return the coarsest exponent whose rounding error is at most ``rel_error`` of the data.

    Quantising at exponent ``e`` rounds every entry to a multiple of ``16**e``, an error
    of at most ``16**e / 2``. This picks the largest ``e`` with
    ``16**e / 2 <= rel_error * s``, where ``s`` is the smallest non-zero column
    root-mean-square of ``X`` (1 for standardised data, giving ``e = -3`` at the
    default). Coarser steps give narrower integers and cheaper encrypted products; for
    ``X.T @ d`` the error is at most ``16**e / 2 * sum(|d|)`` per column.

    Parameters
    ----------
    X : numpy.ndarray
        Finite data, one column per feature (1-D is taken as one column).
    rel_error : float, optional
        Largest rounding error as a fraction of the column scale, in (0, 1).

    Returns
    -------
    int
        The exponent ``e`` to pass to :func:`quantise`.
    """
    if not 0.0 < rel_error < 1.0:
        raise CryptoError(f"rel_error must lie in (0, 1), got {rel_error!r}")
    arr = np.asarray(X, dtype=np.float64)
    arr = arr.reshape(len(arr), -1) if arr.ndim == 1 else arr
    if arr.size and not np.isfinite(arr).all():
        raise CryptoError("choose_exponent: the data has NaN or infinite values; clean it first")
    rms = np.sqrt(np.mean(arr * arr, axis=0)) if arr.size else np.zeros(0)
    nonzero = rms[rms > 0]
    scale = float(nonzero.min()) if nonzero.size else 1.0
    return math.floor(math.log(2.0 * rel_error * scale, BASE))


def quantisation_bits(Xq: npt.NDArray[np.integer[t.Any]]) -> int:
    """Return the width of quantised integers: bits of the largest magnitude plus a sign."""
    arr = np.asarray(Xq)
    return (int(np.abs(arr).max()).bit_length() if arr.size else 0) + 1
