"""Paillier private key: CRT decryption modulo p^2 and q^2, interoperable with phe."""

from __future__ import annotations

import typing as t

import gmpy2
import numpy as np
import numpy.typing as npt
import phe

from lianmo.crypto.fixedpoint import decode, decode_ints
from lianmo.crypto.public_key import MIN_KEY_BITS, PublicKey, as_mpz
from lianmo.crypto.vector import CipherVector
from lianmo.errors import CryptoError

Mpz = t.Any  # gmpy2.mpz has no type stubs


class PrivateKey:
    """A Paillier private key decrypting by CRT modulo ``p**2`` and ``q**2``.

    Parameters
    ----------
    public_key : PublicKey
        The matching public key.
    p, q : int
        The distinct prime factors of ``public_key.n``.
    """

    __slots__ = ("public_key", "_p", "_q", "_psquare", "_qsquare", "_p_inv", "_hp", "_hq")

    def __init__(self, public_key: PublicKey, p: int, q: int) -> None:
        p_mpz, q_mpz = as_mpz(p, "prime p"), as_mpz(q, "prime q")
        if p_mpz == q_mpz or p_mpz * q_mpz != public_key.n:
            raise CryptoError(
                "private key factors do not match the public key (need distinct p, q with "
                "p * q == n); load the private key that belongs to this public key"
            )
        if p_mpz > q_mpz:
            p_mpz, q_mpz = q_mpz, p_mpz
        self.public_key = public_key
        self._p, self._q = p_mpz, q_mpz
        self._psquare, self._qsquare = p_mpz * p_mpz, q_mpz * q_mpz
        self._p_inv = gmpy2.invert(p_mpz, q_mpz)
        self._hp = self._h(p_mpz, self._psquare)
        self._hq = self._h(q_mpz, self._qsquare)

    def _h(self, prime: Mpz, prime_square: Mpz) -> Mpz:
        g_power = gmpy2.powmod(self.public_key.n + 1, prime - 1, prime_square)
        return gmpy2.invert((g_power - 1) // prime, prime)

    @classmethod
    def from_phe(cls, sk: phe.PaillierPrivateKey, *, min_bits: int = MIN_KEY_BITS) -> PrivateKey:
        """Wrap a ``phe.PaillierPrivateKey``.

        Parameters
        ----------
        sk : phe.PaillierPrivateKey
            A phe private key.
        min_bits : int, optional
            Smallest modulus accepted.

        Returns
        -------
        PrivateKey
            The equivalent key; its ``public_key`` is a new :class:`PublicKey`.
        """
        if not isinstance(sk, phe.PaillierPrivateKey):
            raise CryptoError(f"expected a phe.PaillierPrivateKey, got {type(sk).__name__}")
        return cls(PublicKey.from_phe(sk.public_key, min_bits=min_bits), sk.p, sk.q)

    def to_phe(self) -> phe.PaillierPrivateKey:
        """Return the equivalent ``phe.PaillierPrivateKey``."""
        return phe.PaillierPrivateKey(self.public_key.to_phe(), int(self._p), int(self._q))

    def __repr__(self) -> str:
        return f"PrivateKey(public_key={self.public_key!r}, factors=<hidden>)"

    def decrypt_raw(self, cv: CipherVector) -> list[int]:
        """Decrypt to raw plaintexts in ``[0, n)``.

        Parameters
        ----------
        cv : CipherVector
            Ciphertexts under this key.

        Returns
        -------
        list of int
            Plaintexts (``gmpy2.mpz``), e.g. masked values.
        """
        self.public_key.check_vector(cv, "decrypt")
        p, q, hp, hq, p_inv = self._p, self._q, self._hp, self._hq, self._p_inv
        # powmod_base_list runs the loop in C and releases the GIL.
        mod_p = gmpy2.powmod_base_list(cv.values, p - 1, self._psquare)
        mod_q = gmpy2.powmod_base_list(cv.values, q - 1, self._qsquare)
        out: list[int] = []
        for xp, xq in zip(mod_p, mod_q, strict=True):
            mp = (xp - 1) // p * hp % p
            mq = (xq - 1) // q * hq % q
            out.append(mp + (mq - mp) * p_inv % q * p)
        return out

    def decrypt_ints(self, cv: CipherVector) -> list[int]:
        """Decrypt to signed integer mantissas.

        Parameters
        ----------
        cv : CipherVector
            Ciphertexts under this key.

        Returns
        -------
        list of int
            Signed mantissas at exponent ``cv.exponent``.
        """
        return decode_ints(self.decrypt_raw(cv), self.public_key.n)

    def decrypt(self, cv: CipherVector) -> npt.NDArray[np.float64]:
        """Decrypt and decode to float64 values.

        Parameters
        ----------
        cv : CipherVector
            Ciphertexts under this key.

        Returns
        -------
        numpy.ndarray
            ``mantissa * 16**cv.exponent`` per element.
        """
        return decode(self.decrypt_raw(cv), cv.exponent, self.public_key.n)
