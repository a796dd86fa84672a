"""Bad crypto inputs from a peer: each is refused with its class and a message naming the
party, the protocol step, the value at fault and what to do.

Keys here are the session's 1024-bit test keys (``insecure_test_size``, see conftest.py);
the 2048-bit limit is checked on moduli that are only the right size, never generated.
"""

from __future__ import annotations

import re

import pytest

from lianmo.crypto import CipherVector, Drbg, PrivateKey, PublicKey, generate_keypair
from lianmo.errors import CryptoError
from lianmo.transport.messages import EncryptedVector, PublicKeyMsg
from lianmo.wire.convert import cipher_from_msg, cipher_to_msg, public_key_from_msg

Keypair = tuple[PublicKey, PrivateKey]
SENDER = "platform"
TAG = "lr.cross_out"


def _odd_modulus(bits: int) -> int:
    """An odd number of exactly ``bits`` bits: all a key-size check looks at (no keygen)."""
    return (1 << (bits - 1)) | 1


def _key_msg(n: int) -> PublicKeyMsg:
    return PublicKeyMsg(n=n.to_bytes((n.bit_length() + 7) // 8, "big"))


# ---- 2. a Paillier key under 2048 bits on a production path ------------------------------


def test_keygen_refuses_a_small_key_without_the_test_flag() -> None:
    with pytest.raises(CryptoError) as info:
        generate_keypair(1024, Drbg(b"k" * 32))
    assert str(info.value) == (
        "Paillier key of 1024 bits is below the 2048-bit minimum; use bits=2048 or more"
    )


def test_a_peers_small_public_key_is_refused_naming_the_peer(
    small_test_keypair: Keypair,
) -> None:
    pk, _ = small_test_keypair  # a real 1024-bit key, made on the insecure test-size path
    with pytest.raises(CryptoError) as info:
        public_key_from_msg(_key_msg(int(pk.n)), "arbiter", key_bits=2048)
    assert str(info.value) == (
        "'arbiter' sent a Paillier public key this job refuses: Paillier key of 1024 bits "
        "is below the 2048-bit minimum; generate a key of at least 2048 bits (3072 for "
        "long-lived keys)"
    )
    # Only the explicitly named test switch lets it through.
    assert public_key_from_msg(
        _key_msg(int(pk.n)), "arbiter", key_bits=2048, insecure_test_key=True
    )


def test_a_job_asking_for_3072_bits_refuses_a_2048_bit_key() -> None:
    n = _odd_modulus(2048)
    assert public_key_from_msg(_key_msg(n), "guest", key_bits=2048).bits == 2048
    with pytest.raises(
        CryptoError,
        match=r"^'guest' sent a Paillier public key this job refuses: "
        r"Paillier key of 2048 bits is below the 3072-bit minimum; generate a key "
        r"of at least 3072 bits",
    ):
        public_key_from_msg(_key_msg(n), "guest", key_bits=3072)


def test_a_key_size_below_2048_in_the_job_request_is_refused_even_if_asked_for() -> None:
    # key_bits below the floor never lowers it: production minimum stays 2048.
    with pytest.raises(CryptoError, match="1024 bits is below the 2048-bit minimum"):
        public_key_from_msg(_key_msg(_odd_modulus(1024)), "arbiter", key_bits=1024)


# ---- 3. ciphertexts not in Z*_{n^2} -------------------------------------------------------


def _with_value(msg: EncryptedVector, index: int, value: int) -> EncryptedVector:
    width = msg.width
    data = bytearray(msg.data)
    data[index * width : (index + 1) * width] = value.to_bytes(width, "big")
    return EncryptedVector(
        key_id=msg.key_id, exponent=msg.exponent, count=msg.count, width=width, data=bytes(data)
    )


@pytest.mark.parametrize("bad", ["zero", "multiple-of-p", "multiple-of-q", "n^2", "above-n^2"])
def test_ciphertexts_outside_z_star_n2_are_refused_naming_sender_step_and_index(
    small_test_keypair: Keypair, rng: Drbg, bad: str
) -> None:
    pk, sk = small_test_keypair
    phe_sk = sk.to_phe()
    p, q = int(phe_sk.p), int(phe_sk.q)
    value = {
        "zero": 0,
        "multiple-of-p": 7 * p,
        "multiple-of-q": 11 * q,
        "n^2": int(pk.nsquare),
        "above-n^2": int(pk.nsquare) + 12345,
    }[bad]
    msg = _with_value(cipher_to_msg(pk.encrypt_ints([1, 2, 3], 0, rng)), 2, value)
    fp = pk.fingerprint.hex()[:16]
    if bad.startswith("multiple"):
        expected = (
            f"'{SENDER}' sent invalid ciphertexts as '{TAG}': ciphertext at index 2 shares a "
            f"factor with n (not in Z*_{{n^2}}) for key {fp}; the payload is malformed or "
            "forged: ask the sender's operator to check its lianmo version and key"
        )
    else:
        expected = (
            f"'{SENDER}' sent invalid ciphertexts as '{TAG}': ciphertext at index 2 is "
            f"outside (0, n^2) for key {fp}; the payload is corrupted or under another key"
        )
    with pytest.raises(CryptoError) as info:
        cipher_from_msg(msg, pk, SENDER, TAG, count=3)
    assert str(info.value) == expected


def test_a_truncated_ciphertext_payload_is_refused_naming_sender_and_step(
    small_test_keypair: Keypair, rng: Drbg
) -> None:
    pk, _ = small_test_keypair
    msg = cipher_to_msg(pk.encrypt_ints([1, 2], 0, rng))
    short = EncryptedVector(
        key_id=msg.key_id, exponent=0, count=2, width=msg.width, data=msg.data[:-1]
    )
    with pytest.raises(CryptoError) as info:
        cipher_from_msg(short, pk, SENDER, TAG)
    assert str(info.value) == (
        f"'{SENDER}' sent invalid ciphertexts as '{TAG}': packed integers: expected 2 x 256 = "
        "512 bytes, got 511; the payload is truncated or was packed with another width"
    )


# ---- 4. ciphertexts under another key ------------------------------------------------------


def test_ciphertexts_with_another_key_id_are_refused_naming_both_keys(
    small_test_keypair: Keypair, other_test_keypair: Keypair, rng: Drbg
) -> None:
    pk, _ = small_test_keypair
    other = other_test_keypair[0]
    msg = cipher_to_msg(other.encrypt_ints([1, 2], 0, rng))
    with pytest.raises(CryptoError) as info:
        cipher_from_msg(msg, pk, SENDER, TAG)
    assert str(info.value) == (
        f"'{SENDER}' sent '{TAG}' encrypted under another public key (key id "
        f"{other.fingerprint.hex()[:16]}) than this job's ({pk.fingerprint.hex()[:16]}); the "
        "parties disagree on the job's Paillier key: check they run the same job spec"
    )


def test_arithmetic_and_decryption_refuse_vectors_under_another_key(
    small_test_keypair: Keypair, other_test_keypair: Keypair, rng: Drbg
) -> None:
    pk, _ = small_test_keypair
    other_pk, other_sk = other_test_keypair
    mine = pk.encrypt_ints([1, 2], 0, rng)
    theirs = other_pk.encrypt_ints([1, 2], 0, rng)
    got, want = other_pk.fingerprint.hex()[:16], pk.fingerprint.hex()[:16]
    with pytest.raises(CryptoError) as info:
        mine.add(theirs)
    assert str(info.value) == (
        f"add: ciphertexts under different public keys (got key {got}, expected {want}); "
        "combine only vectors encrypted under the same key"
    )
    with pytest.raises(CryptoError, match=re.escape(f"(got key {want}, expected {got})")):
        other_sk.decrypt(mine)


def test_foreign_width_ciphertexts_under_a_forged_key_id_are_refused(
    small_test_keypair: Keypair,
) -> None:
    pk, _ = small_test_keypair
    # The key id matches, but the ciphertexts are as wide as a 1536-bit key's.
    forged = EncryptedVector(
        key_id=pk.fingerprint, exponent=0, count=1, width=384, data=b"\x01" * 384
    )
    with pytest.raises(CryptoError) as info:
        cipher_from_msg(forged, pk, SENDER, TAG)
    assert str(info.value) == (
        f"'{SENDER}' sent invalid ciphertexts as '{TAG}': ciphertext width is 384 bytes, "
        "expected 256 for a 1024-bit key; the sender used another key or format"
    )


def test_from_bytes_without_a_key_names_what_it_got() -> None:
    with pytest.raises(CryptoError, match="from_bytes needs a PublicKey, got int"):
        CipherVector.from_bytes(7, 0, 0, 1, b"")  # type: ignore[arg-type]
