"""Alignment: ECDH private set intersection between the guest and every host.

Both sides hash their ids onto X25519 and blind them with a secret scalar; because
scalar multiplication commutes, an id held by both ends up as the same doubly blinded
point, while a point blinded only by the other side reveals nothing. The guest learns,
per host, which of its ids that host also holds; each host learns only the final
intersection over all parties. Aligned rows are ordered by id, so every party ends
up with the same row order without exchanging it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np

from lianmo.crypto.psi import POINT_BYTES, PointIndex, PsiKey, hash_ids_packed
from lianmo.errors import DataError
from lianmo.protocols.context import RoleContext
from lianmo.wire.step import Step
from lianmo.wire.steps import (
    PSI_GUEST_SET,
    PSI_GUEST_SET_DOUBLE,
    PSI_HOST_SET,
    PSI_POSITIONS,
    PSI_SIZE,
)

PHASE = "align"
#: points per PSI message: 16 MiB of 32-byte points
CHUNK_POINTS = 1 << 19


def psi_salt(job_id: str) -> bytes:
    """Per-job domain separation: tokens from one job are useless in another."""
    return hashlib.sha256(f"lianmo-psi|{job_id}".encode()).digest()


def align_guest(
    ctx: RoleContext, ids: Sequence[str] | np.ndarray, *, min_intersection: int
) -> np.ndarray:
    """Guest side; returns the guest's row indices of the intersection, ordered by id.

    Point sets travel in chunks of :data:`CHUNK_POINTS` (one message per chunk, the
    chunk's number as the message round; a chunk of fewer points, possibly none, ends
    the set), so neither side ever holds a whole set in one message.

    1. guest -> host_k : A = a·H(x) for every guest id x, in guest row order
    2. host_k -> guest : B_k = b_k·H(y) for every id y of host k, shuffled
    3. host_k -> guest : b_k·A, chunk for chunk
    4. guest           : a·B_k; guest row i is shared with host k iff b_k·a·H(x_i) ∈ a·B_k
    5. guest -> host_k : the size of the intersection over all parties
    6. guest -> host_k : positions in B_k of the intersection, only if the size reaches
                         the job's minimum (otherwise every party stops)

    The guest keeps one host's a·B_k at a time (sorted, about 40 bytes per point) and
    none of its own blinded set.
    """
    key = PsiKey(ctx.rng.child("psi"))
    ids = id_array(ids)
    spans = _spans(len(ids))
    # own set once, then per host its set (assumed about as large) and the doubled set
    meter = _Meter(ctx, len(ids) * (1 + 2 * len(ctx.hosts)))
    for k, (lo, hi) in enumerate(spans):
        hashed = hash_ids_packed(ids[lo:hi], psi_salt(ctx.job_id), ctx.compute)
        points = key.blind_packed(hashed, ctx.compute)
        ctx.broadcast(PSI_GUEST_SET, ctx.hosts, points, round=k)
        meter.add(hi - lo, f"{hi} of {len(ids)} ids blinded and sent")
    shared = np.ones(len(ids), dtype=bool)
    positions: dict[str, np.ndarray] = {}
    for host in ctx.hosts:
        parts, done = [], 0
        for part in _recv_set(ctx, host, PSI_HOST_SET):
            parts.append(key.blind_packed(part, ctx.compute))
            done += len(parts[-1]) // POINT_BYTES
            meter.add(len(parts[-1]) // POINT_BYTES, f"{done} ids of host '{host}' blinded")
        index = PointIndex(parts)  # empties parts
        pos = np.empty(len(ids), dtype=np.int64)
        for k, (lo, hi) in enumerate(spans):
            double = ctx.recv(PSI_GUEST_SET_DOUBLE, host, round=k, count=hi - lo)
            pos[lo:hi] = index.find(double)
            meter.add(hi - lo, f"{hi} of {len(ids)} ids matched with host '{host}'")
        del index
        shared &= pos >= 0
        positions[host] = pos
    rows = np.flatnonzero(shared)
    rows = rows[np.argsort(ids[rows], kind="stable")]
    meter.add(0, f"intersection {len(rows)}")
    for host in ctx.hosts:
        ctx.send(PSI_SIZE, host, len(rows))
    _check_minimum(ctx.party, len(rows), min_intersection)
    for host in ctx.hosts:
        ctx.send(PSI_POSITIONS, host, positions[host][rows])
    meter.done(f"intersection {len(rows)}")
    return rows


def align_host(
    ctx: RoleContext, ids: Sequence[str] | np.ndarray, *, min_intersection: int
) -> np.ndarray:
    """Host side (steps as in :func:`align_guest`); returns own row indices, ordered by id."""
    key = PsiKey(ctx.rng.child("psi"))
    ids = id_array(ids)
    perm = np.random.default_rng(int.from_bytes(ctx.rng.child("psi-shuffle").random_bytes(32)))
    order = perm.permutation(len(ids))
    meter = _Meter(ctx, 2 * len(ids))  # own set, then the guest's (assumed as large)
    for k, (lo, hi) in enumerate(_spans(len(ids))):
        hashed = hash_ids_packed(ids[order[lo:hi]], psi_salt(ctx.job_id), ctx.compute)
        points = key.blind_packed(hashed, ctx.compute)
        ctx.send(PSI_HOST_SET, ctx.guest, points, round=k)
        meter.add(hi - lo, f"{hi} of {len(ids)} ids blinded and sent")
    done = 0
    for k, part in enumerate(_recv_set(ctx, ctx.guest, PSI_GUEST_SET)):
        double = key.blind_packed(part, ctx.compute)
        ctx.send(PSI_GUEST_SET_DOUBLE, ctx.guest, double, round=k)
        done += len(double) // POINT_BYTES
        meter.add(len(double) // POINT_BYTES, f"{done} of the guest's ids blinded and sent back")
    size = ctx.recv(PSI_SIZE, ctx.guest)
    meter.add(0, f"intersection {size}")
    _check_minimum(ctx.party, size, min_intersection)
    pos = ctx.recv(PSI_POSITIONS, ctx.guest, count=size, below=len(ids))
    rows: np.ndarray = order[pos]
    rows = rows[np.argsort(ids[rows], kind="stable")]
    meter.done(f"intersection {len(rows)}")
    return rows


def id_array(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Ids as a numpy array of UTF-8 bytes (``S`` dtype), which sorts as the strings do."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind == "S":
        return ids
    return np.array([str(i).encode("utf-8") for i in ids], dtype=np.bytes_)


def _spans(n: int) -> list[tuple[int, int]]:
    """Chunk bounds of a set of ``n`` points: full chunks, then a short one (maybe empty)."""
    starts = range(0, n - n % CHUNK_POINTS + 1, CHUNK_POINTS)
    return [(lo, min(lo + CHUNK_POINTS, n)) for lo in starts]


def _recv_set(ctx: RoleContext, sender: str, step: Step[bytes, bytes]) -> Iterator[bytes]:
    """The packed chunks of a point set, in order, until the short chunk that ends it."""
    k = 0
    while True:
        part = ctx.recv(step, sender, round=k)
        yield part
        if len(part) < CHUNK_POINTS * POINT_BYTES:
            return
        k += 1


class _Meter:
    """Alignment progress in percent of the points to blind and match.

    The other side's set size is not known until it has arrived, so the estimate counts
    it as large as this side's; the meter stays below 100 until the alignment is done.
    """

    def __init__(self, ctx: RoleContext, expected: int) -> None:
        self.ctx, self.expected, self.seen = ctx, max(expected, 1), 0

    def add(self, points: int, detail: str) -> None:
        self.seen += points
        self.ctx.progress(PHASE, min(99, 100 * self.seen // self.expected), 100, detail)

    def done(self, detail: str) -> None:
        self.ctx.progress(PHASE, 100, 100, detail)


def _check_minimum(party: str, size: int, minimum: int) -> None:
    if size < minimum:
        raise DataError(
            f"party '{party}': the intersection has {size} ids, below the job's minimum of "
            f"{minimum}; training on so few people could single them out. Check that both "
            "parties use the same id format, or lower alignment.min_intersection"
        )
