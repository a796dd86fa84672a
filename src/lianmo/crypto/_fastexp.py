"""Modular exponentiation kernels on gmpy2 integers: fixed-base tables and bucket multi-exp.

Both kernels replace many ``powmod`` calls by a few modular multiplications each:

* fixed-base windowing (one base, many random exponents): with
  ``table[j][v] = base**(v * 2**(w*j))``, ``base**a`` is the product of ``table[j][a_j]``
  over the ``w``-bit digits ``a_j`` of ``a`` -- one modmul per digit of the exponent;
* signed bucket (Pippenger) multi-exponentiation (many bases, small signed exponents):
  ``prod_i c_i**e_i`` costs about ``windows * (terms + 2**(w+1))`` modmuls instead of one
  powmod per term, plus one inversion for the negative exponents.

All values stay ``gmpy2.mpz``; numpy only computes the exponent digits.
"""

from __future__ import annotations

import typing as t

import gmpy2
import numpy as np
import numpy.typing as npt

from lianmo.errors import CryptoError

FIXED_BASE_WINDOW = 8
_ONE = gmpy2.mpz(1)
_MAX_BUCKET_WINDOW = 12

Mpz = t.Any  # gmpy2.mpz has no type stubs


def fixed_base_table(
    base: Mpz, exp_bits: int, modulus: Mpz, window: int = FIXED_BASE_WINDOW
) -> list[list[Mpz]]:
    """Return ``table[j][v] = base**(v * 2**(window * j)) mod modulus``.

    Parameters
    ----------
    base : gmpy2.mpz
        The fixed base.
    exp_bits : int
        Bit length of the exponents the table will serve.
    modulus : gmpy2.mpz
        The modulus.
    window : int, optional
        Digit width in bits (1 to 16).

    Returns
    -------
    list of list of gmpy2.mpz
        ``ceil(exp_bits / window)`` rows of ``2**window`` entries; costs one modmul per
        entry to build.
    """
    if not 1 <= window <= 16 or exp_bits < 1:
        raise CryptoError(f"fixed-base table: bad window {window} or exponent bits {exp_bits}")
    digits = 1 << window
    table: list[list[Mpz]] = []
    step = gmpy2.mpz(base) % modulus
    for _ in range(-(-exp_bits // window)):
        row = [_ONE, step]
        for _ in range(digits - 2):
            row.append(row[-1] * step % modulus)
        table.append(row)
        step = row[-1] * step % modulus
    return table


def exponent_digits(exponents: bytes, exp_bytes: int, window: int) -> npt.NDArray[np.int64]:
    """Split concatenated little-endian exponents into ``window``-bit digits.

    Parameters
    ----------
    exponents : bytes
        ``count`` exponents of ``exp_bytes`` bytes each, little-endian.
    exp_bytes : int
        Bytes per exponent.
    window : int
        Digit width in bits.

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(count, ceil(8 * exp_bytes / window))``, least
        significant digit first.
    """
    if exp_bytes < 1 or len(exponents) % exp_bytes:
        raise CryptoError(
            f"fixed-base exponents: {len(exponents)} bytes is not a multiple of the "
            f"exponent width {exp_bytes}; this is a bug in the caller"
        )
    count = len(exponents) // exp_bytes
    rows = -(-8 * exp_bytes // window)
    raw = np.frombuffer(exponents, dtype=np.uint8).reshape(count, exp_bytes)
    bits = np.unpackbits(raw, axis=1, bitorder="little")
    padded = np.zeros((count, rows * window), dtype=np.int64)
    padded[:, : bits.shape[1]] = bits
    weights = np.left_shift(1, np.arange(window, dtype=np.int64))
    return padded.reshape(count, rows, window) @ weights


def fixed_base_powers(
    table: list[list[Mpz]], digits: npt.NDArray[np.int64], modulus: Mpz
) -> list[Mpz]:
    """Return ``base**a mod modulus`` for each exponent ``a`` given by its digits.

    Parameters
    ----------
    table : list of list of gmpy2.mpz
        Output of :func:`fixed_base_table`.
    digits : numpy.ndarray
        Output of :func:`exponent_digits` with the table's window: one row per
        exponent, at most ``len(table)`` digits.
    modulus : gmpy2.mpz
        The modulus the table was built for.

    Returns
    -------
    list of gmpy2.mpz
        One power per exponent: one modmul per digit after the first.
    """
    if digits.ndim != 2 or digits.shape[1] > len(table):
        raise CryptoError(
            f"fixed-base digits of shape {digits.shape} do not fit a table of "
            f"{len(table)} rows; this is a bug in the caller"
        )
    if digits.shape[0] == 0:
        return []
    # Row by row over all exponents, not exponent by exponent over all rows: one row of
    # the table (2**window entries) stays in cache while every exponent uses it. On a
    # 2048-bit key this is a third faster than walking a 50 MB table per exponent.
    columns = digits.T.tolist()
    if not columns:
        return [_ONE] * digits.shape[0]
    first = table[0]
    acc = [first[d] for d in columns[0]]
    for row, column in zip(table[1:], columns[1:], strict=False):
        acc = [a * row[d] % modulus for a, d in zip(acc, column, strict=True)]
    return acc


def bucket_window(terms: int, exp_bits: int) -> int:
    """Return the window width ``w`` minimising ``ceil(exp_bits / w) * (terms + 2**(w+1))``.

    Parameters
    ----------
    terms : int
        Number of nonzero terms in the product.
    exp_bits : int
        Bit length of the largest exponent.

    Returns
    -------
    int
        Window width in bits, between 1 and 12.
    """

    def cost(w: int) -> int:
        return -(-exp_bits // w) * (terms + (2 << w))

    return min(range(1, _MAX_BUCKET_WINDOW + 1), key=cost)


def _combine_buckets(buckets: list[Mpz | None], modulus: Mpz) -> Mpz | None:
    """Return ``prod_d buckets[d]**d`` with the running-product trick (2 modmuls per digit)."""
    running: Mpz | None = None
    total: Mpz | None = None
    for bucket in reversed(buckets[1:]):
        if bucket is not None:
            running = bucket if running is None else running * bucket % modulus
        if running is not None:
            total = running if total is None else total * running % modulus
    return total


def multiexp(
    bases: t.Sequence[Mpz],
    rows: npt.NDArray[np.int64],
    exps: npt.NDArray[np.int64],
    modulus: Mpz,
) -> Mpz:
    """Return ``prod_k bases[rows[k]]**exps[k] mod modulus`` for positive ``exps``.

    Parameters
    ----------
    bases : sequence of gmpy2.mpz
        Bases, already reduced modulo ``modulus``.
    rows : numpy.ndarray
        int64 indices into ``bases``.
    exps : numpy.ndarray
        int64 exponents, all positive, same length as ``rows``.
    modulus : gmpy2.mpz
        The modulus.

    Returns
    -------
    gmpy2.mpz
        The product; ``1`` for no terms.
    """
    if rows.size == 0:
        return _ONE
    exp_bits = int(exps.max()).bit_length()
    w = bucket_window(int(rows.size), exp_bits)
    mask = (1 << w) - 1
    acc: Mpz | None = None
    for window in reversed(range(-(-exp_bits // w))):
        if acc is not None:
            acc = gmpy2.powmod(acc, 1 << w, modulus)
        digits = (exps >> (w * window)) & mask
        nonzero = np.flatnonzero(digits)
        buckets: list[Mpz | None] = [None] * (mask + 1)
        for row, digit in zip(rows[nonzero].tolist(), digits[nonzero].tolist(), strict=True):
            bucket = buckets[digit]
            buckets[digit] = bases[row] if bucket is None else bucket * bases[row] % modulus
        part = _combine_buckets(buckets, modulus)
        if part is not None:
            acc = part if acc is None else acc * part % modulus
    return _ONE if acc is None else acc


def signed_multiexp(bases: t.Sequence[Mpz], exps: npt.NDArray[np.int64], modulus: Mpz) -> Mpz:
    """Return ``prod_i bases[i]**exps[i] mod modulus`` for signed int64 ``exps``.

    Parameters
    ----------
    bases : sequence of gmpy2.mpz
        Bases, invertible modulo ``modulus``.
    exps : numpy.ndarray
        int64 exponents, one per base, none equal to the int64 minimum.
    modulus : gmpy2.mpz
        The modulus.

    Returns
    -------
    gmpy2.mpz
        The product; negative exponents cost one inversion in total.
    """
    positive = np.flatnonzero(exps > 0)
    negative = np.flatnonzero(exps < 0)
    result = multiexp(bases, positive, exps[positive], modulus)
    if negative.size:
        denominator = multiexp(bases, negative, -exps[negative], modulus)
        try:
            inverse = gmpy2.invert(denominator, modulus)
        except ZeroDivisionError as exc:
            raise CryptoError(
                "a ciphertext is not invertible modulo n^2 (not in Z*_{n^2}); "
                "validate ciphertexts with CipherVector.from_bytes before computing"
            ) from exc
        result = result * inverse % modulus
    return result


def batch_invert(values: t.Sequence[Mpz], modulus: Mpz) -> list[Mpz]:
    """Return the inverses of ``values`` modulo ``modulus`` with one modular inversion.

    Montgomery's trick: prefix products (one modular multiplication per value), one
    inversion of the total, then two modular multiplications per value walking back.

    Parameters
    ----------
    values : sequence of gmpy2.mpz
        Invertible residues.
    modulus : gmpy2.mpz
        The modulus.

    Returns
    -------
    list of gmpy2.mpz
        ``values[i]**-1 mod modulus``.
    """
    if not values:
        return []
    prefix = [gmpy2.mpz(values[0]) % modulus]
    for value in values[1:]:
        prefix.append(prefix[-1] * value % modulus)
    try:
        inverse = gmpy2.invert(prefix[-1], modulus)
    except ZeroDivisionError as exc:
        raise CryptoError(
            "a ciphertext is not invertible modulo n^2 (not in Z*_{n^2}); "
            "validate ciphertexts with CipherVector.from_bytes before computing"
        ) from exc
    out = [_ONE] * len(values)
    for index in range(len(values) - 1, 0, -1):
        out[index] = inverse * prefix[index - 1] % modulus
        inverse = inverse * values[index] % modulus
    out[0] = inverse
    return out
