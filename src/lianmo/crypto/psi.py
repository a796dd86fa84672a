"""ECDH-PSI primitives on X25519: hash ids to curve u-coordinates and blind them commutatively.

Protocol sketch: both parties hash their ids with a shared per-job salt
(:func:`hash_ids`), blind them with their own secret :class:`PsiKey`, exchange, blind the
peer's points again, and compare the doubly blinded sets. ``b(a(H(x))) == a(b(H(x)))``,
so equal ids meet, while a blinded point reveals nothing about ids the peer lacks.

Why x-only scalar multiplication commutes. X25519 maps a u-coordinate ``u`` to the
u-coordinate of ``[k]P`` where ``P`` is either point with that u-coordinate, on
Curve25519 or on its quadratic twist (both are twist-secure groups; a random 32-byte
string lands on each about half the time). ``P`` and ``-P`` share ``u`` and
``[k](-P) = -[k]P``, so the map is well defined on u-coordinates, and
``[a][b]P = [ab]P = [b][a]P`` in either group, hence
``X25519(a, X25519(b, u)) == X25519(b, X25519(a, u))``. The clamped scalars are
multiples of the cofactor 8, which also wipes out any small-order component.

Low-order points. A dozen u-values (0, 1, p - 1 and a few others, on the curve or the
twist) have small order and map to the all-zero output, which ``cryptography``
rejects; a SHA-512 output hits one with probability about ``2**-251``. Such an id
raises :class:`~lianmo.errors.CryptoError` naming its index rather than being dropped.

Never send the private scalar: whoever holds it can unblind the party's points and
test ids against them offline. Hashing and blinding run in chunks on the party's compute
backend (:mod:`lianmo.compute`); blinding chunks carry the scalar to the party's own
workers, as decryption chunks carry the Paillier key's factors, and never further.
"""

from __future__ import annotations

import hashlib
import typing as t

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from lianmo.compute.backend import ComputeBackend, SerialBackend, chunk_bounds
from lianmo.crypto.drbg import Drbg
from lianmo.errors import CryptoError

POINT_BYTES = 32
_DOMAIN = b"lianmo-psi-v1"
#: Smallest chunk worth sending to a worker (an X25519 multiplication takes ~50 us).
MIN_CHUNK = 4096
_SERIAL = SerialBackend()


def _chunks(total: int, backend: ComputeBackend) -> list[tuple[int, int]]:
    # a few chunks per worker, so a slow worker does not hold the others up
    return chunk_bounds(total, 4 * backend.workers, MIN_CHUNK)


def hash_ids(
    ids: t.Sequence[str], salt: bytes, backend: ComputeBackend | None = None
) -> list[bytes]:
    """Hash ids to X25519 u-coordinates, one ``bytes`` per id (see :func:`hash_ids_packed`)."""
    return split_points(hash_ids_packed(ids, salt, backend))


def hash_ids_packed(
    ids: t.Sequence[str] | np.ndarray, salt: bytes, backend: ComputeBackend | None = None
) -> bytes:
    """Hash ids to X25519 u-coordinates, packed end to end.

    Parameters
    ----------
    ids : sequence of str, or numpy.ndarray of bytes
        Record identifiers: strings are UTF-8 encoded before hashing; ``bytes`` (e.g. a
        numpy ``S`` array, as :class:`~lianmo.data.table.TableScan` keeps ids) are taken
        as already encoded, so both forms of an id give the same point.
    salt : bytes
        Per-job salt, identical for both parties (and of fixed length within a job, so
        ``salt + id`` is unambiguous).
    backend : ComputeBackend, optional
        Where the chunks run (this process by default); the result does not depend on it.

    Returns
    -------
    bytes
        ``len(ids)`` points of :data:`POINT_BYTES` each: ``SHA-512(b"lianmo-psi-v1" +
        salt + id)[:32]`` with the top bit cleared, a little-endian u-coordinate.
    """
    if not isinstance(salt, bytes | bytearray):
        raise CryptoError(f"PSI salt must be bytes, got {type(salt).__name__}")
    backend = backend or _SERIAL
    tasks = [
        (bytes(salt), start, list(ids[start:stop])) for start, stop in _chunks(len(ids), backend)
    ]
    return b"".join(backend.map(_hash_chunk, tasks))


def split_points(packed: bytes) -> list[bytes]:
    """The points of a packed buffer, one ``bytes`` each."""
    return [packed[i : i + POINT_BYTES] for i in range(0, len(packed), POINT_BYTES)]


def _hash_chunk(task: tuple[bytes, int, list[str | bytes]]) -> bytes:
    """Kernel: hash one chunk of ids (``start`` is its offset, for error messages)."""
    salt, start, ids = task
    prefix = hashlib.sha512(_DOMAIN + salt)
    out = bytearray()
    for offset, identifier in enumerate(ids):
        if isinstance(identifier, str):
            encoded = identifier.encode("utf-8")
        elif isinstance(identifier, bytes):
            encoded = identifier
        else:
            raise CryptoError(
                f"PSI id at index {start + offset} is {type(identifier).__name__}, expected "
                "str (or its UTF-8 bytes); convert ids to their canonical string form first"
            )
        digest = prefix.copy()
        digest.update(encoded)
        point = bytearray(digest.digest()[:POINT_BYTES])
        point[-1] &= 0x7F
        out += point
    return bytes(out)


class PsiKey:
    """A secret X25519 scalar for commutative blinding, drawn from a :class:`Drbg`.

    Parameters
    ----------
    rng : Drbg
        Source of the 32 secret bytes (clamped by X25519). Use a dedicated child stream.

    Notes
    -----
    The scalar is deliberately not exposed: never send it to anyone.
    """

    __slots__ = ("_scalar",)

    def __init__(self, rng: Drbg) -> None:
        if not isinstance(rng, Drbg):
            raise CryptoError(f"PsiKey needs a Drbg, got {type(rng).__name__}")
        self._scalar = rng.random_bytes(POINT_BYTES)

    def __repr__(self) -> str:
        return "PsiKey(<secret>)"

    def __reduce__(self) -> t.NoReturn:
        raise CryptoError("a PsiKey cannot be pickled: the private scalar never leaves")

    def blind(
        self, points: t.Sequence[bytes], backend: ComputeBackend | None = None
    ) -> list[bytes]:
        """Multiply each point by the secret scalar (see :meth:`blind_packed`).

        Raises
        ------
        CryptoError
            Naming the first point that is not 32 bytes or has low order.
        """
        for index, point in enumerate(points):
            if not isinstance(point, bytes) or len(point) != POINT_BYTES:
                size = len(point) if isinstance(point, bytes) else type(point).__name__
                raise CryptoError(
                    f"PSI point at index {index} must be {POINT_BYTES} bytes, got {size}"
                )
        return split_points(self.blind_packed(b"".join(points), backend))

    def blind_packed(self, packed: bytes, backend: ComputeBackend | None = None) -> bytes:
        """Multiply each point of a packed buffer by the secret scalar.

        Parameters
        ----------
        packed : bytes
            Points of :data:`POINT_BYTES` each, end to end (from :func:`hash_ids_packed`
            or a peer's :meth:`blind_packed`).
        backend : ComputeBackend, optional
            Where the chunks run (this process by default); the party's own workers
            only. The result does not depend on it.

        Returns
        -------
        bytes
            The blinded points, packed, in the same order.

        Raises
        ------
        CryptoError
            If the buffer is not a whole number of points, or naming the first point
            of low order.
        """
        if len(packed) % POINT_BYTES:
            raise CryptoError(
                f"PSI points must come in {POINT_BYTES}-byte units; got {len(packed)} bytes"
            )
        backend = backend or _SERIAL
        view = memoryview(packed)
        tasks = [
            (self._scalar, start, bytes(view[start * POINT_BYTES : stop * POINT_BYTES]))
            for start, stop in _chunks(len(packed) // POINT_BYTES, backend)
        ]
        return b"".join(backend.map(_blind_chunk, tasks))


def _blind_chunk(task: tuple[bytes, int, bytes]) -> bytes:
    """Kernel: multiply one chunk of packed points by the scalar (``start``: its offset)."""
    scalar, start, packed = task
    exchange = X25519PrivateKey.from_private_bytes(scalar).exchange
    from_bytes = X25519PublicKey.from_public_bytes
    out = bytearray()
    for offset in range(len(packed) // POINT_BYTES):
        point = packed[offset * POINT_BYTES : (offset + 1) * POINT_BYTES]
        try:
            out += exchange(from_bytes(point))
        except ValueError as exc:
            raise CryptoError(
                f"PSI point at index {start + offset} has low order (blinding gives zero); "
                "a peer sent a malformed point or an id hashed to one: change the salt"
            ) from exc
    return bytes(out)


def match_points(queries: bytes, table: bytes) -> np.ndarray:
    """Where each packed query point occurs in a packed table of points.

    Returns
    -------
    numpy.ndarray
        int64, one per query: the index of an equal point in ``table``, or -1 (see
        :class:`PointIndex`).
    """
    return PointIndex([table]).find(queries)


class PointIndex:
    """A sorted index of packed points, built once and queried chunk by chunk.

    Exact (whole 32-byte points compare), by sorting: about 72 bytes per indexed point
    while building and 40 after, where a dict of ``bytes`` would take several times that.

    Parameters
    ----------
    parts : list of bytes
        Packed points, in order; a point's index counts across the parts. The list is
        emptied as the parts are copied in, so the caller's buffers can be freed.
    """

    def __init__(self, parts: list[bytes]) -> None:
        dtype = np.dtype(f"V{POINT_BYTES}")
        points = np.concatenate(
            [np.frombuffer(parts.pop(0), dtype=dtype) for _ in range(len(parts))]
            or [np.empty(0, dtype=dtype)]
        )
        self._order = np.argsort(points, kind="stable")
        self._sorted = points[self._order]

    def __len__(self) -> int:
        return len(self._sorted)

    def find(self, queries: bytes) -> np.ndarray:
        """For each packed query point, its index among the indexed points, or -1."""
        qry = np.frombuffer(queries, dtype=self._sorted.dtype)
        if len(self._sorted) == 0:
            return np.full(len(qry), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._sorted, qry), len(self._sorted) - 1)
        return np.where(self._sorted[at] == qry, self._order[at], -1).astype(np.int64)
