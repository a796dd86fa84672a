"""Modular exponentiation kernels on gmpy2 integers: fixed-base tables and bucket multi-exp.

Both kernels replace many ``powmod`` calls by a few modular multiplications each:

* fixed-base windowing (one base, many random exponents): with
  ``table[j][v] = base**(v * 256**j)``, ``base**a`` is the product of ``table[j][a_j]``
  over the bytes ``a_j`` of ``a`` -- one modmul per byte of exponent;
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
_DIGITS = 1 << FIXED_BASE_WINDOW
_ONE = gmpy2.mpz(1)
_MAX_BUCKET_WINDOW = 12

Mpz = t.Any  # gmpy2.mpz has no type stubs


def fixed_base_table(base: Mpz, exp_bytes: int, modulus: Mpz) -> list[list[Mpz]]:
    """Return ``table[j][v] = base**(v * 256**j) mod modulus`` for ``j < exp_bytes``.

    Parameters
    ----------
    base : gmpy2.mpz
        The fixed base.
    exp_bytes : int
        Length in bytes of the exponents the table will serve.
    modulus : gmpy2.mpz
        The modulus.

    Returns
    -------
    list of list of gmpy2.mpz
        ``exp_bytes`` rows of 256 entries; costs ``256 * exp_bytes`` modmuls to build.
    """
    table: list[list[Mpz]] = []
    step = gmpy2.mpz(base) % modulus
    for _ in range(exp_bytes):
        row = [_ONE, step]
        for _ in range(_DIGITS - 2):
            row.append(row[-1] * step % modulus)
        table.append(row)
        step = row[-1] * step % modulus
    return table


def fixed_base_powers(table: list[list[Mpz]], exponents: bytes, modulus: Mpz) -> list[Mpz]:
    """Return ``base**a mod modulus`` for each exponent ``a`` packed in ``exponents``.

    Parameters
    ----------
    table : list of list of gmpy2.mpz
        Output of :func:`fixed_base_table`.
    exponents : bytes
        Concatenated little-endian exponents of ``len(table)`` bytes each.
    modulus : gmpy2.mpz
        The modulus the table was built for.

    Returns
    -------
    list of gmpy2.mpz
        One power per exponent.
    """
    width = len(table)
    if width == 0 or len(exponents) % width:
        raise CryptoError(
            f"fixed-base exponents: {len(exponents)} bytes is not a multiple of the "
            f"table width {width}; this is a bug in the caller"
        )
    first, rest = table[0], table[1:]
    out: list[Mpz] = []
    for start in range(0, len(exponents), width):
        chunk = exponents[start : start + width]
        acc = first[chunk[0]]
        for row, digit in zip(rest, chunk[1:], strict=True):
            acc = acc * row[digit] % modulus
        out.append(acc)
    return out


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
