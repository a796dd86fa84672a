"""Fuzz the receiver-side checks of ``wire.convert``.

Arbitrary payloads must fail with :class:`ProtocolError` or :class:`CryptoError` whose
message names the sender and the protocol step (tag); ciphertexts outside Z*_{n^2} or
under another key are refused; valid vectors round-trip through the wire payloads.
Keys are small (512-bit, ``insecure_test_size=True``) and generated once per module.
"""

from __future__ import annotations

import gmpy2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from lianmo.crypto import CipherVector, Drbg, PrivateKey, PublicKey, generate_keypair
from lianmo.errors import CryptoError, ProtocolError
from lianmo.transport import serde
from lianmo.transport.messages import (
    BitMatrix,
    EncryptedVector,
    FloatVector,
    IndexList,
    IntVector,
    Payload,
    PointList,
    PublicKeyMsg,
    Signal,
)
from lianmo.wire import convert as wire

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY_BITS = 512  # far too small for real use: only via insecure_test_size
SENDER, TAG = "platform", "lr.residual"
Keys = tuple[PublicKey, PrivateKey, PublicKey]


@pytest.fixture(scope="module")
def keys() -> Keys:
    """This job's keypair and an unrelated public key, from fixed seeds."""
    public, private = generate_keypair(
        KEY_BITS, Drbg(b"lianmo-fuzz-wire-fixed-seed-0000", "tests"), insecure_test_size=True
    )
    other, _ = generate_keypair(
        KEY_BITS, Drbg(b"lianmo-fuzz-wire-fixed-seed-1111", "tests"), insecure_test_size=True
    )
    return public, private, other


def _names_sender_and_tag(exc: Exception) -> None:
    assert SENDER in str(exc) and TAG in str(exc), str(exc)


# ---- arbitrary payloads of any type ---------------------------------------------------

small = st.integers(0, 64)
blobs = st.binary(max_size=200)
any_payload: st.SearchStrategy[Payload] = st.one_of(
    st.builds(PublicKeyMsg, n=blobs),
    st.builds(
        EncryptedVector,
        key_id=st.binary(max_size=40),
        exponent=st.integers(-(2**31), 2**31 - 1),
        count=st.one_of(small, st.integers(0, 2**32 - 1)),
        width=st.one_of(small, st.integers(0, 2**32 - 1)),
        data=blobs,
    ),
    st.builds(IntVector, count=small, width=small, data=blobs),
    st.builds(FloatVector, data=blobs),
    st.builds(PointList, count=small, width=small, data=blobs),
    st.builds(IndexList, data=blobs),
    st.builds(BitMatrix, rows=small, cols=small, data=blobs),
    st.builds(Signal, name=st.text(max_size=8), value=st.text(max_size=30)),
)


@FUZZ
@given(any_payload, st.one_of(st.none(), small))
def test_cipher_from_msg_refuses_anything_malformed(
    keys: Keys, msg: Payload, count: int | None
) -> None:
    public = keys[0]
    try:
        cv = wire.cipher_from_msg(msg, public, SENDER, TAG, count=count)
    except (ProtocolError, CryptoError) as exc:
        _names_sender_and_tag(exc)
        return
    assert wire.cipher_to_msg(cv) == msg


@FUZZ
@given(any_payload, small)
@example(IntVector(count=1, width=0, data=b""), 1)
def test_ints_from_msg_refuses_anything_malformed(msg: Payload, count: int) -> None:
    try:
        values = wire.ints_from_msg(msg, SENDER, TAG, count)
    except ProtocolError as exc:
        _names_sender_and_tag(exc)
        return
    assert isinstance(msg, IntVector)
    assert wire.ints_to_msg(values, msg.width) == msg


@FUZZ
@given(any_payload)
@example(Signal(name="n", value="9" * 5000))  # int() refuses more than 4300 digits
@example(Signal(name="n", value="\u0663"))  # ARABIC-INDIC DIGIT THREE
@example(Signal(name="n", value=""))
def test_count_from_msg_refuses_anything_but_plain_digits(msg: Payload) -> None:
    try:
        count = wire.count_from_msg(msg, SENDER, TAG)
    except ProtocolError as exc:
        _names_sender_and_tag(exc)
        return
    assert isinstance(msg, Signal) and str(count) == (msg.value.lstrip("0") or "0")


@FUZZ
@given(any_payload, small)
def test_floats_from_msg_refuses_anything_malformed(msg: Payload, count: int) -> None:
    try:
        values = wire.floats_from_msg(msg, SENDER, TAG, count)
    except ProtocolError as exc:
        _names_sender_and_tag(exc)
        return
    assert np.isfinite(values).all() and wire.floats_to_msg(values) == msg


@FUZZ
@given(any_payload, st.one_of(st.none(), small), st.one_of(st.none(), small), st.booleans())
def test_indices_from_msg_refuses_anything_malformed(
    msg: Payload, count: int | None, below: int | None, allow_none: bool
) -> None:
    try:
        values = wire.indices_from_msg(
            msg, SENDER, TAG, count=count, below=below, allow_none=allow_none
        )
    except ProtocolError as exc:
        _names_sender_and_tag(exc)
        return
    assert count is None or len(values) == count
    assert below is None or all(-1 <= v < below for v in values)
    assert allow_none or (values >= 0).all()


@FUZZ
@given(any_payload, st.integers(0, 8), st.integers(0, 20))
@example(BitMatrix(rows=2, cols=0, data=b""), 2, 0)
@example(BitMatrix(rows=1, cols=3, data=b"\x08"), 1, 3)  # a padding bit set
def test_bits_from_msg_refuses_anything_malformed(msg: Payload, rows: int, cols: int) -> None:
    try:
        matrix = wire.bits_from_msg(msg, SENDER, TAG, rows, cols)
    except ProtocolError as exc:
        _names_sender_and_tag(exc)
        return
    assert matrix.shape == (rows, cols) and wire.bits_to_msg(matrix) == msg


@FUZZ
@given(st.one_of(any_payload, st.builds(PublicKeyMsg, n=st.binary(max_size=80))), st.booleans())
@example(PublicKeyMsg(n=b""), True)
@example(PublicKeyMsg(n=b"\x02"), True)  # even
@example(PublicKeyMsg(n=b"\x01"), True)  # not above 1
@example(PublicKeyMsg(n=b"\x03"), False)  # far below 2048 bits
def test_public_key_from_msg_refuses_unusable_keys(msg: Payload, insecure: bool) -> None:
    try:
        key = wire.public_key_from_msg(msg, SENDER, key_bits=2048, insecure_test_key=insecure)
    except (ProtocolError, CryptoError) as exc:
        assert SENDER in str(exc), str(exc)
        return
    assert isinstance(msg, PublicKeyMsg) and key.n == int.from_bytes(msg.n, "big")
    assert insecure or key.bits >= 2048


def test_public_key_round_trips(keys: Keys) -> None:
    public = keys[0]
    msg = serde.decode_payload(*serde.encode_payload(PublicKeyMsg(n=public.n_bytes())))
    assert wire.public_key_from_msg(msg, SENDER, key_bits=512, insecure_test_key=True) == public


# ---- ciphertext vectors: Z*_{n^2}, keys, round trips ----------------------------------


@st.composite
def units(draw: st.DrawFn, key: PublicKey) -> int:
    """An element of Z*_{n^2}: a valid ciphertext, whatever it decrypts to."""
    value = draw(st.integers(1, int(key.nsquare) - 1))
    assume(gmpy2.gcd(value, key.n) == 1)
    return value


@FUZZ
@given(st.data(), st.integers(0, 6), st.integers(-wire.MAX_EXPONENT, wire.MAX_EXPONENT))
def test_valid_ciphertexts_round_trip(
    keys: Keys, data: st.DataObject, count: int, exp: int
) -> None:
    public = keys[0]
    values = [data.draw(units(public)) for _ in range(count)]
    msg = wire.cipher_to_msg(CipherVector(public, exp, [gmpy2.mpz(v) for v in values]))
    received = serde.decode_payload(*serde.encode_payload(msg))
    cv = wire.cipher_from_msg(received, public, SENDER, TAG, count=count)
    assert [int(c) for c in cv.values] == values and cv.exponent == exp


@FUZZ
@given(st.data())
def test_ciphertexts_under_this_key_id_parse_or_are_refused(
    keys: Keys, data: st.DataObject
) -> None:
    public = keys[0]
    count = data.draw(st.integers(0, 4))
    width = data.draw(st.sampled_from([public.ciphertext_bytes, public.ciphertext_bytes - 1, 0]))
    size = data.draw(st.sampled_from([count * width, count * width + 1, max(count * width - 1, 0)]))
    msg = EncryptedVector(
        key_id=public.fingerprint,
        exponent=data.draw(st.integers(-(2**31), 2**31 - 1)),
        count=count,
        width=width,
        data=data.draw(st.binary(min_size=size, max_size=size)),
    )
    try:
        cv = wire.cipher_from_msg(msg, public, SENDER, TAG, count=count)
    except (CryptoError, ProtocolError) as exc:  # ProtocolError: exponent out of range
        _names_sender_and_tag(exc)
        return
    assert all(0 < c < public.nsquare and gmpy2.gcd(c, public.n) == 1 for c in cv.values)
    assert wire.cipher_to_msg(cv) == msg


def _bad_values(key: PublicKey, private: PrivateKey) -> list[int]:
    sk = private.to_phe()
    n2, width = int(key.nsquare), key.ciphertext_bytes
    return [0, sk.p, sk.q, int(key.n), 3 * sk.p, 7 * sk.q, n2, n2 + 1, 256**width - 1]


@FUZZ
@given(st.data(), st.integers(1, 5))
def test_ciphertexts_outside_the_unit_group_are_refused(
    keys: Keys, data: st.DataObject, count: int
) -> None:
    public, private, _ = keys
    values = [data.draw(units(public)) for _ in range(count)]
    index = data.draw(st.integers(0, count - 1))
    values[index] = data.draw(st.sampled_from(_bad_values(public, private)))
    width = public.ciphertext_bytes
    msg = EncryptedVector(
        key_id=public.fingerprint,
        exponent=-6,
        count=count,
        width=width,
        data=b"".join(v.to_bytes(width, "big") for v in values),
    )
    with pytest.raises(CryptoError, match=rf"index {index}\b") as info:
        wire.cipher_from_msg(msg, public, SENDER, TAG, count=count)
    _names_sender_and_tag(info.value)


@FUZZ
@given(st.data(), st.integers(0, 4))
def test_a_vector_under_another_key_is_refused(keys: Keys, data: st.DataObject, count: int) -> None:
    public, _, other = keys
    values = [gmpy2.mpz(data.draw(units(other))) for _ in range(count)]
    msg = wire.cipher_to_msg(CipherVector(other, -6, values))
    with pytest.raises(CryptoError, match="another public key") as info:
        wire.cipher_from_msg(msg, public, SENDER, TAG)
    _names_sender_and_tag(info.value)


@FUZZ
@given(st.integers(0, 8), st.integers(0, 300), st.binary(max_size=300))
def test_ciphertexts_of_the_wrong_width_or_length_are_refused(
    keys: Keys, count: int, width: int, data: bytes
) -> None:
    public = keys[0]
    assume(width != public.ciphertext_bytes or len(data) != count * width)
    msg = EncryptedVector(
        key_id=public.fingerprint, exponent=0, count=count, width=width, data=data
    )
    with pytest.raises(CryptoError) as info:
        wire.cipher_from_msg(msg, public, SENDER, TAG)
    _names_sender_and_tag(info.value)


@pytest.mark.parametrize("exponent", [-65, 65, -(2**31), 2**31 - 1])
def test_a_ciphertext_exponent_out_of_range_is_refused_before_any_rescaling(
    keys: Keys, exponent: int
) -> None:
    public = keys[0]
    msg = wire.cipher_to_msg(public.encrypt_ints([1, 2], 0, Drbg(b"e" * 32)))
    bad = EncryptedVector(
        key_id=msg.key_id, exponent=exponent, count=msg.count, width=msg.width, data=msg.data
    )
    with pytest.raises(ProtocolError, match=rf"'{SENDER}' sent '{TAG}' at fixed-point exponent"):
        wire.cipher_from_msg(bad, public, SENDER, TAG)
