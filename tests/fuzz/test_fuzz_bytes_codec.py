"""Fuzz ``crypto.bytes_codec``: fixed-width big-endian packing of non-negative integers.

Packing anything but integers in range, or unpacking bytes that do not match the count
and width, is a :class:`CryptoError`; everything else round-trips.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from lianmo.crypto.bytes_codec import fixed_bytes_to_ints, fixed_bytes_to_mpz, int_to_fixed_bytes
from lianmo.errors import CryptoError

FUZZ = settings(max_examples=250, deadline=None)

widths = st.integers(1, 40)
arbitrary_ints = st.one_of(st.integers(-(2**64), 2**64), st.integers(-(2**400), 2**400))
not_ints = st.one_of(
    st.booleans(), st.floats(), st.text(max_size=5), st.none(), st.binary(max_size=5)
)
anything = st.one_of(arbitrary_ints, not_ints)
#: Widths small enough to allocate: the sender picks the width, a peer never does.
pack_widths = st.one_of(st.integers(-4, 40), not_ints)


@FUZZ
@given(st.data(), widths)
def test_packed_ints_round_trip(data: st.DataObject, width: int) -> None:
    values = data.draw(st.lists(st.integers(0, 256**width - 1), max_size=8))
    packed = int_to_fixed_bytes(values, width)
    assert len(packed) == len(values) * width
    assert fixed_bytes_to_ints(packed, len(values), width) == values
    assert fixed_bytes_to_mpz(packed, len(values), width) == values


@FUZZ
@given(st.lists(anything, max_size=6), pack_widths)
@example([True], 1)  # a bool is not an integer to pack
@example(["12"], 1)  # nor is a numeric string
@example([2**64], 8)
@example([-1], 8)
def test_packing_anything_else_is_a_crypto_error(values: list[object], width: object) -> None:
    try:
        packed = int_to_fixed_bytes(values, width)  # type: ignore[arg-type]
    except CryptoError:
        return
    assert isinstance(width, int) and not isinstance(width, bool)
    assert all(type(v) is int and 0 <= v < 256**width for v in values)
    assert fixed_bytes_to_ints(packed, len(values), width) == values


@FUZZ
@given(
    st.binary(max_size=100),
    st.one_of(st.integers(-4, 40), anything),
    st.one_of(st.integers(-4, 40), anything),
)
@example(b"", 0, 0)
@example(b"", True, 1)
@example(b"\x00", 1, True)
def test_unpacking_arbitrary_bytes_is_a_crypto_error(
    data: bytes, count: object, width: object
) -> None:
    for unpack in (fixed_bytes_to_ints, fixed_bytes_to_mpz):
        try:
            values = unpack(data, count, width)  # type: ignore[arg-type]
        except CryptoError:
            continue
        assert len(values) == count and int_to_fixed_bytes(values, width) == data  # type: ignore[arg-type]
