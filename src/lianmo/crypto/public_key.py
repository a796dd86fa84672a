"""Paillier public key: vector encryption and fast DJN-style obfuscation on gmpy2 integers.

Arithmetic runs on raw ``gmpy2.mpz`` integers: a :class:`CipherVector` is one list of
mpz under one key and one fixed-point exponent, never a Python object per number.
With ``g = n + 1``, encryption is ``c = (1 + m*n) * r**n mod n**2`` (``g**m = 1 + m*n``
needs no powmod).

Security note on obfuscation. Drawing a fresh ``r`` and computing ``r**n mod n**2``
costs a full-size powmod per ciphertext. Following the fast variant of
Damgård, Jurik and Nielsen ("A generalization of Paillier's public-key system with
applications to electronic voting", Int. J. Inf. Secur. 2010, section on the
efficient variant), each key gets one base ``h = x**n mod n**2`` for a random ``x`` in
Z*_n, and the obfuscator is ``h**a`` for a fresh random exponent ``a`` of
``obfuscation_bits`` bits (default ``n.bit_length() // 2``, i.e. 1024 bits for a
2048-bit key, the default SecretFlow's HEU uses). Semantic security then rests on DCR
plus a short-exponent assumption: that ``h**a`` for such short ``a`` cannot be told
apart from a uniformly random n-th residue. Generic square-root attacks on a 1024-bit
``a`` cost about ``2**512`` steps, far beyond the ~112-bit level of a 2048-bit modulus.
Shorter exponents (e.g. 400 bits) are faster still but rest on a stronger assumption;
they need ``allow_short_obfuscation=True``. ``h`` need not be secret; ``a`` must be (it
comes from the party's private :class:`~lianmo.crypto.drbg.Drbg`). With 10-bit windows
over precomputed powers of ``h``, an obfuscator costs one modmul per 10 bits of ``a``
instead of a 2048-bit powmod; the table takes 54 MB per 2048-bit key and process.
Unlike DJN and HEU, keys come from phe (no admissible-modulus conditions) and ``h`` is
``x**n`` rather than ``(-x**2)**n``; ``docs/crypto.md`` gives the full argument, this
difference and references.

The base ``h`` is fixed once per key object, lazily and under a lock, from the first
Drbg used with the key: ``x`` comes from ``rng.child("lianmo/paillier-obfuscation/<fp>")``
so it depends on that generator's seed only, and fixing it never shifts the generator's
own stream. Call :meth:`PublicKey.prepare_obfuscation` at job start to pin which
generator that is. Encryption and re-randomisation run in chunks on a compute backend
(:mod:`lianmo.compute`); the random exponents are drawn before splitting, so the
ciphertexts do not depend on the backend. Everything else computes on ciphertexts
without re-randomising: obfuscate every vector (:meth:`PublicKey.obfuscate`) before it
leaves the party.
"""

from __future__ import annotations

import hashlib
import threading
import typing as t

import gmpy2
import numpy as np
import numpy.typing as npt
import phe

from lianmo.compute.backend import ComputeBackend, SerialBackend, chunk_bounds
from lianmo.crypto import _fastexp, _kernels
from lianmo.crypto.drbg import Drbg
from lianmo.crypto.fixedpoint import encode, encode_ints, max_int
from lianmo.crypto.vector import CipherVector
from lianmo.errors import CryptoError

MIN_KEY_BITS = 2048
DEFAULT_KEY_BITS = 2048
_SHORT_OBFUSCATION_FLOOR = 256
_OBF_LABEL = "lianmo/paillier-obfuscation/"
SERIAL = SerialBackend()
#: Fewest values worth a chunk of their own on a worker.
MIN_CHUNK = 64

Mpz = t.Any  # gmpy2.mpz has no type stubs


def as_mpz(value: object, what: str) -> Mpz:
    """Return ``value`` as ``gmpy2.mpz``, raising CryptoError naming ``what`` if not an int."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise CryptoError(f"{what} must be an int, got {type(value).__name__}")
    return gmpy2.mpz(value)


class PublicKey:
    """A Paillier public key (``g = n + 1``) with a cached fast-obfuscation table.

    Parameters
    ----------
    n : int
        The modulus, odd, of at least ``min_bits`` bits.
    min_bits : int, optional
        Smallest modulus accepted; lower it only in unit tests.
    obfuscation_bits : int, optional
        Bit length of obfuscation exponents, rounded up to whole bytes; by default (and
        at least, unless ``allow_short_obfuscation``) ``n.bit_length() // 2``.
    allow_short_obfuscation : bool, optional
        Opt in to exponents shorter than ``n.bit_length() // 2`` (at least 256 bits);
        faster, but secure only under a stronger assumption (see ``docs/crypto.md``).
    """

    __slots__ = (
        "n",
        "nsquare",
        "bits",
        "fingerprint",
        "max_int",
        "obfuscation_bits",
        "_obf_lock",
        "_obf_base",
    )

    def __init__(
        self,
        n: int,
        *,
        min_bits: int = MIN_KEY_BITS,
        obfuscation_bits: int | None = None,
        allow_short_obfuscation: bool = False,
    ) -> None:
        n_mpz = as_mpz(n, "Paillier modulus n")
        bits = int(n_mpz.bit_length())
        if n_mpz <= 1 or n_mpz % 2 == 0:
            raise CryptoError(
                f"Paillier modulus must be an odd integer above 1, got one of {bits} bits "
                f"that is {'even' if n_mpz > 1 else 'not above 1'}; send the key's n unchanged"
            )
        if bits < min_bits:
            raise CryptoError(
                f"Paillier key of {bits} bits is below the {min_bits}-bit minimum; "
                f"generate a key of at least {min_bits} bits (3072 for long-lived keys)"
            )
        default_bits = bits // 2
        floor = _SHORT_OBFUSCATION_FLOOR if allow_short_obfuscation else default_bits
        wanted = default_bits if obfuscation_bits is None else obfuscation_bits
        if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < floor:
            hint = (
                ""
                if allow_short_obfuscation
                else "; shorter exponents need allow_short_obfuscation=True (docs/crypto.md)"
            )
            raise CryptoError(
                f"obfuscation_bits must be an int of at least {floor}, got "
                f"{obfuscation_bits!r}; leave it unset for the default ({default_bits}){hint}"
            )
        self.n: Mpz = n_mpz
        self.nsquare: Mpz = n_mpz * n_mpz
        self.bits = bits
        self.fingerprint = hashlib.sha256(self.n_bytes()).digest()
        self.max_int: Mpz = gmpy2.mpz(max_int(n_mpz))
        self.obfuscation_bits = -(-wanted // 8) * 8
        self._obf_lock = threading.Lock()
        self._obf_base: Mpz | None = None

    @classmethod
    def from_n(cls, n: int, *, min_bits: int = MIN_KEY_BITS) -> PublicKey:
        """Build a key from its modulus, e.g. as received from a peer.

        Parameters
        ----------
        n : int
            The modulus.
        min_bits : int, optional
            Smallest modulus accepted.

        Returns
        -------
        PublicKey
            The validated key.
        """
        return cls(n, min_bits=min_bits)

    @classmethod
    def from_phe(cls, pk: phe.PaillierPublicKey, *, min_bits: int = MIN_KEY_BITS) -> PublicKey:
        """Wrap a ``phe.PaillierPublicKey``.

        Parameters
        ----------
        pk : phe.PaillierPublicKey
            A phe public key (phe always uses ``g = n + 1``).
        min_bits : int, optional
            Smallest modulus accepted.

        Returns
        -------
        PublicKey
            The equivalent key.
        """
        if not isinstance(pk, phe.PaillierPublicKey):
            raise CryptoError(f"expected a phe.PaillierPublicKey, got {type(pk).__name__}")
        if pk.g != pk.n + 1:
            raise CryptoError("phe public key has g != n + 1; lianmo only supports g = n + 1")
        return cls(pk.n, min_bits=min_bits)

    def to_phe(self) -> phe.PaillierPublicKey:
        """Return the equivalent ``phe.PaillierPublicKey``."""
        return phe.PaillierPublicKey(int(self.n))

    def n_bytes(self) -> bytes:
        """Return ``n`` as minimal-length big-endian bytes (what the fingerprint hashes)."""
        return bytes(self.n.to_bytes((self.bits + 7) // 8, "big"))

    @property
    def ciphertext_bytes(self) -> int:
        """Byte length of ``n**2``: the fixed width of one serialised ciphertext."""
        return (int(self.nsquare.bit_length()) + 7) // 8

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and bool(self.n == other.n)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"PublicKey(bits={self.bits}, fingerprint={self.fingerprint.hex()[:16]})"

    def __reduce__(self) -> tuple[t.Any, ...]:
        # The lock cannot be pickled; the base is kept so the copy obfuscates identically.
        base = None if self._obf_base is None else int(self._obf_base)
        return (_rebuild_public_key, (int(self.n), self.obfuscation_bits, base))

    def encrypt(
        self,
        values: npt.ArrayLike,
        exponent: int,
        rng: Drbg | None = None,
        backend: ComputeBackend | None = None,
    ) -> CipherVector:
        """Encrypt real values at a fixed-point exponent.

        Parameters
        ----------
        values : numpy.ndarray
            One-dimensional array of finite floats.
        exponent : int
            Fixed-point exponent (see :mod:`lianmo.crypto.fixedpoint`).
        rng : Drbg, optional
            Source of obfuscation randomness; fresh entropy if omitted.
        backend : ComputeBackend, optional
            Where the chunks run; in this process if omitted.

        Returns
        -------
        CipherVector
            Obfuscated ciphertexts.
        """
        return self._encrypt_plain(encode(values, exponent, self.n), exponent, rng, backend)

    def encrypt_ints(
        self,
        mantissas: t.Sequence[int] | npt.NDArray[np.integer[t.Any]],
        exponent: int,
        rng: Drbg | None = None,
        backend: ComputeBackend | None = None,
    ) -> CipherVector:
        """Encrypt signed integer mantissas that already carry ``exponent``.

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
        return self._encrypt_plain(encode_ints(mantissas, self.n), exponent, rng, backend)

    def encrypt_residues(
        self,
        plaintexts: t.Sequence[int],
        exponent: int,
        rng: Drbg | None = None,
        backend: ComputeBackend | None = None,
    ) -> CipherVector:
        """Encrypt plaintexts given as residues in ``[0, n)``, with no signed encoding.

        For values that use the whole plaintext space, such as a mask uniform over most
        of ``Z_n`` (:mod:`lianmo.protocols.two_party_lr`'s top mask); signed mantissas go
        through :meth:`encrypt_ints`.

        Raises
        ------
        CryptoError
            If a plaintext is not an int in ``[0, n)``.
        """
        n = int(self.n)
        values = [int(v) for v in plaintexts]
        bad = next((i for i, v in enumerate(values) if not 0 <= v < n), None)
        if bad is not None:
            raise CryptoError(f"encrypt_residues: plaintext {bad} is not in [0, n)")
        return self._encrypt_plain(values, exponent, rng, backend)

    def _encrypt_plain(
        self,
        plaintexts: list[int],
        exponent: int,
        rng: Drbg | None,
        backend: ComputeBackend | None,
    ) -> CipherVector:
        values = self._obfuscate_values(plaintexts, rng, backend, plain=True)
        return CipherVector(self, exponent, values)

    def draw_exponents(self, count: int, rng: Drbg | None) -> tuple[Mpz, bytes]:
        """Return the obfuscation base ``h`` and ``count`` fresh exponents drawn from ``rng``.

        Parameters
        ----------
        count : int
            How many exponents.
        rng : Drbg, optional
            Source of randomness; fresh entropy if omitted.

        Returns
        -------
        tuple of (gmpy2.mpz, bytes)
            ``h`` and ``count`` little-endian exponents of ``obfuscation_bits // 8``
            bytes each, in the order they are used.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise CryptoError(f"obfuscator count must be a non-negative int, got {count!r}")
        rng = rng or Drbg.from_entropy()
        base = self.obfuscation_base(rng)
        return base, rng.random_bytes(count * (self.obfuscation_bits // 8))

    def obfuscation_chunks(
        self, values: list[Mpz], rng: Drbg | None, backend: ComputeBackend
    ) -> list[tuple[list[Mpz], Mpz, int, bytes]]:
        """Draw exponents for ``values`` and split both into chunks for ``backend``.

        Parameters
        ----------
        values : list of gmpy2.mpz
            Plaintexts or ciphertexts, one obfuscator each.
        rng : Drbg, optional
            Source of the exponents; fresh entropy if omitted.
        backend : ComputeBackend
            The backend whose workers the chunks are for.

        Returns
        -------
        list of tuple
            ``(values chunk, h, exponent bytes each, exponents chunk)`` in order; the
            exponents are drawn before splitting, so results do not depend on chunking.
        """
        base, exponents = self.draw_exponents(len(values), rng)
        width = self.obfuscation_bits // 8
        return [
            (values[a:b], base, width, exponents[a * width : b * width])
            for a, b in chunk_bounds(len(values), backend.workers, MIN_CHUNK)
        ]

    def _obfuscate_values(
        self,
        values: list[Mpz],
        rng: Drbg | None,
        backend: ComputeBackend | None,
        *,
        plain: bool,
    ) -> list[Mpz]:
        backend = backend or SERIAL
        tasks = [
            _kernels.ObfuscateTask(self.n, base, width, chunk, exponents, plain)
            for chunk, base, width, exponents in self.obfuscation_chunks(values, rng, backend)
        ]
        return backend.map_concat(_kernels.obfuscate, tasks)

    def prepare_obfuscation(self, rng: Drbg | None = None) -> None:
        """Fix the base ``h`` (from ``rng``'s seed) unless fixed, and build its table here.

        Parameters
        ----------
        rng : Drbg, optional
            Generator whose seed fixes the base ``h``; fresh entropy if omitted.
        """
        _kernels.fixed_base_table(
            self.obfuscation_base(rng), self.obfuscation_bits // 8, self.nsquare
        )

    def obfuscation_base(self, rng: Drbg | None = None) -> Mpz:
        """Return the key's obfuscation base ``h = x**n mod n**2``, fixing it on first use.

        Parameters
        ----------
        rng : Drbg, optional
            Generator whose seed fixes ``x`` if ``h`` is not fixed yet; fresh entropy if
            omitted.

        Returns
        -------
        gmpy2.mpz
            ``h``, an n-th residue; public, the same for every later call.
        """
        base = self._obf_base
        if base is not None:
            return base
        with self._obf_lock:
            if self._obf_base is None:
                source = (rng or Drbg.from_entropy()).child(_OBF_LABEL + self.fingerprint.hex())
                x = gmpy2.mpz(0)
                while x <= 1 or gmpy2.gcd(x, self.n) != 1:
                    x = gmpy2.mpz(source.randbelow(int(self.n)))
                self._obf_base = gmpy2.powmod(x, self.n, self.nsquare)
            return self._obf_base

    def obfuscators(self, count: int, rng: Drbg | None = None) -> list[Mpz]:
        """Return ``count`` fresh obfuscators ``h**a mod n**2`` (random n-th residues).

        Parameters
        ----------
        count : int
            How many to draw.
        rng : Drbg, optional
            Source of the exponents ``a``; fresh entropy if omitted.

        Returns
        -------
        list of gmpy2.mpz
            The obfuscators, drawn in order from ``rng``'s stream.
        """
        base, exponents = self.draw_exponents(count, rng)
        if not count:
            return []
        width = self.obfuscation_bits // 8
        table = _kernels.fixed_base_table(base, width, self.nsquare)
        digits = _fastexp.exponent_digits(exponents, width, _kernels.PUBLIC_WINDOW)
        return _fastexp.fixed_base_powers(table, digits, self.nsquare)

    def obfuscator(self, rng: Drbg | None = None) -> Mpz:
        """Return one fresh obfuscator (see :meth:`obfuscators`).

        Parameters
        ----------
        rng : Drbg, optional
            Source of the exponent; fresh entropy if omitted.

        Returns
        -------
        gmpy2.mpz
            A random n-th residue modulo ``n**2``.
        """
        return self.obfuscators(1, rng)[0]

    def obfuscate(
        self, cv: CipherVector, rng: Drbg | None = None, backend: ComputeBackend | None = None
    ) -> CipherVector:
        """Re-randomise every ciphertext of ``cv`` by a fresh obfuscator.

        Parameters
        ----------
        cv : CipherVector
            Ciphertexts under this key.
        rng : Drbg, optional
            Source of randomness; fresh entropy if omitted.
        backend : ComputeBackend, optional
            Where the chunks run; in this process if omitted.

        Returns
        -------
        CipherVector
            Same plaintexts, unlinkable ciphertexts.
        """
        self.check_vector(cv, "obfuscate")
        values = self._obfuscate_values(cv.values, rng, backend, plain=False)
        return CipherVector(self, cv.exponent, values)

    def check_vector(self, cv: object, operation: str) -> None:
        """Raise :class:`CryptoError` unless ``cv`` is a CipherVector under this key.

        Parameters
        ----------
        cv : object
            The value to check.
        operation : str
            Name of the operation, used in the error message.
        """
        if not isinstance(cv, CipherVector):
            raise CryptoError(f"{operation} expects a CipherVector, got {type(cv).__name__}")
        if cv.key.fingerprint != self.fingerprint:
            raise CryptoError(
                f"{operation}: ciphertexts under different public keys (got key "
                f"{cv.key.fingerprint.hex()[:16]}, expected {self.fingerprint.hex()[:16]}); "
                "combine only vectors encrypted under the same key"
            )


def _rebuild_public_key(n: int, obfuscation_bits: int, base: int | None = None) -> PublicKey:
    key = PublicKey(
        n,
        min_bits=n.bit_length(),
        obfuscation_bits=obfuscation_bits,
        allow_short_obfuscation=obfuscation_bits < n.bit_length() // 2,
    )
    if base is not None:
        key._obf_base = gmpy2.mpz(base)
    return key
