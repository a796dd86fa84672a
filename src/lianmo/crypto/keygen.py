"""Paillier key generation from a :class:`~lianmo.crypto.drbg.Drbg`, so a job's key replays.

A party draws its Paillier primes from its job DRBG: replaying the job from the party's
seed then regenerates the very same key, and the public key it sent can be checked byte
for byte. Each prime is the first prime at or above a uniformly drawn odd candidate of
``bits`` bits with the two top bits set (so ``n = p * q`` has exactly ``2 * bits``
bits); GMP's ``next_prime`` finds it, with a Baillie-PSW test plus Miller-Rabin rounds.
Both primes have the same length, so ``gcd(n, (p - 1)(q - 1)) = 1`` as Paillier needs.
"""

from __future__ import annotations

import gmpy2

from lianmo.crypto.drbg import Drbg
from lianmo.errors import CryptoError


def random_prime(rng: Drbg, bits: int) -> int:
    """The first prime at or above a random ``bits``-bit odd number with its top two bits set."""
    if bits < 16:
        raise CryptoError(f"prime size of {bits} bits is too small")
    while True:
        start = rng.randbits(bits) | (0b11 << (bits - 2)) | 1
        prime = gmpy2.next_prime(start - 1)
        if prime.bit_length() == bits:  # overflowed past 2**bits: draw again
            return int(prime)


def paillier_primes(rng: Drbg, n_bits: int) -> tuple[int, int]:
    """Two distinct primes of ``n_bits // 2`` bits each whose product has ``n_bits`` bits."""
    if n_bits % 2:
        raise CryptoError(f"Paillier modulus size must be even, got {n_bits} bits")
    source = rng.child(f"paillier-keygen/{n_bits}")
    p = random_prime(source, n_bits // 2)
    while True:
        q = random_prime(source, n_bits // 2)
        if q != p:
            return p, q
