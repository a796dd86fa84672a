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
from collections.abc import Sequence

import numpy as np

from lianmo.crypto.psi import POINT_BYTES, PsiKey, hash_ids_packed, match_points
from lianmo.errors import DataError, ProtocolError
from lianmo.protocols.context import RoleContext
from lianmo.protocols.wire import count_from_msg
from lianmo.transport.messages import IndexList, PointList, Signal

PHASE = "align"


def psi_salt(job_id: str) -> bytes:
    """Per-job domain separation: tokens from one job are useless in another."""
    return hashlib.sha256(f"lianmo-psi|{job_id}".encode()).digest()


def align_guest(ctx: RoleContext, ids: Sequence[str], *, min_intersection: int) -> np.ndarray:
    """Guest side; returns the guest's row indices of the intersection, ordered by id.

    1. host_k -> guest : B_k = b_k·H(y) for every id y of host k, shuffled
    2. guest -> host_k : A = a·H(x) for every guest id x, in guest row order
    3. host_k -> guest : b_k·A, same order
    4. guest           : a·B_k; guest row i is shared with host k iff b_k·a·H(x_i) ∈ a·B_k
    5. guest -> host_k : the size of the intersection over all parties
    6. guest -> host_k : positions in B_k of the intersection, only if the size reaches
                         the job's minimum (otherwise every party stops)
    """
    key = PsiKey(ctx.rng.child("psi"))
    hashed = hash_ids_packed(ids, psi_salt(ctx.job_id), ctx.compute)
    blinded = _pack(key.blind_packed(hashed, ctx.compute))
    del hashed
    ctx.progress(PHASE, 0, 2, f"{len(ids)} ids blinded")
    shared = np.ones(len(ids), dtype=bool)
    positions: dict[str, np.ndarray] = {}
    for host in ctx.hosts:
        host_set = _unpack(ctx.channel.recv(host, "psi.host_set"), host)
        ctx.channel.send(host, "psi.guest_set", blinded)
        double = _unpack(ctx.channel.recv(host, "psi.guest_set_double"), host)
        if len(double) != len(ids) * POINT_BYTES:
            raise ProtocolError(
                f"host '{host}' returned {len(double) // POINT_BYTES} blinded ids for the "
                f"guest's {len(ids)}"
            )
        pos = match_points(double, key.blind_packed(host_set, ctx.compute))
        del host_set, double
        shared &= pos >= 0
        positions[host] = pos
    rows = np.flatnonzero(shared)
    rows = rows[np.argsort(np.array([ids[int(i)] for i in rows], dtype=object), kind="stable")]
    ctx.progress(PHASE, 1, 2, f"intersection {len(rows)}")
    for host in ctx.hosts:
        ctx.channel.send(host, "psi.size", Signal("intersection_size", str(len(rows))))
    _check_minimum(ctx.party, len(rows), min_intersection)
    for host in ctx.hosts:
        ctx.channel.send(host, "psi.positions", _indices(positions[host][rows]))
    ctx.progress(PHASE, 2, 2, f"intersection {len(rows)}")
    return rows


def align_host(ctx: RoleContext, ids: Sequence[str], *, min_intersection: int) -> np.ndarray:
    """Host side (steps as in :func:`align_guest`); returns own row indices, ordered by id."""
    key = PsiKey(ctx.rng.child("psi"))
    perm = np.random.default_rng(int.from_bytes(ctx.rng.child("psi-shuffle").random_bytes(32)))
    order = perm.permutation(len(ids))
    hashed = hash_ids_packed([ids[j] for j in order], psi_salt(ctx.job_id), ctx.compute)
    points = key.blind_packed(hashed, ctx.compute)
    del hashed
    ctx.progress(PHASE, 0, 2, f"{len(ids)} ids blinded")
    ctx.channel.send(ctx.guest, "psi.host_set", _pack(points))
    del points
    guest_set = _unpack(ctx.channel.recv(ctx.guest, "psi.guest_set"), ctx.guest)
    double = key.blind_packed(guest_set, ctx.compute)
    del guest_set
    ctx.channel.send(ctx.guest, "psi.guest_set_double", _pack(double))
    del double
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
    rows = rows[np.argsort(np.array([ids[i] for i in rows], dtype=object), kind="stable")]
    ctx.progress(PHASE, 2, 2, f"intersection {len(rows)}")
    return rows


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
