"""Ciphertexts to and from bytes and phe numbers, each checked to lie in Z*_{n^2}.

What :meth:`CipherVector.from_bytes <lianmo.crypto.vector.CipherVector.from_bytes>`
and :meth:`~lianmo.crypto.vector.CipherVector.from_phe` accept from outside this
process: everything received is checked here before it becomes a vector.
"""

from __future__ import annotations

import typing as t

import gmpy2
import phe

from lianmo.crypto.bytes_codec import fixed_bytes_to_mpz, int_to_fixed_bytes
from lianmo.errors import CryptoError

if t.TYPE_CHECKING:
    from lianmo.crypto.public_key import PublicKey

__all__ = ["check_units", "from_bytes", "from_phe", "to_bytes", "to_phe"]

Mpz = t.Any  # gmpy2.mpz has no type stubs


def to_bytes(key: PublicKey, values: list[Mpz]) -> tuple[int, bytes]:
    """Return ``(width, data)``: each ciphertext as ``key.ciphertext_bytes`` big-endian bytes."""
    width = key.ciphertext_bytes
    return width, int_to_fixed_bytes(values, width)


def from_bytes(key: PublicKey, count: int, width: int, data: bytes) -> list[Mpz]:
    """Parse ``count`` ciphertexts of ``width`` bytes under ``key``, checked to be units."""
    from lianmo.crypto.public_key import PublicKey  # runtime import: module cycle

    if not isinstance(key, PublicKey):
        raise CryptoError(f"from_bytes needs a PublicKey, got {type(key).__name__}")
    if width != key.ciphertext_bytes:
        raise CryptoError(
            f"ciphertext width is {width} bytes, expected {key.ciphertext_bytes} for a "
            f"{key.bits}-bit key; the sender used another key or format"
        )
    values = fixed_bytes_to_mpz(data, count, width)
    check_units(values, key)
    return values


def to_phe(key: PublicKey, exponent: int, values: list[Mpz]) -> list[phe.EncryptedNumber]:
    """Return one ``phe.EncryptedNumber`` per ciphertext, at ``exponent``."""
    pk = key.to_phe()
    return [phe.EncryptedNumber(pk, int(c), exponent) for c in values]


def from_phe(key: PublicKey, numbers: t.Sequence[phe.EncryptedNumber]) -> tuple[int, list[Mpz]]:
    """Return ``(exponent, ciphertexts)`` of phe numbers under ``key``, checked to be units.

    Every number is lowered to the smallest exponent among them (0 for none).
    """
    for index, number in enumerate(numbers):
        if not isinstance(number, phe.EncryptedNumber):
            raise CryptoError(
                f"from_phe: element {index} is {type(number).__name__}, "
                "expected phe.EncryptedNumber"
            )
        if number.public_key.n != key.n:
            raise CryptoError(
                f"from_phe: element {index} is under another public key than "
                f"{key.fingerprint.hex()[:16]}; ciphertexts under different public keys"
            )
    exponent = min((number.exponent for number in numbers), default=0)
    lowered = [x if x.exponent == exponent else x.decrease_exponent_to(exponent) for x in numbers]
    values = [gmpy2.mpz(x.ciphertext(be_secure=False)) for x in lowered]
    check_units(values, key)
    return exponent, values


def check_units(values: list[Mpz], key: PublicKey) -> None:
    """Raise CryptoError naming the first value outside Z*_{n^2}."""
    n, nsquare = key.n, key.nsquare
    product = gmpy2.mpz(1)
    for c in values:
        if not 0 < c < nsquare:
            break
        product = product * c % n
    else:
        # One gcd for the batch: the product mod n shares a factor with n iff some c does.
        if gmpy2.gcd(product, n) == 1:
            return
    for index, c in enumerate(values):
        if not 0 < c < nsquare:
            raise CryptoError(
                f"ciphertext at index {index} is outside (0, n^2) for key "
                f"{key.fingerprint.hex()[:16]}; the payload is corrupted or under another key"
            )
        if gmpy2.gcd(c, n) != 1:
            raise CryptoError(
                f"ciphertext at index {index} shares a factor with n (not in Z*_{{n^2}}) for "
                f"key {key.fingerprint.hex()[:16]}; the payload is malformed or forged: ask the "
                "sender's operator to check its lianmo version and key"
            )
    raise CryptoError("ciphertext batch failed the Z*_{n^2} check")  # pragma: no cover
