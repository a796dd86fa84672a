"""Property tests for packed plaintexts: slot bounds, overflow-free sums, packed ciphertexts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lianmo.crypto import CipherVector, Drbg, PrivateKey, PublicKey
from lianmo.crypto.fixedpoint import max_int
from lianmo.crypto.packing import Packing
from lianmo.errors import CryptoError

Keypair = tuple[PublicKey, PrivateKey]

PROPS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
CIPHER = settings(PROPS, max_examples=15)
seeds = st.binary(min_size=16, max_size=32)


@pytest.fixture(scope="module")
def keypair(small_test_keypair: Keypair) -> Keypair:
    """The session test key as fresh key objects, whose obfuscation base this module fixes.

    A key object fixes its base from the first Drbg used with it; encrypting with the
    shared session objects here would change what other modules' seeded tests replay.
    """
    private = PrivateKey.from_phe(small_test_keypair[1].to_phe(), min_bits=1024)
    return private.public_key, private


@st.composite
def sum_layouts(draw: st.DrawFn, max_slots: int = 4, max_terms: int = 600) -> Packing:
    """A :meth:`Packing.for_sums` layout; every slot fits the 64-bit cap."""
    terms = draw(st.integers(1, max_terms))
    widest = 63 - terms.bit_length()
    bits = draw(st.lists(st.integers(0, widest), min_size=1, max_size=max_slots))
    return Packing.for_sums(bits, terms)


@st.composite
def plain_layouts(draw: st.DrawFn, max_slots: int = 4) -> Packing:
    """A layout given by slot widths only (values ``|v| < 2**(w - 1)``)."""
    return Packing(tuple(draw(st.lists(st.integers(2, 64), min_size=1, max_size=max_slots))))


def slot_values(bits: int) -> st.SearchStrategy[int]:
    """Values a slot of ``value_bits = bits`` accepts, biased towards its bounds."""
    top = (1 << bits) - 1
    return st.one_of(st.sampled_from([0, top, -top, 1 if top else 0]), st.integers(-top, top))


@st.composite
def rows_for(draw: st.DrawFn, packing: Packing, count: int) -> np.ndarray:
    columns = [
        draw(st.lists(slot_values(bits), min_size=count, max_size=count))
        for bits in packing.value_bits
    ]
    return np.array(columns, dtype=np.int64).T.reshape(count, packing.slots)


def _column_sums(values: np.ndarray) -> list[int]:
    return [sum(int(v) for v in values[:, k]) for k in range(values.shape[1])]


# --- layouts ---------------------------------------------------------------------------------


@PROPS
@given(terms=st.integers(1, 2**20), data=st.data())
def test_for_sums_widths_follow_the_documented_rule(terms: int, data: st.DataObject) -> None:
    bits = data.draw(st.lists(st.integers(0, 63 - terms.bit_length()), min_size=1, max_size=5))
    packing = Packing.for_sums(bits, terms)
    assert packing.value_bits == tuple(bits)
    assert packing.slot_bits == tuple(b + terms.bit_length() + 1 for b in bits)
    assert packing.total_bits == sum(packing.slot_bits) and packing.slots == len(bits)
    repeated = packing.repeat(3)
    assert repeated.slot_bits == packing.slot_bits * 3
    assert repeated.value_bits == packing.value_bits * 3
    assert repeated.total_bits == 3 * packing.total_bits


def test_layout_validation() -> None:
    with pytest.raises(CryptoError, match="at least one slot"):
        Packing(())
    for bad in ((1,), (65,), (8, 0), (True,)):
        with pytest.raises(CryptoError, match="slot widths"):
            Packing(bad)  # type: ignore[arg-type]
    with pytest.raises(CryptoError, match="do not fit"):
        Packing((8,), (8,))
    with pytest.raises(CryptoError, match="do not fit"):
        Packing((8, 8), (3,))
    with pytest.raises(CryptoError, match="max_terms"):
        Packing.for_sums([3], 0)
    with pytest.raises(CryptoError, match="non-negative"):
        Packing.for_sums([-1], 4)
    with pytest.raises(CryptoError, match="slot widths"):
        Packing.for_sums([60], 16)  # 60 + 5 + 1 = 66 bits
    with pytest.raises(CryptoError, match="at least one slot"):
        Packing((8,)).repeat(0)


@PROPS
@given(
    n_bits=st.integers(16, 4096),
    data=st.data(),
    packing=st.one_of(sum_layouts(), plain_layouts(max_slots=8)),
)
def test_per_plaintext_fits_max_int(n_bits: int, data: st.DataObject, packing: Packing) -> None:
    n = data.draw(st.integers(2 ** (n_bits - 1), 2**n_bits - 1)) | 1
    room = max_int(n).bit_length()
    if packing.total_bits > room:
        with pytest.raises(CryptoError, match="does not fit"):
            packing.per_plaintext(n)
        return
    per = packing.per_plaintext(n)
    assert per >= 1
    assert per * packing.total_bits <= room
    assert (per + 1) * packing.total_bits > room  # as many as fit
    # the largest magnitude a full plaintext of in-range slots can reach stays <= max_int
    extreme = [(1 << (w - 1)) - 1 for w in packing.repeat(per).slot_bits]
    offsets = np.cumsum((0,) + packing.repeat(per).slot_bits[:-1]).tolist()
    assert sum(v << o for v, o in zip(extreme, offsets, strict=True)) <= max_int(n)


# --- pack / unpack ---------------------------------------------------------------------------


@PROPS
@given(packing=st.one_of(sum_layouts(), plain_layouts()), data=st.data())
def test_pack_unpack_round_trip_at_the_bounds(packing: Packing, data: st.DataObject) -> None:
    count = data.draw(st.integers(0, 12))
    values = data.draw(rows_for(packing, count))
    extremes = np.array(
        [[(1 << b) - 1 for b in packing.value_bits], [1 - (1 << b) for b in packing.value_bits]],
        dtype=np.int64,
    )
    values = np.concatenate([values, extremes])
    packed = packing.pack(values)
    assert len(packed) == len(values) and all(isinstance(p, int) for p in packed)
    unpacked = packing.unpack(packed)
    assert unpacked.dtype == np.int64
    np.testing.assert_array_equal(unpacked, values)
    # the packed integer is the documented weighted sum of the slots
    offsets = np.cumsum((0,) + packing.slot_bits[:-1]).tolist()
    for row, p in zip(values.tolist(), packed, strict=True):
        assert p == sum(v << o for v, o in zip(row, offsets, strict=True))


@PROPS
@given(packing=sum_layouts(max_terms=1000), data=st.data(), seed=st.integers(0, 2**32))
def test_sums_of_max_terms_extreme_values_never_overflow(
    packing: Packing, data: st.DataObject, seed: int
) -> None:
    most = (1 << (packing.slot_bits[0] - packing.value_bits[0] - 1)) - 1  # for these widths
    terms = data.draw(st.integers(most // 2 + 1, most))
    assert Packing.for_sums(packing.value_bits, terms) == packing
    signs = data.draw(
        st.lists(st.sampled_from([1, -1]), min_size=packing.slots, max_size=packing.slots)
    )
    extreme = np.array(
        [[s * ((1 << b) - 1) for s, b in zip(signs, packing.value_bits, strict=True)]] * terms,
        dtype=np.int64,
    )
    total = sum(packing.pack(extreme))
    np.testing.assert_array_equal(packing.unpack([total]), [_column_sums(extreme)])
    # random values (too many for hypothesis to draw one by one), and a random prefix of them
    gen = np.random.default_rng(seed)
    values = np.stack(
        [
            gen.integers(1 - (1 << b), (1 << b) - 1, size=terms, dtype=np.int64, endpoint=True)
            for b in packing.value_bits
        ],
        axis=1,
    )
    packed = packing.pack(values)
    np.testing.assert_array_equal(packing.unpack([sum(packed)]), [_column_sums(values)])
    cut = data.draw(st.integers(0, terms))
    np.testing.assert_array_equal(packing.unpack([sum(packed[:cut])]), [_column_sums(values[:cut])])


@PROPS
@given(packing=st.one_of(sum_layouts(), plain_layouts()), data=st.data())
def test_unpack_detects_overflow_of_the_top_slot(packing: Packing, data: st.DataObject) -> None:
    width = packing.slot_bits[-1]
    top_offset = packing.total_bits - width
    half = 1 << (width - 1)
    in_range = data.draw(rows_for(packing, 1))
    lower = packing.pack(in_range)[0] - (int(in_range[0, -1]) << top_offset)  # top slot zeroed
    top = data.draw(
        st.sampled_from([half, 2 * half, -2 * half, 3 * half, -3 * half, -half - 1])
        | st.integers(half, 1 << (width + 64))  # +2**(w-1) and above: past the slot
        | st.integers(-(1 << (width + 64)), -half - 1)
    )
    with pytest.raises(CryptoError, match="overflows"):
        packing.unpack([0, lower + (top << top_offset)])
    # the remainder test also catches anything above the whole layout
    with pytest.raises(CryptoError, match="overflows"):
        packing.unpack([lower + (data.draw(st.sampled_from([1, -1])) << packing.total_bits)])


def test_overflow_of_a_lower_slot_carries_into_the_next_one() -> None:
    """Only the top slot can be checked: a lower slot's overflow is a valid carry.

    Layouts from :meth:`Packing.for_sums` are what keep lower slots in range.
    """
    packing = Packing((8, 8))
    np.testing.assert_array_equal(packing.unpack([128]), [[-128, 1]])
    np.testing.assert_array_equal(packing.unpack([256]), [[0, 1]])


@PROPS
@given(packing=st.one_of(sum_layouts(), plain_layouts()), data=st.data())
def test_pack_rejects_out_of_range_values(packing: Packing, data: st.DataObject) -> None:
    count = data.draw(st.integers(1, 5))
    values = data.draw(rows_for(packing, count))
    row = data.draw(st.integers(0, count - 1))
    slot = data.draw(st.integers(0, packing.slots - 1))
    limit = 1 << packing.value_bits[slot]  # |v| < limit is accepted
    int64_min = -(2**63)
    if limit == 2**63:
        bad = int64_min  # the only int64 outside a 63-bit value range
    else:
        bad = data.draw(
            st.sampled_from([limit, -limit, int64_min])
            | st.integers(limit, 2**63 - 1)
            | st.integers(int64_min, -limit)
        )
    values[row, slot] = bad
    with pytest.raises(CryptoError, match=f"row {row} slot {slot}"):
        packing.pack(values)


def test_pack_rejects_bad_arrays() -> None:
    packing = Packing((8, 8))
    with pytest.raises(CryptoError, match="shape"):
        packing.pack(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(CryptoError, match="shape"):
        packing.pack(np.zeros(2, dtype=np.int64))
    with pytest.raises(CryptoError, match="shape"):
        packing.pack(np.zeros((2, 2), dtype=np.float64))
    assert packing.pack(np.zeros((0, 2), dtype=np.int64)) == []
    assert packing.unpack([]).shape == (0, 2)


def test_pack_rejects_uint64_values_beyond_int64() -> None:
    wrapped = np.array([[2**64 - 1]], dtype=np.uint64)  # would wrap to -1 as int64
    with pytest.raises(CryptoError, match="outside the slot's range"):
        Packing((12,)).pack(wrapped)
    with pytest.raises(CryptoError, match="outside the slot's range"):
        Packing((64,)).pack(np.array([[2**63 + 5]], dtype=np.uint64))


# --- packed ciphertexts ----------------------------------------------------------------------


@CIPHER
@given(data=st.data(), seed=seeds)
def test_packed_histogram_decrypts_to_slot_sums(
    keypair: Keypair, data: st.DataObject, seed: bytes
) -> None:
    pk, sk = keypair
    rows = data.draw(st.integers(1, 30))
    n_features = data.draw(st.integers(1, 2))
    n_bins = data.draw(st.integers(1, 6))
    n_nodes = data.draw(st.integers(1, 2))
    value_bits = data.draw(st.lists(st.integers(0, 50), min_size=1, max_size=3))
    packing = Packing.for_sums(value_bits, rows)
    values = data.draw(rows_for(packing, rows))
    cells = rows * n_features
    bins = np.array(
        data.draw(st.lists(st.integers(0, n_bins - 1), min_size=cells, max_size=cells)),
        dtype=np.int64,
    ).reshape(rows, n_features)
    nodes = np.array(
        data.draw(st.lists(st.integers(-1, n_nodes - 1), min_size=rows, max_size=rows)),
        dtype=np.int64,
    )

    cv = pk.encrypt_ints(packing.pack(values), 0, Drbg(seed))
    hist = cv.histogram(bins, n_bins, nodes=nodes, n_nodes=n_nodes)
    count = len(hist)
    per = packing.per_plaintext(int(pk.n))
    packed = hist.pack(packing)
    assert len(packed) == -(-count // per)
    got = sk.decrypt_packed(packed, packing, count)

    expected = np.zeros((count, packing.slots), dtype=np.int64)
    for i in range(rows):
        if nodes[i] < 0:
            continue
        for f in range(n_features):
            expected[(nodes[i] * n_features + f) * n_bins + bins[i, f]] += values[i]
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("sign", [1, -1])
def test_full_packed_plaintexts_at_the_extreme(keypair: Keypair, sign: int) -> None:
    """Every slot of every packed value at its largest designed sum: no overflow."""
    pk, sk = keypair
    n = int(pk.n)
    room = max_int(n).bit_length()
    terms = 255  # 8 bits of headroom: slot = value_bits + 9
    divisors = [d for d in range(20, 127) if room % d == 0]
    total = divisors[0] if divisors else 100
    first = min(55, total - 18 - 1)
    packing = Packing.for_sums([first, total - 18 - first], terms)
    assert packing.total_bits == total
    per = packing.per_plaintext(n)
    count = 2 * per + 1
    row = np.array([[sign * ((1 << b) - 1) for b in packing.value_bits]], dtype=np.int64)
    one = pk.encrypt_ints(packing.pack(row), 0, Drbg(b"extreme-packing!"))
    summed = one.mul_int(terms)  # the homomorphic sum of `terms` copies
    cv = CipherVector.concat([summed] * count)
    packed = cv.pack(packing)
    assert len(packed) == 3
    got = sk.decrypt_packed(packed, packing, count)
    np.testing.assert_array_equal(got, np.repeat(row * terms, count, axis=0))


def test_decrypt_packed_checks_the_count(keypair: Keypair, rng: Drbg) -> None:
    pk, sk = keypair
    packing = Packing.for_sums([30, 30], 100)
    per = packing.per_plaintext(int(pk.n))
    cv = pk.encrypt_ints([0] * (per + 1), 0, rng).pack(packing)
    assert len(cv) == 2
    with pytest.raises(CryptoError, match="need 1 ciphertexts"):
        sk.decrypt_packed(cv, packing, per)
    with pytest.raises(CryptoError, match="need 3 ciphertexts"):
        sk.decrypt_packed(cv, packing, 2 * per + 1)
    with pytest.raises(CryptoError, match="non-negative"):
        sk.decrypt_packed(cv, packing, -1)
    assert sk.decrypt_packed(cv.select([]), packing, 0).shape == (0, 2)
    np.testing.assert_array_equal(sk.decrypt_packed(cv, packing, 2 * per), 0)


# --- masked layouts: a mask slot on top of every packed value --------------------------------


@PROPS
@given(packing=sum_layouts(max_slots=2), n_bits=st.sampled_from([1024, 2048, 3072]))
def test_masked_layout_fills_the_room_without_costing_plaintexts(
    packing: Packing, n_bits: int
) -> None:
    n = (1 << (n_bits - 1)) + 1
    room = max_int(n).bit_length()
    masked = packing.masked(n)
    assert masked.slot_bits[:-1] == packing.slot_bits
    per = masked.per_plaintext(n)
    assert per >= room // (packing.total_bits + 2)  # as many values as a 2-bit mask allows
    width = masked.slot_bits[-1]
    assert 2 <= width <= 64
    if width < 64:  # the room left over is less than one bit per packed value
        assert room - per * masked.total_bits < per
        assert masked.exposed_bits(n) < packing.total_bits + 1 + 2 / per


@CIPHER
@given(data=st.data(), seed=seeds)
def test_masks_leave_every_honest_slot_as_it_was(
    keypair: Keypair, data: st.DataObject, seed: bytes
) -> None:
    """Packed, masked, decrypted: the honest slots read back exactly, the masks vary."""
    pk, sk = keypair
    n = int(pk.n)
    terms = data.draw(st.integers(1, 300))
    bits = data.draw(st.lists(st.integers(0, 50), min_size=2, max_size=2))
    layout = Packing.for_sums(bits, terms).masked(n)
    honest = Packing.for_sums(bits, terms)
    count = data.draw(st.integers(0, 2 * layout.per_plaintext(n) + 1))
    values = data.draw(rows_for(honest, count)).reshape(count, 2)
    cv = pk.encrypt_ints(honest.pack(values) if count else [], 0, Drbg(seed))
    masks = layout.draw_masks(count, n, Drbg(seed, "masks"))
    assert len(masks) == -(-count // layout.per_plaintext(n))
    packed = cv.pack(layout).add_plain_ints(masks)
    got = sk.decrypt_packed(packed, layout, count)
    np.testing.assert_array_equal(got[:, :2], values)
    if count >= 8:  # the mask slot holds the random mask, not zero
        assert len(np.unique(got[:, 2])) > 1


def test_masks_fit_the_plaintext_when_the_layout_fills_every_bit_of_it() -> None:
    """Slots (51, 40) + a 2-bit mask, 11 per plaintext: 1023 bits, all of max_int's room.
    A modulus whose max_int is just above 2^1022 leaves no margin: a mask whose highest
    slot took its most negative value would exceed max_int (found by hypothesis in CI)."""
    n = 3 * ((1 << 1022) + 5) + 2  # max_int = n // 3 - 1 = 2^1022 + 4: 1023 bits
    layout = Packing.for_sums((43, 32), 75).masked(n)
    assert layout.per_plaintext(n) * layout.total_bits == max_int(n).bit_length()
    for seed in range(200):  # each draw of the top 2-bit slot hits -2 a quarter of the time
        (mask,) = layout.draw_masks(1, n, Drbg(bytes([seed]) * 32, "masks"))
        assert abs(mask) <= max_int(n)


def test_masked_layout_refuses_a_value_too_wide_for_the_key() -> None:
    with pytest.raises(CryptoError, match="and its mask do not fit"):
        Packing((64,) * 16).masked((1 << 1023) + 1)


def test_a_mask_hides_what_was_put_above_the_honest_slots(keypair: Keypair, rng: Drbg) -> None:
    """Plaintexts with data above the honest slots: the mask slot reads back uniform."""
    pk, sk = keypair
    n = int(pk.n)
    layout = Packing.for_sums((20, 20), 100).masked(n)
    width = layout.slot_bits[-1]
    above = sum(layout.slot_bits[:-1])
    count = 400
    secret = np.array([i % 2 for i in range(count)])  # one bit per value, just above
    cv = pk.encrypt_ints([int(b) << above for b in secret], 0, rng)
    packed = cv.pack(layout).add_plain_ints(layout.draw_masks(count, n, rng))
    masks = sk.decrypt_packed(packed, layout, count)[:, 2]
    low_bit = (masks + (1 << (width - 1))) & 1  # the secret's place in the mask slot
    agree = float(np.mean(low_bit == secret))
    assert 0.4 < agree < 0.6, agree  # without the mask every bit would read back (agree 1.0)
