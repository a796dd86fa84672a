"""Property tests for the exponentiation kernels: fixed-base windows, multi-exp, inversion."""

from __future__ import annotations

import math

import gmpy2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lianmo.crypto import _fastexp
from lianmo.errors import CryptoError

PROPS = settings(max_examples=40, deadline=None)
PRIME = 2**255 - 19
MODULUS = gmpy2.mpz(PRIME) ** 2  # like n**2: units are the residues not divisible by PRIME
INT64_MAX = 2**63 - 1

moduli = st.integers(2, 2**300)
windows = st.integers(1, 12)


@PROPS
@given(
    modulus=moduli,
    base=st.integers(0, 2**320),
    window=windows,
    exp_bytes=st.integers(1, 12),
    data=st.data(),
)
def test_fixed_base_powers_match_powmod(
    modulus: int, base: int, window: int, exp_bytes: int, data: st.DataObject
) -> None:
    top = 256**exp_bytes - 1
    exponents = data.draw(
        st.lists(st.sampled_from([0, 1, top, top // 2 + 1]) | st.integers(0, top), max_size=12)
    )
    packed = b"".join(e.to_bytes(exp_bytes, "little") for e in exponents)
    digits = _fastexp.exponent_digits(packed, exp_bytes, window)
    assert digits.shape == (len(exponents), -(-8 * exp_bytes // window))
    assert [sum(int(d) << (window * j) for j, d in enumerate(row)) for row in digits] == exponents
    table = _fastexp.fixed_base_table(gmpy2.mpz(base), 8 * exp_bytes, gmpy2.mpz(modulus), window)
    assert len(table) == digits.shape[1] and all(len(row) == 1 << window for row in table)
    got = _fastexp.fixed_base_powers(table, digits, gmpy2.mpz(modulus))
    expected = [gmpy2.powmod(base, e, modulus) for e in exponents]
    assert got == expected


def test_fixed_base_table_validates() -> None:
    for window, bits in ((0, 8), (17, 8), (4, 0)):
        with pytest.raises(CryptoError, match="bad window"):
            _fastexp.fixed_base_table(gmpy2.mpz(3), bits, MODULUS, window)


@PROPS
@given(data=st.data())
def test_signed_multiexp_matches_powmod(data: st.DataObject) -> None:
    size = data.draw(st.integers(0, 30))
    units = st.integers(1, int(MODULUS) - 1).filter(lambda b: b % PRIME != 0)
    bases = [gmpy2.mpz(b) for b in data.draw(st.lists(units, min_size=size, max_size=size))]
    exps = data.draw(
        st.lists(
            st.sampled_from([0, 1, -1, INT64_MAX, -INT64_MAX, 2**62, -(2**62)])
            | st.integers(-INT64_MAX, INT64_MAX)
            | st.integers(-1000, 1000),
            min_size=size,
            max_size=size,
        )
    )
    expected = gmpy2.mpz(1)
    for b, e in zip(bases, exps, strict=True):
        expected = expected * gmpy2.powmod(b, e, MODULUS) % MODULUS
    got = _fastexp.signed_multiexp(bases, np.array(exps, dtype=np.int64), MODULUS)
    assert got == expected


@PROPS
@given(modulus=moduli, data=st.data())
def test_batch_invert_matches_invert(modulus: int, data: st.DataObject) -> None:
    units = st.integers(1, 2**320).filter(lambda v: math.gcd(v, modulus) == 1)
    values = [gmpy2.mpz(v) for v in data.draw(st.lists(units, max_size=20))]
    got = _fastexp.batch_invert(values, gmpy2.mpz(modulus))
    assert got == [gmpy2.invert(v, modulus) for v in values]


@PROPS
@given(
    factor=st.integers(2, 2**150),
    cofactor=st.integers(2, 2**150),
    data=st.data(),
)
def test_batch_invert_refuses_a_non_invertible_value(
    factor: int, cofactor: int, data: st.DataObject
) -> None:
    modulus = factor * cofactor
    units = st.integers(1, 2**320).filter(lambda v: math.gcd(v, modulus) == 1)
    values = data.draw(st.lists(units, max_size=10))
    multiples = st.integers(1, 2**150).map(lambda k: k * factor)
    bad = data.draw(st.sampled_from([0, factor, modulus]) | multiples)
    values.insert(data.draw(st.integers(0, len(values))), bad)
    with pytest.raises(CryptoError, match="not invertible"):
        _fastexp.batch_invert([gmpy2.mpz(v) for v in values], gmpy2.mpz(modulus))


def test_batch_invert_of_nothing() -> None:
    assert _fastexp.batch_invert([], MODULUS) == []
