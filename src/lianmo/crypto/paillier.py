"""Paillier facade: the crypto interface every layer above crypto programs against.

Protocols use only these names: :func:`generate_keypair`, ``PublicKey.from_n``,
``PublicKey.encrypt`` / ``encrypt_ints`` / ``n_bytes`` / ``fingerprint``,
``PrivateKey.decrypt`` / ``decrypt_raw``, and :class:`CipherVector`'s ``add``,
``mul_int``, ``dot_ints``, ``matvec_t``, ``obfuscate``, ``to_bytes`` / ``from_bytes``.
A faster engine replaces the implementation behind these names without touching
protocol code; ``tests/test_layering.py`` keeps everything above crypto importing
Paillier only from here.

Keys come from :mod:`lianmo.crypto.keygen` (primes drawn from a DRBG); arithmetic runs
on raw ``gmpy2.mpz`` integers (:class:`~lianmo.crypto.vector.CipherVector`). Encryption
with fast obfuscation is in :mod:`lianmo.crypto.public_key` (with the security note), CRT
decryption in :mod:`lianmo.crypto.private_key`.
"""

from __future__ import annotations

from lianmo.crypto.bytes_codec import fixed_bytes_to_ints, int_to_fixed_bytes
from lianmo.crypto.drbg import Drbg
from lianmo.crypto.keygen import paillier_primes
from lianmo.crypto.packing import MAX_SLOT_BITS, Packing
from lianmo.crypto.private_key import PrivateKey
from lianmo.crypto.public_key import DEFAULT_KEY_BITS, MIN_KEY_BITS, PublicKey
from lianmo.crypto.vector import CipherVector
from lianmo.errors import CryptoError

__all__ = [
    "DEFAULT_KEY_BITS",
    "MAX_SLOT_BITS",
    "MIN_KEY_BITS",
    "CipherVector",
    "Packing",
    "PrivateKey",
    "PublicKey",
    "fixed_bytes_to_ints",
    "generate_keypair",
    "int_to_fixed_bytes",
]

_TEST_FLOOR_BITS = 256


def generate_keypair(
    bits: int = DEFAULT_KEY_BITS, rng: Drbg | None = None, *, insecure_test_size: bool = False
) -> tuple[PublicKey, PrivateKey]:
    """Generate a Paillier keypair whose primes come from ``rng``.

    Parameters
    ----------
    bits : int, optional
        Modulus size; at least :data:`MIN_KEY_BITS`.
    rng : Drbg, optional
        Source of the primes. Protocols pass the party's job DRBG, so that replaying
        the job regenerates the same key; fresh entropy if omitted.
    insecure_test_size : bool, optional
        Allow smaller keys (down to 256 bits). Only unit tests may set this.

    Returns
    -------
    tuple of (PublicKey, PrivateKey)
        The public key is ``private.public_key``.
    """
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise CryptoError(f"key size must be an int number of bits, got {bits!r}")
    if bits < MIN_KEY_BITS and not insecure_test_size:
        raise CryptoError(
            f"Paillier key of {bits} bits is below the {MIN_KEY_BITS}-bit minimum; "
            f"use bits={MIN_KEY_BITS} or more"
        )
    if bits < _TEST_FLOOR_BITS:
        raise CryptoError(f"Paillier key of {bits} bits is too small even for tests; use 512+")
    p, q = paillier_primes(rng or Drbg.from_entropy(), bits)
    public = PublicKey.from_n(p * q, min_bits=min(bits, MIN_KEY_BITS))
    private = PrivateKey(public, p, q)
    return public, private
