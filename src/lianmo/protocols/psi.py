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
from lianmo.errors import DataError, ProtocolError
from lianmo.protocols.context import RoleContext
from lianmo.wire.convert import count_from_msg
from lianmo.transport.messages import IndexList, PointList, Signal

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
    for k, (lo, hi) in enumerate(spans):
        hashed = hash_ids_packed(ids[lo:hi], psi_salt(ctx.job_id), ctx.compute)
        points = key.blind_packed(hashed, ctx.compute)
        ctx.channel.broadcast(ctx.hosts, "psi.guest_set", _pack(points), round=k)
        ctx.progress(PHASE, 0, 2, f"{hi} of {len(ids)} ids blinded and sent")
    shared = np.ones(len(ids), dtype=bool)
    positions: dict[str, np.ndarray] = {}
    for host in ctx.hosts:
        parts, done = [], 0
        for part in _recv_set(ctx, host, "psi.host_set"):
            parts.append(key.blind_packed(part, ctx.compute))
            done += len(parts[-1]) // POINT_BYTES
            ctx.progress(PHASE, 0, 2, f"{done} ids of host '{host}' blinded")
        index = PointIndex(parts)  # empties parts
        pos = np.empty(len(ids), dtype=np.int64)
        for k, (lo, hi) in enumerate(spans):
            double = _unpack(ctx.channel.recv(host, "psi.guest_set_double", round=k), host)
            if len(double) != (hi - lo) * POINT_BYTES:
                raise ProtocolError(
                    f"host '{host}' returned {len(double) // POINT_BYTES} blinded ids for "
                    f"chunk {k} of the guest's ids, which has {hi - lo}"
                )
            pos[lo:hi] = index.find(double)
            ctx.progress(PHASE, 0, 2, f"{hi} of {len(ids)} ids matched with host '{host}'")
        del index
        shared &= pos >= 0
        positions[host] = pos
    rows = np.flatnonzero(shared)
    rows = rows[np.argsort(ids[rows], kind="stable")]
    ctx.progress(PHASE, 1, 2, f"intersection {len(rows)}")
    for host in ctx.hosts:
        ctx.channel.send(host, "psi.size", Signal("intersection_size", str(len(rows))))
    _check_minimum(ctx.party, len(rows), min_intersection)
    for host in ctx.hosts:
        ctx.channel.send(host, "psi.positions", _indices(positions[host][rows]))
    ctx.progress(PHASE, 2, 2, f"intersection {len(rows)}")
    return rows


def align_host(
    ctx: RoleContext, ids: Sequence[str] | np.ndarray, *, min_intersection: int
) -> np.ndarray:
    """Host side (steps as in :func:`align_guest`); returns own row indices, ordered by id."""
    key = PsiKey(ctx.rng.child("psi"))
    ids = id_array(ids)
    perm = np.random.default_rng(int.from_bytes(ctx.rng.child("psi-shuffle").random_bytes(32)))
    order = perm.permutation(len(ids))
    for k, (lo, hi) in enumerate(_spans(len(ids))):
        hashed = hash_ids_packed(ids[order[lo:hi]], psi_salt(ctx.job_id), ctx.compute)
        points = key.blind_packed(hashed, ctx.compute)
        ctx.channel.send(ctx.guest, "psi.host_set", _pack(points), round=k)
        ctx.progress(PHASE, 0, 2, f"{hi} of {len(ids)} ids blinded and sent")
    done = 0
    for k, part in enumerate(_recv_set(ctx, ctx.guest, "psi.guest_set")):
        double = key.blind_packed(part, ctx.compute)
        ctx.channel.send(ctx.guest, "psi.guest_set_double", _pack(double), round=k)
        done += len(double) // POINT_BYTES
        ctx.progress(PHASE, 0, 2, f"{done} of the guest's ids blinded and sent back")
    size = count_from_msg(ctx.channel.recv(ctx.guest, "psi.size"), ctx.guest, "psi.size")
    ctx.progress(PHASE, 1, 2, f"intersection {size}")
    _check_minimum(ctx.party, size, min_intersection)
    msg = ctx.channel.recv(ctx.guest, "psi.positions")
    if not isinstance(msg, IndexList):
        raise ProtocolError(f"guest '{ctx.guest}' sent {type(msg).__name__}, expected IndexList")
    pos = np.frombuffer(msg.data, dtype="<u4").astype(np.int64)
    if len(pos) != size or len(np.unique(pos)) != len(pos) or (len(pos) and pos.max() >= len(ids)):
        raise ProtocolError(
            f"guest '{ctx.guest}' sent {len(pos)} intersection positions that do not fit the "
            f"host's {len(ids)} ids or the announced size {size}"
        )
    rows = order[pos]
    rows = rows[np.argsort(ids[rows], kind="stable")]
    ctx.progress(PHASE, 2, 2, f"intersection {len(rows)}")
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


def _recv_set(ctx: RoleContext, sender: str, tag: str) -> Iterator[bytes]:
    """The packed chunks of a point set, in order, until the short chunk that ends it."""
    k = 0
    while True:
        part = _unpack(ctx.channel.recv(sender, tag, round=k), sender)
        yield part
        if len(part) < CHUNK_POINTS * POINT_BYTES:
            return
        k += 1


def _check_minimum(party: str, size: int, minimum: int) -> None:
    if size < minimum:
        raise DataError(
            f"party '{party}': the intersection has {size} ids, below the job's minimum of "
            f"{minimum}; training on so few people could single them out. Check that both "
            "parties use the same id format, or lower alignment.min_intersection"
        )


def _pack(packed: bytes) -> PointList:
    return PointList(count=len(packed) // POINT_BYTES, width=POINT_BYTES, data=packed)


def _unpack(msg: object, sender: str) -> bytes:
    """The packed points of a PointList, checked to be whole and as many as announced."""
    if (
        not isinstance(msg, PointList)
        or msg.width != POINT_BYTES
        or len(msg.data) != msg.count * POINT_BYTES
    ):
        raise ProtocolError(
            f"party '{sender}' sent a malformed PSI point list (expected {POINT_BYTES}-byte "
            "points, as many as its count says)"
        )
    return msg.data


def _indices(values: np.ndarray) -> IndexList:
    return IndexList(data=values.astype("<u4").tobytes())
