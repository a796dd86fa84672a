"""Tests for Paillier keys: generation, encryption, CRT decryption, obfuscation, phe interop."""

from __future__ import annotations

import hashlib
import pickle

import gmpy2
import numpy as np
import phe
import pytest

from lianmo.crypto import (
    MIN_KEY_BITS,
    CipherVector,
    Drbg,
    PrivateKey,
    PublicKey,
    generate_keypair,
)
from lianmo.errors import CryptoError

Keypair = tuple[PublicKey, PrivateKey]
SEED = b"paillier-test-seed-0123456789abc"


def test_2048_bit_key_generates_and_round_trips() -> None:
    pk, sk = generate_keypair()
    assert pk.bits == MIN_KEY_BITS == 2048
    assert pk.obfuscation_bits == 1024
    x = np.array([3.25, -1.5, 0.0])
    np.testing.assert_array_equal(sk.decrypt(pk.encrypt(x, -6, Drbg(SEED))), x)


def test_small_key_is_refused_without_the_test_flag() -> None:
    with pytest.raises(CryptoError, match="1024 bits is below the 2048-bit minimum"):
        generate_keypair(1024)


def test_from_n_validates(small_test_keypair: Keypair) -> None:
    pk, _ = small_test_keypair
    with pytest.raises(CryptoError, match="1024 bits is below the 2048-bit minimum"):
        PublicKey.from_n(int(pk.n))
    with pytest.raises(CryptoError, match="odd"):
        PublicKey.from_n(int(pk.n) + 1, min_bits=1024)
    with pytest.raises(CryptoError, match="above 1"):
        PublicKey.from_n(1, min_bits=0)
    with pytest.raises(CryptoError, match="must be an int"):
        PublicKey.from_n(float(pk.n), min_bits=1024)  # type: ignore[arg-type]
    with pytest.raises(CryptoError, match="obfuscation_bits"):
        PublicKey(int(pk.n), min_bits=1024, obfuscation_bits=100)


def test_key_attributes(small_test_keypair: Keypair) -> None:
    pk, _ = small_test_keypair
    assert pk.nsquare == pk.n * pk.n
    assert pk.max_int == pk.n // 3 - 1
    assert pk.n_bytes() == int(pk.n).to_bytes(128, "big")
    assert pk.fingerprint == hashlib.sha256(pk.n_bytes()).digest()
    assert pk.ciphertext_bytes == 256
    same = PublicKey.from_n(int(pk.n), min_bits=1024)
    assert same == pk and hash(same) == hash(pk)
    assert pk.to_phe() == phe.PaillierPublicKey(int(pk.n))
    assert PublicKey.from_phe(pk.to_phe(), min_bits=1024) == pk


def test_reprs_hide_secrets(small_test_keypair: Keypair) -> None:
    _, sk = small_test_keypair
    secret = str(int(sk.to_phe().p))
    assert secret not in repr(sk)
    assert "hidden" in repr(sk)


def test_public_key_pickles_without_its_table(small_test_keypair: Keypair) -> None:
    pk, sk = small_test_keypair
    pk.prepare_obfuscation(Drbg(SEED))
    copy = pickle.loads(pickle.dumps(pk))
    assert copy == pk and copy.obfuscation_bits == pk.obfuscation_bits
    assert len(pickle.dumps(pk)) < 1000
    cv = pickle.loads(pickle.dumps(pk.encrypt(np.array([1.5]), -4)))
    assert sk.decrypt(cv)[0] == 1.5


def test_encrypt_decrypt_round_trip(small_test_keypair: Keypair, rng: Drbg) -> None:
    pk, sk = small_test_keypair
    x = np.array([0.0, 1.0, -1.0, 123.456, -98765.4321, 1e-6])
    cv = pk.encrypt(x, -8, rng)
    assert len(cv) == 6 and cv.exponent == -8
    np.testing.assert_allclose(sk.decrypt(cv), x, rtol=0, atol=16.0**-8)


def test_encrypt_ints_and_raw(small_test_keypair: Keypair, rng: Drbg) -> None:
    pk, sk = small_test_keypair
    m = [0, 5, -5, 2**200, -(2**200)]
    cv = pk.encrypt_ints(m, 0, rng)
    assert sk.decrypt_ints(cv) == m
    assert sk.decrypt_raw(cv) == [0, 5, pk.n - 5, 2**200, pk.n - 2**200]
    assert sk.decrypt_ints(pk.encrypt_ints(np.array([7, -7]), -3, rng)) == [7, -7]


def test_encrypt_of_empty_vector(small_test_keypair: Keypair) -> None:
    pk, sk = small_test_keypair
    cv = pk.encrypt(np.array([]), -4)
    assert len(cv) == 0
    assert sk.decrypt(cv).shape == (0,)


def test_decrypt_refuses_another_key(
    small_test_keypair: Keypair, other_test_keypair: Keypair
) -> None:
    pk, _ = small_test_keypair
    _, other_sk = other_test_keypair
    with pytest.raises(CryptoError, match="different public keys"):
        other_sk.decrypt(pk.encrypt(np.array([1.0]), -4))


def test_matches_phe_private_key(small_test_keypair: Keypair) -> None:
    _, sk = small_test_keypair
    phe_sk = sk.to_phe()
    assert PrivateKey.from_phe(phe_sk, min_bits=1024).public_key == sk.public_key
    with pytest.raises(CryptoError, match="below the 2048-bit minimum"):
        PrivateKey.from_phe(phe_sk)


def test_phe_ciphertexts_decrypt_in_lianmo(small_test_keypair: Keypair) -> None:
    pk, sk = small_test_keypair
    phe_pk = pk.to_phe()
    numbers = [phe_pk.encrypt(-3.75), phe_pk.encrypt(2), phe_pk.encrypt(0.1, precision=1e-6)]
    cv = CipherVector.from_phe(pk, numbers)
    assert cv.exponent == min(x.exponent for x in numbers)
    np.testing.assert_allclose(sk.decrypt(cv), [-3.75, 2.0, 0.1], rtol=0, atol=1e-6)


def test_lianmo_ciphertexts_decrypt_in_phe(small_test_keypair: Keypair, rng: Drbg) -> None:
    pk, sk = small_test_keypair
    phe_sk = sk.to_phe()
    x = np.array([-2.5, 0.0, 7.125, -0.001])
    decrypted = [phe_sk.decrypt(e) for e in pk.encrypt(x, -6, rng).to_phe()]
    np.testing.assert_allclose(decrypted, x, rtol=0, atol=16.0**-6)
    assert phe_sk.decrypt(pk.encrypt(np.array([-1.5]), -4).to_phe()[0]) == -1.5


def test_from_phe_refuses_numbers_under_another_key(
    small_test_keypair: Keypair, other_test_keypair: Keypair
) -> None:
    pk, _ = small_test_keypair
    other = other_test_keypair[0].to_phe().encrypt(1)
    with pytest.raises(CryptoError, match="element 1 is under another public key"):
        CipherVector.from_phe(pk, [pk.to_phe().encrypt(1), other])
    with pytest.raises(CryptoError, match="expected phe.EncryptedNumber"):
        CipherVector.from_phe(pk, [1])


def test_two_encryptions_of_the_same_value_differ(small_test_keypair: Keypair) -> None:
    pk, sk = small_test_keypair
    a, b = pk.encrypt(np.array([1.0]), -4), pk.encrypt(np.array([1.0]), -4)
    assert a.values != b.values
    rng = Drbg(SEED)
    c = pk.encrypt(np.array([1.0, 1.0]), -4, rng)
    assert c.values[0] != c.values[1]
    assert list(sk.decrypt(c)) == [1.0, 1.0]


def test_encryption_is_deterministic_given_the_seed(small_test_keypair: Keypair) -> None:
    # a fresh key object: the shared one fixed its base from whichever test used it first
    pk = PublicKey.from_n(int(small_test_keypair[0].n), min_bits=1024)
    x = np.array([1.0, -2.0, 3.5])
    first = pk.encrypt(x, -4, Drbg(SEED)).values
    assert pk.encrypt(x, -4, Drbg(SEED)).values == first
    # A fresh key object (no cached table) replays the same ciphertexts from the seed.
    fresh = PublicKey.from_n(int(pk.n), min_bits=1024)
    assert fresh.encrypt(x, -4, Drbg(SEED)).values == first
    assert pk.encrypt(x, -4, Drbg(SEED, "other")).values != first


def test_obfuscators_are_nth_residues(small_test_keypair: Keypair, rng: Drbg) -> None:
    pk, sk = small_test_keypair
    obfuscators = pk.obfuscators(3, rng) + [pk.obfuscator(rng)]
    assert len(set(obfuscators)) == 4
    assert sk.decrypt_raw(CipherVector(pk, 0, obfuscators)) == [0, 0, 0, 0]
    assert all(gmpy2.gcd(r, pk.n) == 1 for r in obfuscators)


def test_obfuscate_rerandomises_without_changing_plaintexts(
    small_test_keypair: Keypair, other_test_keypair: Keypair, rng: Drbg
) -> None:
    pk, sk = small_test_keypair
    cv = pk.encrypt(np.array([1.25, -4.0]), -4, rng)
    again = pk.obfuscate(cv, rng)
    assert all(a != b for a, b in zip(again.values, cv.values, strict=True))
    assert list(sk.decrypt(again)) == [1.25, -4.0]
    assert list(sk.decrypt(cv.obfuscate(rng))) == [1.25, -4.0]
    with pytest.raises(CryptoError, match="different public keys"):
        other_test_keypair[0].obfuscate(cv, rng)


def test_encrypt_residues_takes_the_whole_plaintext_space(
    small_test_keypair: Keypair, rng: Drbg
) -> None:
    pk, sk = small_test_keypair
    n = int(pk.n)
    values = [0, 5, n // 3 + 7, n - 1]  # beyond max_int: encrypt_ints would refuse these
    assert sk.decrypt_raw(pk.encrypt_residues(values, 0, rng)) == values
    for bad in (-1, n):
        with pytest.raises(CryptoError, match=r"not in \[0, n\)"):
            pk.encrypt_residues([bad], 0, rng)
