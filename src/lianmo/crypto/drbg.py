"""Deterministic random bit generator (HMAC-SHA256 in counter mode) for replayable jobs.

The rule: every random value a protocol uses -- additive masks, Paillier obfuscators,
PSI scalars, sampling -- is drawn from a :class:`Drbg`, never from ``numpy.random`` or
``random``. A party seeds one Drbg per job from :func:`secrets.token_bytes` (see
:meth:`Drbg.from_entropy`), keeps the seed in its own sealed audit store, and derives one
:meth:`Drbg.child` stream per purpose (``"masks/round-3"``, ``"psi"``, ...). Given the
seed, the whole job can later be replayed bit for bit.

The seed is exactly as secret as a private key: whoever learns it can recompute every
mask and obfuscator the party used, and so strip them from the messages it sent. Never
share a seed with another party and never put it in a message.

Construction: ``key = HMAC-SHA256(seed, "lianmo-drbg-key\\0" + label)`` and block ``i``
of the stream is ``HMAC-SHA256(key, i as 8 big-endian bytes)``. Calls consume the
stream in order, so ``random_bytes(a) + random_bytes(b) == random_bytes(a + b)`` for a
fresh generator. A child's seed is ``HMAC-SHA256(seed, "lianmo-drbg-child\\0" + label)``:
it depends on the parent's seed only, not on how much of the parent has been read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from lianmo.errors import CryptoError

_BLOCK = hashlib.sha256().digest_size
_KEY_DOMAIN = b"lianmo-drbg-key\x00"
_CHILD_DOMAIN = b"lianmo-drbg-child\x00"
_MIN_SEED_BYTES = 16
_BLOCKS_PER_REFILL = 256


class Drbg:
    """HMAC-SHA256 counter-mode generator; same seed and label give the same stream.

    Parameters
    ----------
    seed : bytes
        At least 16 bytes of secret entropy (32 recommended).
    label : str, optional
        Domain-separation label; different labels give independent streams.

    Notes
    -----
    A lock makes each call atomic, so threads may share one generator, but the
    interleaving of their draws (and so the replay) is then up to the scheduler. Give
    each thread its own :meth:`child` when replay matters.
    """

    __slots__ = ("_seed", "_label", "_key", "_counter", "_buffer", "_pos", "_lock")

    def __init__(self, seed: bytes, label: str = "") -> None:
        if not isinstance(seed, bytes | bytearray):
            raise CryptoError(
                f"Drbg seed must be bytes, got {type(seed).__name__}; "
                "use Drbg.from_entropy() or secrets.token_bytes(32)"
            )
        if len(seed) < _MIN_SEED_BYTES:
            raise CryptoError(
                f"Drbg seed must be at least {_MIN_SEED_BYTES} bytes, got {len(seed)}; "
                "use secrets.token_bytes(32)"
            )
        if not isinstance(label, str):
            raise CryptoError(f"Drbg label must be str, got {type(label).__name__}")
        self._seed = bytes(seed)
        self._label = label
        self._key = hmac.digest(self._seed, _KEY_DOMAIN + label.encode("utf-8"), "sha256")
        self._counter = 0
        self._buffer = b""
        self._pos = 0
        self._lock = threading.Lock()

    @classmethod
    def from_entropy(cls, label: str = "") -> Drbg:
        """Return a generator seeded with 32 fresh bytes from :mod:`secrets`.

        Parameters
        ----------
        label : str, optional
            Domain-separation label.

        Returns
        -------
        Drbg
            A new generator; read its :attr:`seed` to be able to replay it.
        """
        return cls(secrets.token_bytes(32), label)

    @property
    def seed(self) -> bytes:
        """The secret seed this generator was built from."""
        return self._seed

    @property
    def label(self) -> str:
        """The domain-separation label of this generator."""
        return self._label

    @property
    def position(self) -> int:
        """How many bytes of the stream have been read so far (for checkpoints)."""
        with self._lock:
            return self._counter * _BLOCK - (len(self._buffer) - self._pos)

    def seek(self, position: int) -> None:
        """Continue the stream at byte ``position``, as a checkpoint recorded it.

        Parameters
        ----------
        position : int
            A value :attr:`position` returned for a generator with the same seed and label.
        """
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            raise CryptoError(f"Drbg position must be a non-negative int, got {position!r}")
        with self._lock:
            block, offset = divmod(position, _BLOCK)
            self._counter = block
            self._buffer, self._pos = self._blocks(1), offset

    def __repr__(self) -> str:
        return f"Drbg(label={self._label!r}, seed=<hidden>)"

    def _blocks(self, count: int) -> bytes:
        key, start = self._key, self._counter
        self._counter = start + count
        return b"".join(
            hmac.digest(key, i.to_bytes(8, "big"), "sha256") for i in range(start, start + count)
        )

    def random_bytes(self, n: int) -> bytes:
        """Return the next ``n`` bytes of the stream.

        Parameters
        ----------
        n : int
            Number of bytes, ``n >= 0``. Ask for big blocks at once when drawing many
            values: one call is much cheaper than many small ones.

        Returns
        -------
        bytes
            ``n`` pseudo-random bytes.
        """
        if not isinstance(n, int) or n < 0:
            raise CryptoError(f"random_bytes needs a non-negative int, got {n!r}")
        with self._lock:
            pos = self._pos
            if pos + n > len(self._buffer):
                rest = self._buffer[pos:]
                blocks = max(-(-(n - len(rest)) // _BLOCK), _BLOCKS_PER_REFILL)
                self._buffer, pos = rest + self._blocks(blocks), 0
            self._pos = pos + n
            return self._buffer[pos : pos + n]

    def randbits(self, k: int) -> int:
        """Return a uniform integer in ``[0, 2**k)``.

        Parameters
        ----------
        k : int
            Number of bits, ``k >= 0``.

        Returns
        -------
        int
            The random integer.
        """
        if not isinstance(k, int) or k < 0:
            raise CryptoError(f"randbits needs a non-negative int, got {k!r}")
        if k == 0:
            return 0
        value = int.from_bytes(self.random_bytes((k + 7) // 8), "big")
        return value >> (-k % 8)

    def randbelow(self, n: int) -> int:
        """Return a uniform integer in ``[0, n)`` by rejection sampling (no modulo bias).

        Parameters
        ----------
        n : int
            Exclusive upper bound, ``n >= 1``.

        Returns
        -------
        int
            The random integer.
        """
        if not isinstance(n, int) or n < 1:
            raise CryptoError(f"randbelow needs a positive int bound, got {n!r}")
        k = (n - 1).bit_length()
        while True:
            value = self.randbits(k)
            if value < n:
                return value

    def child(self, label: str) -> Drbg:
        """Return an independent generator derived from this one's seed and ``label``.

        Parameters
        ----------
        label : str
            Purpose of the child stream, e.g. ``"masks/round-3"``.

        Returns
        -------
        Drbg
            Deterministic in (seed, label); reading it does not advance this stream.
        """
        if not isinstance(label, str):
            raise CryptoError(f"Drbg child label must be str, got {type(label).__name__}")
        seed = hmac.digest(self._seed, _CHILD_DOMAIN + label.encode("utf-8"), "sha256")
        return Drbg(seed, label)
