"""CipherVector: Paillier ciphertexts as raw gmpy2 integers under one key and one exponent.

The type and its elementwise arithmetic live here. The reductions that run in chunks on
a compute backend (matrix-vector product, histogram, packing) are in
:mod:`lianmo.crypto.reductions`, and the conversions to and from bytes and phe numbers,
with the checks on what is received, in :mod:`lianmo.crypto.vector_codec`; the methods
of the same names here call them.
"""

from __future__ import annotations

import typing as t

import gmpy2
import numpy as np
import numpy.typing as npt

from lianmo.crypto import _fastexp, reductions, vector_codec
from lianmo.crypto._checks import as_int
from lianmo.crypto.fixedpoint import BASE, encode_ints
from lianmo.errors import CryptoError

if t.TYPE_CHECKING:
    import phe

    from lianmo.compute.backend import ComputeBackend
    from lianmo.crypto.drbg import Drbg
    from lianmo.crypto.packing import Packing
    from lianmo.crypto.public_key import PublicKey

Mpz = t.Any  # gmpy2.mpz has no type stubs


class CipherVector:
    """Ciphertexts (``gmpy2.mpz`` in Z*_{n^2}) under one key at one fixed-point exponent.

    Parameters
    ----------
    key : PublicKey
        The key every value is encrypted under.
    exponent : int
        Fixed-point exponent shared by every plaintext.
    values : list of gmpy2.mpz
        The ciphertexts. Build vectors with :meth:`PublicKey.encrypt` or
        :meth:`from_bytes`, which validate; this constructor trusts its input.

    Notes
    -----
    Results of arithmetic are not re-randomised: obfuscate before sending.
    """

    __slots__ = ("key", "exponent", "values")

    def __init__(self, key: PublicKey, exponent: int, values: list[Mpz]) -> None:
        self.key = key
        self.exponent = as_int(exponent, "CipherVector exponent")
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"CipherVector(len={len(self)}, exponent={self.exponent}, key={self.key!r})"

    def _with(self, values: list[Mpz], exponent: int | None = None) -> CipherVector:
        return CipherVector(self.key, self.exponent if exponent is None else exponent, values)

    def _check_same(
        self, other: object, operation: str, *, same_length: bool = False
    ) -> CipherVector:
        self.key.check_vector(other, operation)
        other = t.cast(CipherVector, other)
        if other.exponent != self.exponent:
            raise CryptoError(
                f"{operation}: exponents differ ({self.exponent} vs {other.exponent}); "
                "bring both to the smaller one with decrease_exponent_to"
            )
        if same_length and len(other) != len(self):
            raise CryptoError(f"{operation}: lengths differ ({len(self)} vs {len(other)})")
        return other

    def select(self, indices: t.Sequence[int] | npt.NDArray[np.integer[t.Any]]) -> CipherVector:
        """Return the elements at ``indices`` (repeats allowed, negatives not).

        Parameters
        ----------
        indices : sequence of int or integer numpy.ndarray
            Positions in ``[0, len(self))``.

        Returns
        -------
        CipherVector
            The selected ciphertexts, same key and exponent.
        """
        index = np.asarray(indices)
        if index.size == 0:
            return self._with([])
        if index.ndim != 1 or index.dtype.kind not in "iu":
            raise CryptoError(
                f"select expects a 1-D sequence of ints, got dtype {index.dtype} "
                f"shape {index.shape}"
            )
        if int(index.min()) < 0 or int(index.max()) >= len(self):
            raise CryptoError(
                f"select: indices must lie in [0, {len(self)}), got range "
                f"[{int(index.min())}, {int(index.max())}]"
            )
        values = self.values
        return self._with([values[i] for i in index.tolist()])

    @classmethod
    def concat(cls, vectors: t.Sequence[CipherVector]) -> CipherVector:
        """Concatenate vectors under the same key and exponent.

        Parameters
        ----------
        vectors : sequence of CipherVector
            At least one vector.

        Returns
        -------
        CipherVector
            All values in order.
        """
        if not vectors:
            raise CryptoError("concat needs at least one CipherVector to know the key")
        first = vectors[0]
        values: list[Mpz] = []
        for vector in vectors:
            first._check_same(vector, "concat")
            values.extend(vector.values)
        return first._with(values)

    def add(self, other: CipherVector) -> CipherVector:
        """Return the elementwise homomorphic sum ``Enc(a_i + b_i)``.

        Parameters
        ----------
        other : CipherVector
            Same key, exponent and length.

        Returns
        -------
        CipherVector
            The sums.
        """
        other = self._check_same(other, "add", same_length=True)
        nsquare = self.key.nsquare
        return self._with([a * b % nsquare for a, b in zip(self.values, other.values, strict=True)])

    def sub(self, other: CipherVector) -> CipherVector:
        """Return the elementwise homomorphic difference ``Enc(a_i - b_i)``.

        Used for histogram subtraction (sibling = parent - child). All inverses come from
        one modular inversion (Montgomery's trick).

        Parameters
        ----------
        other : CipherVector
            Same key, exponent and length.

        Returns
        -------
        CipherVector
            The differences.
        """
        other = self._check_same(other, "sub", same_length=True)
        nsquare = self.key.nsquare
        inverses = _fastexp.batch_invert(other.values, nsquare)
        return self._with([a * b % nsquare for a, b in zip(self.values, inverses, strict=True)])

    def add_plain_ints(
        self, mantissas: t.Sequence[int] | npt.NDArray[np.integer[t.Any]]
    ) -> CipherVector:
        """Add signed plaintext mantissas (at this vector's exponent) elementwise.

        Parameters
        ----------
        mantissas : sequence of int or integer numpy.ndarray
            One signed integer per element.

        Returns
        -------
        CipherVector
            ``Enc(m_i + mantissas[i])``.
        """
        plain = encode_ints(mantissas, self.key.n)
        if len(plain) != len(self):
            raise CryptoError(f"add_plain_ints: lengths differ ({len(self)} vs {len(plain)})")
        n, nsquare = self.key.n, self.key.nsquare
        return self._with(
            [c * (m * n + 1) % nsquare for c, m in zip(self.values, plain, strict=True)]
        )

    def mul_int(self, k: int) -> CipherVector:
        """Multiply every plaintext by the signed integer ``k`` (exponent unchanged).

        Parameters
        ----------
        k : int
            Signed scalar; negative values use the modular inverse.

        Returns
        -------
        CipherVector
            ``Enc(k * m_i)``.
        """
        scalar = as_int(k, "mul_int scalar")
        return self._with(gmpy2.powmod_base_list(self.values, scalar, self.key.nsquare))

    def decrease_exponent_to(self, new_exponent: int) -> CipherVector:
        """Return the same values at a smaller exponent (mantissas times ``16**diff``).

        Parameters
        ----------
        new_exponent : int
            Target exponent, at most ``self.exponent``.

        Returns
        -------
        CipherVector
            Equal plaintext values with exponent ``new_exponent``.
        """
        target = as_int(new_exponent, "new exponent")
        if target > self.exponent:
            raise CryptoError(
                f"cannot raise the exponent from {self.exponent} to {target} without "
                "decrypting; bring the other operand down instead"
            )
        scaled = self.mul_int(BASE ** (self.exponent - target))
        return scaled._with(scaled.values, target)

    def sum(self) -> CipherVector:
        """Return the length-1 vector encrypting the sum of all plaintexts."""
        nsquare = self.key.nsquare
        total = gmpy2.mpz(1)
        for c in self.values:
            total = total * c % nsquare
        return self._with([total])

    def prefix_sums(self, block: int) -> CipherVector:
        """Return running sums restarting every ``block`` elements (cumulative histograms).

        Element ``i`` encrypts the sum of elements ``block * (i // block)`` to ``i``; one
        modular multiplication per element.

        Parameters
        ----------
        block : int
            Block length, ``>= 1``, dividing ``len(self)``.

        Returns
        -------
        CipherVector
            Same length, key and exponent. Not re-randomised: obfuscate before sending.
        """
        block = as_int(block, "block")
        if block < 1 or len(self) % block:
            raise CryptoError(
                f"prefix_sums: block {block} must be >= 1 and divide the length {len(self)}"
            )
        nsquare = self.key.nsquare
        out: list[Mpz] = []
        for start in range(0, len(self), block):
            running = gmpy2.mpz(1)
            for c in self.values[start : start + block]:
                running = running * c % nsquare
                out.append(running)
        return self._with(out)

    def matvec_t(
        self,
        Xq: npt.NDArray[np.integer[t.Any]],
        xq_exponent: int,
        backend: ComputeBackend | None = None,
    ) -> CipherVector:
        """Return ``Enc(Xq.T @ m)`` for an integer matrix ``Xq`` of shape (len(self), k).

        Parameters
        ----------
        Xq : numpy.ndarray
            Integer (int64) matrix, one row per ciphertext.
        xq_exponent : int
            Fixed-point exponent of ``Xq``; the result has ``self.exponent + xq_exponent``.
        backend : ComputeBackend, optional
            Where the chunks run (groups of columns, or of rows for few columns); in
            this process if omitted.

        Returns
        -------
        CipherVector
            Length ``k``; element ``j`` encrypts ``sum_i Xq[i, j] * m_i``. Computed per
            column by signed bucket multi-exponentiation, not one powmod per entry.
        """
        exponent = self.exponent + as_int(xq_exponent, "xq_exponent")
        values = reductions.matvec_t(self.values, self.key.nsquare, Xq, backend)
        return self._with(values, exponent)

    def dot_ints(
        self,
        q: npt.NDArray[np.integer[t.Any]],
        q_exponent: int,
        backend: ComputeBackend | None = None,
    ) -> CipherVector:
        """Return the length-1 vector ``Enc(sum_i q[i] * m_i)`` (see :meth:`matvec_t`).

        Parameters
        ----------
        q : numpy.ndarray
            One-dimensional integer (int64) array, one entry per ciphertext.
        q_exponent : int
            Fixed-point exponent of ``q``; the result has ``self.exponent + q_exponent``.
        backend : ComputeBackend, optional
            Where the chunks run; in this process if omitted.

        Returns
        -------
        CipherVector
            Length 1.
        """
        if not isinstance(q, np.ndarray) or q.ndim != 1:
            shape = q.shape if isinstance(q, np.ndarray) else type(q).__name__
            raise CryptoError(f"dot_ints expects a 1-D integer numpy array, got {shape}")
        return self.matvec_t(q.reshape(-1, 1), q_exponent, backend)

    def histogram(
        self,
        bins: npt.NDArray[np.integer[t.Any]],
        n_bins: int,
        *,
        nodes: npt.NDArray[np.integer[t.Any]] | None = None,
        n_nodes: int = 1,
        backend: ComputeBackend | None = None,
    ) -> CipherVector:
        """Return encrypted sums per (node, feature, bin): a histogram of the plaintexts.

        Parameters
        ----------
        bins : numpy.ndarray
            Integer array of shape (len(self), n_features): the bin of each element for
            each feature, in ``[0, n_bins)``.
        n_bins : int
            Bins per feature.
        nodes : numpy.ndarray, optional
            Integer array of shape (len(self),): the node of each element in
            ``[0, n_nodes)``, or ``-1`` to leave it out. All in node 0 if omitted.
        n_nodes : int, optional
            Number of nodes.
        backend : ComputeBackend, optional
            Where the chunks (groups of rows) run; in this process if omitted.

        Returns
        -------
        CipherVector
            Length ``n_nodes * n_features * n_bins``; element
            ``(node * n_features + f) * n_bins + b`` encrypts the sum over the elements
            of ``node`` in bin ``b`` of feature ``f`` (an encryption of 0, the value
            ``1``, where none fell). Each element costs one modular multiplication per
            feature. Not re-randomised: obfuscate before sending.
        """
        values = reductions.histogram(
            self.values, self.key.nsquare, bins, n_bins, nodes, n_nodes, backend
        )
        return self._with(values)

    def pack(self, packing: Packing, backend: ComputeBackend | None = None) -> CipherVector:
        """Pack ``packing.per_plaintext(n)`` consecutive ciphertexts into one.

        Each element must encrypt a signed value laid out by ``packing`` (for example
        a histogram sum of packed (g, h)). Element ``j`` of a group is shifted up by
        ``j * packing.total_bits`` bits and the group multiplied together, so one
        decryption (:meth:`PrivateKey.decrypt_packed`) recovers them all.

        Parameters
        ----------
        packing : Packing
            The layout of each element's plaintext.
        backend : ComputeBackend, optional
            Where the chunks run; in this process if omitted.

        Returns
        -------
        CipherVector
            ``ceil(len(self) / per_plaintext)`` ciphertexts. Not re-randomised:
            obfuscate before sending.
        """
        key = self.key
        return self._with(reductions.shift_pack(self.values, key.n, key.nsquare, packing, backend))

    def obfuscate(
        self, rng: Drbg | None = None, backend: ComputeBackend | None = None
    ) -> CipherVector:
        """Return re-randomised ciphertexts (see :meth:`PublicKey.obfuscate`).

        Parameters
        ----------
        rng : Drbg, optional
            Source of randomness; fresh entropy if omitted.
        backend : ComputeBackend, optional
            Where the chunks run; in this process if omitted.

        Returns
        -------
        CipherVector
            Same plaintexts, unlinkable ciphertexts.
        """
        return self.key.obfuscate(self, rng, backend)

    def to_bytes(self) -> tuple[int, bytes]:
        """Return ``(width, data)``: each ciphertext as ``width`` big-endian bytes.

        Returns
        -------
        tuple of (int, bytes)
            ``width`` is the byte length of ``n**2``.
        """
        return vector_codec.to_bytes(self.key, self.values)

    @classmethod
    def from_bytes(
        cls, key: PublicKey, exponent: int, count: int, width: int, data: bytes
    ) -> CipherVector:
        """Parse and validate ciphertexts received from a peer.

        Parameters
        ----------
        key : PublicKey
            Key the ciphertexts claim to be under.
        exponent : int
            Fixed-point exponent.
        count : int
            Number of ciphertexts.
        width : int
            Bytes per ciphertext; must equal ``key.ciphertext_bytes``.
        data : bytes
            ``count * width`` bytes.

        Returns
        -------
        CipherVector
            The ciphertexts, each checked to lie in Z*_{n^2}.
        """
        return cls(key, exponent, vector_codec.from_bytes(key, count, width, data))

    def to_phe(self) -> list[phe.EncryptedNumber]:
        """Return one ``phe.EncryptedNumber`` per element (same ciphertext and exponent)."""
        return vector_codec.to_phe(self.key, self.exponent, self.values)

    @classmethod
    def from_phe(cls, key: PublicKey, numbers: t.Sequence[phe.EncryptedNumber]) -> CipherVector:
        """Build a vector from phe numbers, lowering all to the smallest exponent.

        Parameters
        ----------
        key : PublicKey
            Key every number must be under.
        numbers : sequence of phe.EncryptedNumber
            The numbers; their ciphertexts are taken as they are (not re-obfuscated).

        Returns
        -------
        CipherVector
            Exponent ``min(number.exponent)`` (0 for an empty sequence).
        """
        exponent, values = vector_codec.from_phe(key, numbers)
        return cls(key, exponent, values)
