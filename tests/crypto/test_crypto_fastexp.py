"""Tests for the fixed-base and bucket multi-exponentiation kernels against plain powmod."""

from __future__ import annotations

import gmpy2
import numpy as np
import pytest

from lianmo.crypto import _fastexp
from lianmo.errors import CryptoError

MODULUS = gmpy2.mpz(2**255 - 19) ** 2


@pytest.mark.parametrize("window", [1, 3, 8, 10, 11])
def test_fixed_base_powers_match_powmod(window: int) -> None:
    base = gmpy2.mpz(123456789)
    table = _fastexp.fixed_base_table(base, 32, MODULUS, window)
    exponents = [0, 1, 255, 256, 1023, 1024, 2**32 - 1, 0xDEADBEEF]
    packed = b"".join(e.to_bytes(4, "little") for e in exponents)
    digits = _fastexp.exponent_digits(packed, 4, window)
    got = _fastexp.fixed_base_powers(table, digits, MODULUS)
    assert got == [gmpy2.powmod(base, e, MODULUS) for e in exponents]
    with pytest.raises(CryptoError, match="multiple of the exponent width"):
        _fastexp.exponent_digits(b"\x00" * 5, 4, window)
    with pytest.raises(CryptoError, match="do not fit a table"):
        _fastexp.fixed_base_powers(table[:1], digits, MODULUS)


@pytest.mark.parametrize(("terms", "bits"), [(1, 1), (3, 63), (100, 16), (5000, 40)])
def test_bucket_window_is_sane(terms: int, bits: int) -> None:
    assert 1 <= _fastexp.bucket_window(terms, bits) <= 12


@pytest.mark.parametrize("size", [0, 1, 5, 300])
def test_signed_multiexp_matches_powmod(size: int) -> None:
    gen = np.random.default_rng(size)
    bases = [gmpy2.mpz(int(b)) for b in gen.integers(2, 2**62, size=size)]
    exps = gen.integers(-(2**30), 2**30, size=size)
    exps[gen.random(size) < 0.2] = 0
    expected = gmpy2.mpz(1)
    for b, e in zip(bases, exps.tolist(), strict=True):
        expected = expected * gmpy2.powmod(b, e, MODULUS) % MODULUS
    assert _fastexp.signed_multiexp(bases, exps, MODULUS) == expected


def test_signed_multiexp_reports_non_invertible_bases() -> None:
    with pytest.raises(CryptoError, match="not invertible"):
        _fastexp.signed_multiexp([gmpy2.mpz(2**255 - 19)], np.array([-1]), MODULUS)
