"""Alignment: ECDH private set intersection between the guest and every host.

Both sides hash their ids onto X25519 and blind them with a secret scalar; because
scalar multiplication commutes, an id held by both ends up as the same doubly blinded
point, while a point blinded only by the other side reveals nothing. The guest learns,
per host, which of its ids that host also holds; each host learns only the final
intersection over all parties. Aligned rows are ordered by id, so every party ends
up with the same row order without exchanging it. Set sizes are announced and checked
first (the job's minimum, each party's own cap), so a one-id set or an oversized one is
refused before anyone learns whether an id is shared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np

from lianmo.crypto.psi import POINT_BYTES, PointIndex, PsiKey, hash_ids_packed
from lianmo.errors import DataError, PolicyError
from lianmo.protocols.context import RoleContext
from lianmo.wire.step import Step
from lianmo.wire.steps import (
    PSI_GUEST_SET,
    PSI_GUEST_SET_DOUBLE,
    PSI_GUEST_SIZE,
    PSI_HOST_SET,
    PSI_HOST_SIZE,
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
    the set), so neither side ever holds a whole set in one message. Each side first
    announces how many ids it brings; the other refuses a set below the job's minimum
    intersection or above its own policy's cap (:class:`~lianmo.protocols.context.Limits`)
    before any id is blinded for it, and every chunk must then hold exactly the points
    the announced size implies.

    1. guest -> host_k : |X|, the number of guest ids
    2. host_k          : refuses |X| < min_intersection or |X| > its max_peer_set
       host_k -> guest : |Y_k|, the number of ids of host k
    3. guest           : refuses |Y_k| < min_intersection or |Y_k| > its max_peer_set
    4. guest -> host_k : A = a·H(x) for every guest id x, in guest row order
    5. host_k -> guest : B_k = b_k·H(y) for every id y of host k, shuffled
    6. host_k -> guest : b_k·A, chunk for chunk
    7. guest           : a·B_k; guest row i is shared with host k iff b_k·a·H(x_i) ∈ a·B_k
    8. guest -> host_k : the size of the intersection over all parties
    9. guest -> host_k : positions in B_k of the intersection, only if the size reaches
                         the job's minimum (otherwise every party stops)

    The guest keeps one host's a·B_k at a time (sorted, about 40 bytes per point) and
    none of its own blinded set.
    """
    key = PsiKey(ctx.rng.child("psi"))
    ids = id_array(ids)
    ctx.broadcast(PSI_GUEST_SIZE, ctx.hosts, len(ids))
    sizes = {host: _peer_size(ctx, host, PSI_HOST_SIZE, min_intersection) for host in ctx.hosts}
    spans = _spans(len(ids))
    # own set once, then per host its set and the doubled own set
    meter = _Meter(ctx, len(ids) * (1 + len(ctx.hosts)) + sum(sizes.values()))
    for k, (lo, hi) in enumerate(spans):
        hashed = hash_ids_packed(ids[lo:hi], psi_salt(ctx.job_id), ctx.compute)
        points = key.blind_packed(hashed, ctx.compute)
        ctx.broadcast(PSI_GUEST_SET, ctx.hosts, points, round=k)
        meter.add(hi - lo, f"{hi} of {len(ids)} ids blinded and sent")
    shared = np.ones(len(ids), dtype=bool)
    positions: dict[str, np.ndarray] = {}
    for host in ctx.hosts:
        parts, done = [], 0
        for part in _recv_set(ctx, host, PSI_HOST_SET, sizes[host]):
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
    guest_size = _peer_size(ctx, ctx.guest, PSI_GUEST_SIZE, min_intersection)
    ctx.send(PSI_HOST_SIZE, ctx.guest, len(ids))
    perm = np.random.default_rng(int.from_bytes(ctx.rng.child("psi-shuffle").random_bytes(32)))
    order = perm.permutation(len(ids))
    meter = _Meter(ctx, len(ids) + guest_size)  # own set, then the guest's
    for k, (lo, hi) in enumerate(_spans(len(ids))):
        hashed = hash_ids_packed(ids[order[lo:hi]], psi_salt(ctx.job_id), ctx.compute)
        points = key.blind_packed(hashed, ctx.compute)
        ctx.send(PSI_HOST_SET, ctx.guest, points, round=k)
        meter.add(hi - lo, f"{hi} of {len(ids)} ids blinded and sent")
    done = 0
    for k, part in enumerate(_recv_set(ctx, ctx.guest, PSI_GUEST_SET, guest_size)):
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


def _recv_set(
    ctx: RoleContext, sender: str, step: Step[bytes, bytes], size: int
) -> Iterator[bytes]:
    """The packed chunks of a point set of the announced ``size``, in order; each chunk
    must hold exactly the points its span does (a sender cannot slip in more)."""
    for k, (lo, hi) in enumerate(_spans(size)):
        yield ctx.recv(step, sender, round=k, count=hi - lo)


def _peer_size(ctx: RoleContext, peer: str, step: Step[int, int], min_intersection: int) -> int:
    """The set size ``peer`` announces, refused below the minimum or above this party's cap.

    A set smaller than the minimum intersection can only single people out; one larger
    than the cap would let the peer test that many ids for membership. Either way this
    party stops before it blinds or compares a single id for that peer.
    """
    size = ctx.recv(step, peer)
    role = ctx.role_of(peer)
    if size < min_intersection:
        raise DataError(
            f"party '{ctx.party}': {role} '{peer}' brings {size} ids to alignment, fewer "
            f"than the job's minimum intersection of {min_intersection}; so small a set "
            "could single people out, so alignment stops before any id is compared. The "
            f"{role} must use a data set with at least that many ids"
        )
    cap = ctx.limits.max_peer_set
    if cap is not None and size > cap:
        raise PolicyError(
            f"party '{ctx.party}': {role} '{peer}' brings {size} ids to alignment, more than "
            f"this party's policy.max_peer_set of {cap}; alignment stops before any id is "
            f"compared. The {role} must use a smaller data set, or party '{ctx.party}''s "
            "operator raise [policy] max_peer_set"
        )
    return size


class _Meter:
    """Alignment progress in percent of the points to blind and match (both sides' set
    sizes are announced first); the meter stays below 100 until the alignment is done."""

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
