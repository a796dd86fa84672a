"""CipherVector: Paillier ciphertexts as raw gmpy2 integers under one key and one exponent."""

from __future__ import annotations

import operator
import typing as t

import gmpy2
import numpy as np
import numpy.typing as npt
import phe

from lianmo.compute.backend import ComputeBackend, SerialBackend, chunk_bounds
from lianmo.crypto import _fastexp, _kernels
from lianmo.crypto.bytes_codec import fixed_bytes_to_mpz, int_to_fixed_bytes
from lianmo.crypto.fixedpoint import BASE, encode_ints
from lianmo.errors import CryptoError

if t.TYPE_CHECKING:
    from lianmo.crypto.drbg import Drbg
    from lianmo.crypto.packing import Packing
    from lianmo.crypto.public_key import PublicKey

Mpz = t.Any  # gmpy2.mpz has no type stubs
_INT64_MIN = np.iinfo(np.int64).min
_SERIAL = SerialBackend()
_MIN_ROWS = 256  # fewest rows worth a chunk of their own


def _as_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise CryptoError(f"{what} must be an int, got {type(value).__name__}")
    return operator.index(value)


def _int64_matrix(Xq: object, rows: int, what: str) -> npt.NDArray[np.int64]:
    """Return ``Xq`` as a 2-D int64 array with ``rows`` rows, or raise CryptoError."""
    if not isinstance(Xq, np.ndarray) or Xq.dtype.kind not in "iu":
        kind = Xq.dtype if isinstance(Xq, np.ndarray) else type(Xq).__name__
        raise CryptoError(
            f"{what} expects an integer numpy array, got {kind}; quantise floats first "
            "(lianmo.crypto.fixedpoint.quantise)"
        )
    if Xq.ndim != 2 or Xq.shape[0] != rows:
        raise CryptoError(
            f"{what} expects shape ({rows}, n_cols) to match {rows} ciphertexts, got {Xq.shape}"
        )
    if Xq.dtype.kind == "u" and Xq.size and int(Xq.max()) > np.iinfo(np.int64).max:
        raise CryptoError(f"{what}: unsigned entries above 2**63 - 1 are not supported")
    out = Xq.astype(np.int64, copy=False)
    if out.size and int(out.min()) == _INT64_MIN:
        raise CryptoError(f"{what}: entry equal to -2**63 is not supported; rescale the data")
    return out


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
        self.exponent = _as_int(exponent, "CipherVector exponent")
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
        scalar = _as_int(k, "mul_int scalar")
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
        target = _as_int(new_exponent, "new exponent")
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
        block = _as_int(block, "block")
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
        exponent = self.exponent + _as_int(xq_exponent, "xq_exponent")
        columns = np.ascontiguousarray(_int64_matrix(Xq, len(self), "matvec_t").T)
        backend = backend or _SERIAL
        nsquare = self.key.nsquare
        k = columns.shape[0]
        if k >= backend.workers or len(self) < 2 * _MIN_ROWS:
            tasks = [
                _kernels.MatvecTask(nsquare, self.values, columns[a:b])
                for a, b in chunk_bounds(k, backend.workers)
            ]
            values = backend.map_concat(_kernels.matvec, tasks)
        else:  # few columns, many rows: split rows and multiply the partial products
            tasks = [
                _kernels.MatvecTask(nsquare, self.values[a:b], columns[:, a:b])
                for a, b in chunk_bounds(len(self), backend.workers, _MIN_ROWS)
            ]
            parts = backend.map(_kernels.matvec, tasks)
            values = [_product(column, nsquare) for column in zip(*parts, strict=True)]
        return self._with(values or [gmpy2.mpz(1)] * k, exponent)

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
        n_bins = _as_int(n_bins, "n_bins")
        n_nodes = _as_int(n_nodes, "n_nodes")
        if n_bins < 1 or n_nodes < 1:
            raise CryptoError(
                f"histogram needs n_bins >= 1 and n_nodes >= 1, got {n_bins}, {n_nodes}"
            )
        table = _int64_matrix(bins, len(self), "histogram")
        if table.size and (int(table.min()) < 0 or int(table.max()) >= n_bins):
            raise CryptoError(
                f"histogram: bin indices must lie in [0, {n_bins}), got range "
                f"[{int(table.min())}, {int(table.max())}]"
            )
        n_features = table.shape[1]
        slots = table.T.copy()
        if nodes is not None:
            node = np.asarray(nodes)
            if node.shape != (len(self),) or node.dtype.kind not in "iu":
                raise CryptoError(
                    f"histogram: nodes must be an integer array of shape ({len(self)},), "
                    f"got {node.dtype} {node.shape}"
                )
            node = node.astype(np.int64)
            if node.size and (int(node.min()) < -1 or int(node.max()) >= n_nodes):
                raise CryptoError(
                    f"histogram: node ids must lie in [-1, {n_nodes}), got range "
                    f"[{int(node.min())}, {int(node.max())}]"
                )
            slots = np.where(node >= 0, slots + node * n_bins, -1)
        backend = backend or _SERIAL
        nsquare = self.key.nsquare
        width = n_nodes * n_bins
        tasks = [
            _kernels.HistogramTask(nsquare, self.values[a:b], slots[:, a:b], width)
            for a, b in chunk_bounds(len(self), backend.workers, _MIN_ROWS)
        ]
        parts = backend.map(_kernels.histogram, tasks)
        if not parts:
            per_feature = [[gmpy2.mpz(1)] * width for _ in range(n_features)]
        else:
            per_feature = [
                [_product(cells, nsquare) for cells in zip(*feature, strict=True)]
                for feature in zip(*parts, strict=True)
            ]
        values = [
            per_feature[f][node_id * n_bins + b]
            for node_id in range(n_nodes)
            for f in range(n_features)
            for b in range(n_bins)
        ]
        return self._with(values)

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
        per_ct = packing.per_plaintext(int(self.key.n))
        backend = backend or _SERIAL
        groups = -(-len(self) // per_ct)
        tasks = [
            _kernels.ShiftPackTask(
                self.key.nsquare,
                self.values[a * per_ct : b * per_ct],
                per_ct,
                packing.total_bits,
            )
            for a, b in chunk_bounds(groups, backend.workers, 4)
        ]
        return self._with(backend.map_concat(_kernels.shift_pack, tasks))

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
        width = self.key.ciphertext_bytes
        return width, int_to_fixed_bytes(self.values, width)

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
        from lianmo.crypto.public_key import PublicKey  # runtime import: module cycle

        if not isinstance(key, PublicKey):
            raise CryptoError(f"from_bytes needs a PublicKey, got {type(key).__name__}")
        if width != key.ciphertext_bytes:
            raise CryptoError(
                f"ciphertext width is {width} bytes, expected {key.ciphertext_bytes} for a "
                f"{key.bits}-bit key; the sender used another key or format"
            )
        values = fixed_bytes_to_mpz(data, count, width)
        _check_units(values, key)
        return cls(key, exponent, values)

    def to_phe(self) -> list[phe.EncryptedNumber]:
        """Return one ``phe.EncryptedNumber`` per element (same ciphertext and exponent)."""
        pk = self.key.to_phe()
        return [phe.EncryptedNumber(pk, int(c), self.exponent) for c in self.values]

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
        lowered = [
            x if x.exponent == exponent else x.decrease_exponent_to(exponent) for x in numbers
        ]
        values = [gmpy2.mpz(x.ciphertext(be_secure=False)) for x in lowered]
        _check_units(values, key)
        return cls(key, exponent, values)


def _product(values: t.Iterable[Mpz], modulus: Mpz) -> Mpz:
    """Return the product of ``values`` modulo ``modulus``, skipping the ones."""
    total: Mpz | None = None
    for value in values:
        if value != 1:
            total = value if total is None else total * value % modulus
    return gmpy2.mpz(1) if total is None else total


def _check_units(values: list[Mpz], key: PublicKey) -> None:
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
