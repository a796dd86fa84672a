"""Tests for the fixed-point codec, including compatibility with phe's EncodedNumber."""

from __future__ import annotations

import numpy as np
import phe
import pytest

from lianmo.crypto import BASE, decode, decode_ints, encode, encode_ints, quantise
from lianmo.crypto.fixedpoint import max_int
from lianmo.errors import CryptoError

N = 2**127 - 1  # odd modulus stand-in; the codec only needs n
HALF_ULP = {-4: 0.5 * 16.0**-4, -8: 0.5 * 16.0**-8, -12: 0.5 * 16.0**-12}


@pytest.mark.parametrize(
    ("values", "exponent"),
    [
        ([0.0, 1.0, 2.5, 123.0625], -4),
        ([-1.0, -2.5, -1e-3, -123456.789], -8),
        ([0.0, -0.0], -8),
        ([1e9, -1e9, 3.2e8], -4),
        ([1e-7, -3e-9, 5e-12], -12),
    ],
    ids=["positive", "negative", "zero", "large", "small"],
)
def test_round_trip_within_half_a_unit(values: list[float], exponent: int) -> None:
    x = np.array(values)
    back = decode(encode(x, exponent, N), exponent, N)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, x, rtol=0, atol=HALF_ULP[exponent])


def test_exact_values_round_trip_exactly() -> None:
    x = np.array([0.5, -0.25, 3.0, -7.9375])
    np.testing.assert_array_equal(decode(encode(x, -4, N), -4, N), x)


def test_negative_mantissas_wrap_to_n_minus_m() -> None:
    assert encode(np.array([-1.0, 1.0]), -1, N) == [N - 16, 16]
    assert encode_ints([-5, 5, 0], N) == [N - 5, 5, 0]
    assert decode_ints([N - 5, 5, 0], N) == [-5, 5, 0]


def test_matches_phe_encoded_number() -> None:
    pk = phe.PaillierPublicKey(N)
    values = [0.1, -2.7, 1234.5678, -1e-5, 0.0]
    for exponent in (-4, -8):
        ours = encode(np.array(values), exponent, N)
        theirs = [
            phe.EncodedNumber.encode(pk, v, precision=float(BASE) ** exponent).encoding
            for v in values
        ]
        assert ours == theirs


def test_encode_ints_accepts_numpy_and_big_python_ints() -> None:
    big = 2**100
    assert encode_ints(np.array([3, -3], dtype=np.int64), N) == [3, N - 3]
    assert encode_ints([big, -big], N) == [big, N - big]


def test_bound_is_n_over_three() -> None:
    limit = max_int(N)
    assert limit == N // 3 - 1
    assert decode_ints(encode_ints([limit, -limit], N), N) == [limit, -limit]
    with pytest.raises(CryptoError, match="index 1 .*max_int"):
        encode_ints([0, limit + 1], N)
    with pytest.raises(CryptoError, match="index 0 .*max_int"):
        encode_ints([-(limit + 1)], N)


def test_decode_overflow_band_names_the_index() -> None:
    with pytest.raises(CryptoError, match="index 2 is in the overflow band"):
        decode([1, 2, N // 2], -4, N)
    with pytest.raises(CryptoError, match="index 0"):
        decode_ints([N], N)


def test_encode_refuses_mantissas_beyond_float_precision() -> None:
    with pytest.raises(CryptoError, match=r"index 1 .*2\*\*53"):
        encode(np.array([1.0, 2.0**50]), -1, N)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_encode_refuses_non_finite(bad: float) -> None:
    with pytest.raises(CryptoError, match="index 1 .*expected finite"):
        encode(np.array([1.0, bad, 2.0]), -4, N)


def test_encode_refuses_bad_shapes_and_types() -> None:
    with pytest.raises(CryptoError, match="1-D"):
        encode(np.zeros((2, 2)), -4, N)
    with pytest.raises(CryptoError, match="integer array"):
        encode_ints(np.array([1.5]), N)
    with pytest.raises(CryptoError, match="element 1 is float"):
        encode_ints([1, 2.0], N)  # type: ignore[list-item]
    with pytest.raises(CryptoError, match="exponent must be an int"):
        encode(np.array([1.0]), -4.0, N)  # type: ignore[arg-type]


def test_quantise_keeps_shape_and_rounds() -> None:
    X = np.array([[0.5, -0.5], [1.03125, -2.0]])
    q = quantise(X, -1)
    assert q.dtype == np.int64
    assert q.shape == X.shape
    np.testing.assert_array_equal(q, [[8, -8], [16, -32]])


def test_quantise_rejects_non_finite_and_huge() -> None:
    with pytest.raises(CryptoError, match=r"index \(1, 0\)"):
        quantise(np.array([[1.0], [np.nan]]), -4)
    with pytest.raises(CryptoError, match=r"2\*\*62"):
        quantise(np.array([2.0**60]), -1)
