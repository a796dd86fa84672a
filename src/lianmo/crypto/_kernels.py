"""Chunk kernels: the hot loops of the Paillier engine as picklable module-level functions.

Each kernel takes one task tuple and returns plain values, so a compute backend can run
it in this process or in a worker (see :mod:`lianmo.compute`). Tasks carry everything a
kernel needs (moduli, bases, the random exponents already drawn by the caller), which
keeps results independent of where and in how many chunks they are computed. Tables
for fixed-base exponentiation are cached per process (:func:`fixed_base_table`), so a
worker builds a key's table once and reuses it for every later chunk.
"""

from __future__ import annotations

import threading
import typing as t
from collections import OrderedDict

import gmpy2
import numpy as np
import numpy.typing as npt

from lianmo.crypto import _fastexp

Mpz = t.Any  # gmpy2.mpz has no type stubs
_ONE = gmpy2.mpz(1)

#: Digit width of fixed-base tables modulo n**2: 103 rows of 1024 entries, 54 MB for a
#: 2048-bit key, 103 modmuls per 1024-bit exponent.
PUBLIC_WINDOW = 10
#: Digit width of the CRT tables modulo p**2 and q**2 (entries half as wide): 94 rows of
#: 2048 entries, 2 x 49 MB for a 2048-bit key, 2 x 94 half-size modmuls per exponent.
CRT_WINDOW = 11

_TABLE_CACHE_SIZE = 6  # a public-path table and two CRT tables for two keys
_table_lock = threading.Lock()
_tables: OrderedDict[tuple[int, int, int, int], list[list[Mpz]]] = OrderedDict()


def fixed_base_table(
    base: Mpz, exp_bytes: int, modulus: Mpz, window: int = PUBLIC_WINDOW
) -> list[list[Mpz]]:
    """Return the (cached) fixed-base table of ``base`` for ``exp_bytes``-byte exponents.

    Parameters
    ----------
    base : gmpy2.mpz
        The fixed base.
    exp_bytes : int
        Exponent length in bytes.
    modulus : gmpy2.mpz
        The modulus.
    window : int, optional
        Digit width in bits.

    Returns
    -------
    list of list of gmpy2.mpz
        See :func:`lianmo.crypto._fastexp.fixed_base_table`; the least recently used of
        more than six tables is dropped.
    """
    key = (int(modulus), int(base), exp_bytes, window)
    with _table_lock:
        table = _tables.get(key)
        if table is not None:
            _tables.move_to_end(key)
            return table
    table = _fastexp.fixed_base_table(gmpy2.mpz(base), 8 * exp_bytes, gmpy2.mpz(modulus), window)
    with _table_lock:
        _tables[key] = table
        while len(_tables) > _TABLE_CACHE_SIZE:
            _tables.popitem(last=False)
    return table


class ObfuscateTask(t.NamedTuple):
    """Multiply each value by ``h**a mod n**2`` (``a`` from ``exponents``).

    With ``plain`` set, values are plaintexts ``m`` in ``[0, n)`` and become ``1 + m*n``
    first (encryption); otherwise they are ciphertexts (re-randomisation).
    """

    n: Mpz
    h: Mpz
    exp_bytes: int
    values: list[Mpz]
    exponents: bytes
    plain: bool


def obfuscate(task: ObfuscateTask) -> list[Mpz]:
    """Run an :class:`ObfuscateTask` modulo ``n**2``; returns the ciphertexts."""
    n = gmpy2.mpz(task.n)
    nsquare = n * n
    table = fixed_base_table(task.h, task.exp_bytes, nsquare)
    digits = _fastexp.exponent_digits(task.exponents, task.exp_bytes, PUBLIC_WINDOW)
    obfuscators = _fastexp.fixed_base_powers(table, digits, nsquare)
    if task.plain:
        return [(m * n + 1) * r % nsquare for m, r in zip(task.values, obfuscators, strict=True)]
    return [c * r % nsquare for c, r in zip(task.values, obfuscators, strict=True)]


class CrtEncryptTask(t.NamedTuple):
    """Encrypt plaintexts ``m`` as ``(1 + m*n) * h**a mod n**2``, computed modulo p² and q².

    Gives the same ciphertexts as :func:`obfuscate` with ``plain`` set; only a holder of
    the factors ``p`` and ``q`` can run it.
    """

    p: Mpz
    q: Mpz
    h: Mpz
    exp_bytes: int
    values: list[Mpz]
    exponents: bytes


def crt_encrypt(task: CrtEncryptTask) -> list[Mpz]:
    """Run a :class:`CrtEncryptTask`; about twice as fast as the public-key path."""
    p, q = gmpy2.mpz(task.p), gmpy2.mpz(task.q)
    n, psquare, qsquare = p * q, p * p, q * q
    p_part = fixed_base_table(task.h % psquare, task.exp_bytes, psquare, CRT_WINDOW)
    q_part = fixed_base_table(task.h % qsquare, task.exp_bytes, qsquare, CRT_WINDOW)
    digits = _fastexp.exponent_digits(task.exponents, task.exp_bytes, CRT_WINDOW)
    obf_p = _fastexp.fixed_base_powers(p_part, digits, psquare)
    obf_q = _fastexp.fixed_base_powers(q_part, digits, qsquare)
    psquare_inv = gmpy2.invert(psquare, qsquare)
    out: list[Mpz] = []
    for m, rp, rq in zip(task.values, obf_p, obf_q, strict=True):
        g_m = m * n + 1
        cp = g_m % psquare * rp % psquare
        cq = g_m % qsquare * rq % qsquare
        out.append(cp + (cq - cp) * psquare_inv % qsquare * psquare)
    return out


class MatvecTask(t.NamedTuple):
    """``prod_i bases[i]**columns[j, i] mod modulus`` for each row ``j`` of ``columns``."""

    modulus: Mpz
    bases: list[Mpz]
    columns: npt.NDArray[np.int64]


def matvec(task: MatvecTask) -> list[Mpz]:
    """Run a :class:`MatvecTask` by signed bucket multi-exponentiation per column."""
    modulus = gmpy2.mpz(task.modulus)
    return [_fastexp.signed_multiexp(task.bases, column, modulus) for column in task.columns]


class HistogramTask(t.NamedTuple):
    """Products of ``values`` grouped by ``slots[f, i]`` (``-1``: skip) for each row ``f``."""

    modulus: Mpz
    values: list[Mpz]
    slots: npt.NDArray[np.int64]
    n_slots: int


def histogram(task: HistogramTask) -> list[list[Mpz]]:
    """Run a :class:`HistogramTask`: one modular multiplication per (row, value) placed.

    Returns
    -------
    list of list of gmpy2.mpz
        ``n_slots`` products per row of ``slots``; ``1`` (an encryption of zero) where
        nothing fell.
    """
    modulus = gmpy2.mpz(task.modulus)
    values = task.values
    out: list[list[Mpz]] = []
    for row in task.slots:
        buckets: list[Mpz | None] = [None] * task.n_slots
        for i, slot in enumerate(row.tolist()):
            if slot < 0:
                continue
            bucket = buckets[slot]
            buckets[slot] = values[i] if bucket is None else bucket * values[i] % modulus
        out.append([_ONE if b is None else b for b in buckets])
    return out


class ShiftPackTask(t.NamedTuple):
    """Pack groups of ``per_ct`` ciphertexts: ``prod_j c_j**(2**(j*shift_bits))`` each."""

    modulus: Mpz
    values: list[Mpz]
    per_ct: int
    shift_bits: int


def shift_pack(task: ShiftPackTask) -> list[Mpz]:
    """Run a :class:`ShiftPackTask` by Horner's rule: ``shift_bits`` squarings per value."""
    modulus = gmpy2.mpz(task.modulus)
    shift = gmpy2.mpz(1) << task.shift_bits
    values = task.values
    out: list[Mpz] = []
    for start in range(0, len(values), task.per_ct):
        group = values[start : start + task.per_ct]
        acc = group[-1]
        for c in reversed(group[:-1]):
            acc = gmpy2.powmod(acc, shift, modulus) * c % modulus
        out.append(acc)
    return out


class DecryptTask(t.NamedTuple):
    """Decrypt ciphertexts to raw plaintexts in ``[0, n)`` with the factors ``p < q``."""

    p: Mpz
    q: Mpz
    values: list[Mpz]


def _crt_constants(p: Mpz, q: Mpz) -> tuple[Mpz, Mpz, Mpz]:
    n = p * q

    def h(prime: Mpz) -> Mpz:
        prime_square = prime * prime
        g_power = gmpy2.powmod(n + 1, prime - 1, prime_square)
        return gmpy2.invert((g_power - 1) // prime, prime)

    return h(p), h(q), gmpy2.invert(p, q)


def decrypt(task: DecryptTask) -> list[Mpz]:
    """Run a :class:`DecryptTask` by CRT: two half-size powmods per ciphertext."""
    p, q = gmpy2.mpz(task.p), gmpy2.mpz(task.q)
    hp, hq, p_inv = _crt_constants(p, q)
    # powmod_base_list runs the loop in C and releases the GIL.
    mod_p = gmpy2.powmod_base_list(task.values, p - 1, p * p)
    mod_q = gmpy2.powmod_base_list(task.values, q - 1, q * q)
    out: list[Mpz] = []
    for xp, xq in zip(mod_p, mod_q, strict=True):
        mp = (xp - 1) // p * hp % p
        mq = (xq - 1) // q * hq % q
        out.append(mp + (mq - mp) * p_inv % q * p)
    return out
