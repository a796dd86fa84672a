"""Paillier private key: CRT decryption and encryption modulo p^2 and q^2, phe-compatible.

The key holder can also encrypt faster than anyone else (the guest in SecureBoost):
:meth:`PrivateKey.encrypt` computes the same ciphertexts as
:meth:`PublicKey.encrypt` for the same generator -- ``(1 + m*n) * h**a mod n**2`` --
but modulo ``p**2`` and ``q**2`` with half-size numbers, then joins them by CRT.
"""

from __future__ import annotations

import typing as t

import numpy as np
import numpy.typing as npt
import phe

from lianmo.compute.backend import ComputeBackend, chunk_bounds
from lianmo.crypto import _kernels
from lianmo.crypto.drbg import Drbg
from lianmo.crypto.fixedpoint import decode, decode_ints, encode, encode_ints
from lianmo.crypto.packing import Packing
from lianmo.crypto.public_key import MIN_KEY_BITS, SERIAL, PublicKey, as_mpz
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

    __slots__ = ("public_key", "_p", "_q")

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

    def decrypt_raw(self, cv: CipherVector, backend: ComputeBackend | None = None) -> list[int]:
        """Decrypt to raw plaintexts in ``[0, n)``.

        Parameters
        ----------
        cv : CipherVector
            Ciphertexts under this key.
        backend : ComputeBackend, optional
            Where the chunks run; in this process if omitted. Worker processes receive
            the factors ``p`` and ``q``.

        Returns
        -------
        list of int
            Plaintexts (``gmpy2.mpz``), e.g. masked values.
        """
        self.public_key.check_vector(cv, "decrypt")
        backend = backend or SERIAL
        tasks = [
            _kernels.DecryptTask(self._p, self._q, cv.values[a:b])
            for a, b in chunk_bounds(len(cv), backend.workers, 8)
        ]
        return backend.map_concat(_kernels.decrypt, tasks)

    def decrypt_packed(
        self,
        cv: CipherVector,
        packing: Packing,
        count: int,
        backend: ComputeBackend | None = None,
    ) -> npt.NDArray[np.int64]:
        """Decrypt ciphertexts made by :meth:`CipherVector.pack` and unpack their slots.

        Parameters
        ----------
        cv : CipherVector
            Packed ciphertexts under this key.
        packing : Packing
            Layout of each packed element (the one given to ``pack``).
        count : int
            Number of elements packed (the length before packing).
        backend : ComputeBackend, optional
            Where the decryptions run; in this process if omitted.

        Returns
        -------
        numpy.ndarray
            int64 array of shape ``(count, packing.slots)``.
        """
        per_ct = packing.per_plaintext(int(self.public_key.n))
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise CryptoError(f"decrypt_packed: count must be a non-negative int, got {count!r}")
        if -(-count // per_ct) != len(cv):
            raise CryptoError(
                f"decrypt_packed: {count} packed elements at {per_ct} per ciphertext need "
                f"{-(-count // per_ct)} ciphertexts, got {len(cv)}"
            )
        signed = self.decrypt_ints(cv, backend)
        flat = packing.repeat(per_ct).unpack(signed).reshape(-1, packing.slots)
        return flat[:count]

    def encrypt(
        self,
        values: npt.ArrayLike,
        exponent: int,
        rng: Drbg | None = None,
        backend: ComputeBackend | None = None,
    ) -> CipherVector:
        """Encrypt real values by CRT; same result as ``public_key.encrypt``, faster.

        Parameters
        ----------
        values : numpy.ndarray
            One-dimensional array of finite floats.
        exponent : int
            Fixed-point exponent.
        rng : Drbg, optional
            Source of obfuscation randomness; fresh entropy if omitted.
        backend : ComputeBackend, optional
            Where the chunks run; in this process if omitted.

        Returns
        -------
        CipherVector
            Obfuscated ciphertexts.
        """
        plain = encode(values, exponent, self.public_key.n)
        return self._crt_encrypt(plain, exponent, rng, backend)

    def encrypt_ints(
        self,
        mantissas: t.Sequence[int] | npt.NDArray[np.integer[t.Any]],
        exponent: int,
        rng: Drbg | None = None,
        backend: ComputeBackend | None = None,
    ) -> CipherVector:
        """Encrypt signed mantissas by CRT; same result as ``public_key.encrypt_ints``.

        Parameters
        ----------
        mantissas : sequence of int or integer numpy.ndarray
            Signed mantissas with ``|m| <= max_int``.
        exponent : int
            Fixed-point exponent recorded on the vector.
        rng : Drbg, optional
            Source of obfuscation randomness; fresh entropy if omitted.
        backend : ComputeBackend, optional
            Where the chunks run; in this process if omitted.

        Returns
        -------
        CipherVector
            Obfuscated ciphertexts.
        """
        plain = encode_ints(mantissas, self.public_key.n)
        return self._crt_encrypt(plain, exponent, rng, backend)

    def _crt_encrypt(
        self,
        plaintexts: list[int],
        exponent: int,
        rng: Drbg | None,
        backend: ComputeBackend | None,
    ) -> CipherVector:
        key = self.public_key
        backend = backend or SERIAL
        tasks = [
            _kernels.CrtEncryptTask(self._p, self._q, base, width, chunk, exponents)
            for chunk, base, width, exponents in key.obfuscation_chunks(plaintexts, rng, backend)
        ]
        return CipherVector(key, exponent, backend.map_concat(_kernels.crt_encrypt, tasks))

    def decrypt_ints(self, cv: CipherVector, backend: ComputeBackend | None = None) -> list[int]:
        """Decrypt to signed integer mantissas.

        Parameters
        ----------
        cv : CipherVector
            Ciphertexts under this key.
        backend : ComputeBackend, optional
            Where the chunks run; in this process if omitted.

        Returns
        -------
        list of int
            Signed mantissas at exponent ``cv.exponent``.
        """
        return decode_ints(self.decrypt_raw(cv, backend), self.public_key.n)

    def decrypt(
        self, cv: CipherVector, backend: ComputeBackend | None = None
    ) -> npt.NDArray[np.float64]:
        """Decrypt and decode to float64 values.

        Parameters
        ----------
        cv : CipherVector
            Ciphertexts under this key.
        backend : ComputeBackend, optional
            Where the chunks run; in this process if omitted.

        Returns
        -------
        numpy.ndarray
            ``mantissa * 16**cv.exponent`` per element.
        """
        return decode(self.decrypt_raw(cv, backend), cv.exponent, self.public_key.n)
