"""Tests for fixed-width big-endian integer packing."""

from __future__ import annotations

import gmpy2
import pytest

from lianmo.crypto import fixed_bytes_to_ints, int_to_fixed_bytes
from lianmo.crypto.bytes_codec import fixed_bytes_to_mpz
from lianmo.errors import CryptoError


def test_round_trip_python_and_gmpy2_ints() -> None:
    values = [0, 1, 255, 2**64 - 1, gmpy2.mpz(2**70 + 5)]
    data = int_to_fixed_bytes(values, 9)
    assert len(data) == 45
    assert data[:9] == bytes(9)
    assert fixed_bytes_to_ints(data, 5, 9) == values
    assert fixed_bytes_to_mpz(data, 5, 9) == values


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([1, -1], "element 1 is negative"),
        ([1, 2, 2**16], "element 2 .*17 bits"),
        ([1, 1.0], "element 1 is float"),
    ],
)
def test_pack_names_the_bad_element(values: list[int], match: str) -> None:
    with pytest.raises(CryptoError, match=match):
        int_to_fixed_bytes(values, 2)


def test_unpack_checks_length_and_width() -> None:
    with pytest.raises(CryptoError, match=r"expected 3 x 2 = 6 bytes, got 5"):
        fixed_bytes_to_ints(b"\x00" * 5, 3, 2)
    with pytest.raises(CryptoError, match="positive int"):
        fixed_bytes_to_ints(b"", 0, 0)
