"""Tests for Paillier key generation from a Drbg: replayable, well-formed, usable keys."""

from __future__ import annotations

import math

import gmpy2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lianmo.crypto import Drbg, PrivateKey, PublicKey, generate_keypair
from lianmo.crypto.keygen import paillier_primes, random_prime
from lianmo.errors import CryptoError

SEED = b"keygen-test-seed-0123456789abcde"
OTHER_SEED = b"keygen-test-seed-fedcba987654321"
#: Sizes below the 2048-bit minimum: only tests may use them (``insecure_test_size``).
INSECURE_TEST_SIZES = (512, 1024)


def _keypair(seed: bytes, bits: int = 1024) -> tuple[PublicKey, PrivateKey]:
    return generate_keypair(bits, Drbg(seed), insecure_test_size=bits < 2048)


def test_same_seed_gives_the_same_key_and_another_seed_another() -> None:
    n = _keypair(SEED)[0].n
    assert _keypair(SEED)[0].n == n
    assert _keypair(OTHER_SEED)[0].n != n


def test_key_does_not_depend_on_earlier_draws_and_leaves_the_parent_stream_alone() -> None:
    rng = Drbg(SEED)
    rng.random_bytes(100)
    rng.child("masks/round-0").random_bytes(100)
    public, _ = generate_keypair(1024, rng, insecure_test_size=True)
    assert public.n == _keypair(SEED)[0].n
    # keygen reads only its own child stream: the parent goes on where it was
    fresh = Drbg(SEED)
    fresh.random_bytes(100)
    assert rng.random_bytes(32) == fresh.random_bytes(32)


def test_production_size_key_has_exactly_2048_bits_and_replays() -> None:
    public, _ = generate_keypair(2048, Drbg(SEED))
    assert int(public.n).bit_length() == public.bits == 2048
    assert generate_keypair(rng=Drbg(SEED))[0].n == public.n  # 2048 is the default size


@pytest.mark.parametrize("bits", INSECURE_TEST_SIZES)
def test_insecure_test_size_key_has_exactly_its_bits(bits: int) -> None:
    public, _ = _keypair(SEED, bits)
    assert int(public.n).bit_length() == public.bits == bits


@pytest.mark.parametrize("bits", [*INSECURE_TEST_SIZES, 2048])
def test_primes_are_distinct_half_size_primes_with_top_bits_set(bits: int) -> None:
    p, q = paillier_primes(Drbg(SEED), bits)
    assert p != q
    for prime in (p, q):
        assert gmpy2.is_prime(prime)
        assert prime.bit_length() == bits // 2
        assert prime >> (bits // 2 - 2) == 0b11
    n = p * q
    assert n.bit_length() == bits
    assert math.gcd(n, (p - 1) * (q - 1)) == 1
    # generate_keypair's modulus is the product of exactly these primes
    assert _keypair(SEED, bits)[0].n == n


@pytest.mark.parametrize("bits", INSECURE_TEST_SIZES)
def test_insecure_test_size_key_round_trips(bits: int) -> None:
    public, private = _keypair(SEED, bits)
    rng = Drbg(SEED).child("encrypt")
    x = np.array([3.25, -1.5, 0.0, 1e6])
    np.testing.assert_array_equal(private.decrypt(public.encrypt(x, -8, rng)), x)
    ints = [0, 1, -1, 2**40, -(2**40)]
    assert private.decrypt_ints(public.encrypt_ints(ints, 0, rng)) == ints
    assert private.decrypt_ints(private.encrypt_ints(ints, 0, rng)) == ints  # CRT path


@settings(max_examples=30, deadline=None)
@given(seed=st.binary(min_size=16, max_size=32), bits=st.integers(16, 160))
def test_random_prime_has_exactly_its_bits_and_top_two_set(seed: bytes, bits: int) -> None:
    prime = random_prime(Drbg(seed), bits)
    assert gmpy2.is_prime(prime)
    assert prime.bit_length() == bits
    assert prime >> (bits - 2) == 0b11


@pytest.mark.parametrize("bits", [15, 2, 0, -8])
def test_random_prime_refuses_tiny_sizes(bits: int) -> None:
    with pytest.raises(CryptoError, match=f"prime size of {bits} bits is too small"):
        random_prime(Drbg(SEED), bits)


@pytest.mark.parametrize("bits", [1023, 2049])
def test_paillier_primes_refuses_odd_modulus_sizes(bits: int) -> None:
    with pytest.raises(CryptoError, match=f"must be even, got {bits} bits"):
        paillier_primes(Drbg(SEED), bits)


def test_generate_keypair_refuses_insecure_sizes_without_the_test_flag() -> None:
    with pytest.raises(CryptoError, match="1024 bits is below the 2048-bit minimum"):
        generate_keypair(1024, Drbg(SEED))
