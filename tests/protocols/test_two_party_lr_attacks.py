"""Attacks on two-party hetero LR by a curious or dishonest peer, what stops them, and the
bound on what cannot be stopped.

Each test runs the real protocol code of the honest party over in-memory channels
(unit-test Paillier keys of 1024 bits, named as such) against a dishonest peer written as
a role function: it sends what ``ctx.send`` allows, but not what the protocol says.

Refused before anything of the honest party's is exposed: a coordinate count above the
batch floor, feature bits that cannot fit the 64-bit slots, a public key under 2048 bits
on a production path; then feature ciphertexts under another key or of the wrong count,
and products of the wrong count, key or exponent, or replayed from another round.

What a dishonest encrypter can do, and the bound
-------------------------------------------------
Each party receives ``[[X̃_p]]`` from its peer and cannot look inside: the ciphertexts
could hold anything, not the packed features the layout ``(m_p, b_p)`` announced. The
product it sends back is ``[[Σ_i X̃_p[i] v_i + R·2^T]]`` with ``T = m_p × slot_bits``
(per group of slots) and a top mask ``R`` uniform in ``[1, top]``,
``top = (n >> T) − 2``, nearly all of ``n / 2^T``. So the encrypter decrypts:

* in the low ``T`` bits, exactly ``Σ_i c_i v_i mod 2^T`` for coefficients ``c_i`` it
  chose. An honest ``c`` gives ``m_p`` sums over the batch; a crafted one, e.g. row ``i``
  at ``2^(29·k_i)``, gives ``⌊T/29⌋`` individual values ``v_i`` exactly (``|v| < 2^28``
  at ``V_EXP``). The layout check bounds ``T`` but not the content: with the batch floor
  (``m_p ≤ rows/16``) and 64-bit slots, ``T ≤ 64·rows/16 = 4·rows`` bits per batch, so a
  dishonest party reads up to ``4/29`` (about 14 %) of a batch's values one by one;
* above ``T``, ``Σ c_i v_i`` hidden by ``R``: uniform over all but two of the values the
  high part can take, so at most about one bit per product (whether the sum wrapped
  mod ``n``).

Bound: **about T bits per product plus one bit**. For the guest as attacker ``v = u_H``,
the host's partial predictions; for the host ``v = s = u_A + 2 − 4y (+ e)``, so a
dishonest host reads individual residuals, as a dishonest host does in coordinated LR
(``test_hetero_lr_attacks``), and label protection's noise ``e`` bounds what they say of
each label the same way. Worse, a peer can encrypt any product it likes under the
honest party's public key, so it steers the honest party's weights: a dishonest guest
that sends ``−K·e_j`` as the host's round-0 gradient share sets ``w_H = α e_j``, and the
next round's ``u_H = α X_H[:, j]`` -- read exactly by the crafted features: ⌊T/29⌋ cells of
the host's column ``j`` per batch. The tests below demonstrate each number rather than
pretend the protocol stops it.
"""

from __future__ import annotations

import math
import typing as t
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from lianmo.crypto.fixedpoint import choose_exponent, max_int, quantise
from lianmo.crypto.paillier import CipherVector, PrivateKey, PublicKey, generate_keypair
from lianmo.data.table import load_table
from lianmo.errors import CryptoError, ProtocolError, UnexpectedMessageError
from lianmo.models.scaler import Standardizer
from lianmo.protocols import label_noise
from lianmo.protocols.context import RoleContext
from lianmo.protocols.hetero_lr import LrParams, rounds
from lianmo.protocols.lr_guard import BATCH_FACTOR
from lianmo.protocols.two_party_lr import V_BITS, V_EXP, Layout, max_batch, train_guest, train_host
from lianmo.wire.convert import ints_to_msg
from lianmo.wire.steps import (
    LR2_EPOCH_END,
    LR2_FEATURES,
    LR2_LAYOUT,
    LR2_PLAN,
    LR2_PRODUCT,
    LR2_PUBLIC_KEY,
    LR2_SQUARE_SUM,
)

from .conftest import WireRecorder, run_roles

# Unit tests only: 1024-bit keys keep the suite fast. Every real path refuses them.
SMALL_TEST_KEY_BITS = 1024
N_ROWS = 800
BATCH = 200  # four batches; the host's 10 columns need 160 rows, the guest's 5 need 80
WINDOW = 29  # bits that hold one signed value |v| < 2**V_BITS exactly
_V_LIMIT = (1 << V_BITS) - 1


@pytest.fixture(scope="module")
def credit(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """800 aligned rows of default_credit_hetero: guest (3 columns and the bias), host
    (10 columns), labels."""
    guest = load_table(
        shared_data / "default_credit_hetero_guest.csv", id_column="id", label_column="y"
    )
    host = load_table(shared_data / "default_credit_hetero_host.csv", id_column="id")
    index = host.index_of()
    host = host.select(np.array([index[i] for i in guest.ids[:N_ROWS]]))
    assert guest.y is not None and host.X.shape[1] == 10
    Xg = Standardizer.fit(guest.X[:N_ROWS, :3]).transform(guest.X[:N_ROWS, :3])
    Xg = np.hstack([Xg, np.ones((N_ROWS, 1))])
    return Xg, Standardizer.fit(host.X).transform(host.X), guest.y[:N_ROWS]


def _params(**overrides: t.Any) -> LrParams:
    base: dict[str, t.Any] = dict(
        epochs=1,
        batch_size=BATCH,
        learning_rate=1.0,
        lr_decay=0.0,
        l2=0.0,
        tol=0.0,
        key_bits=SMALL_TEST_KEY_BITS,
        seed=11,
        insecure_test_key=True,
    )
    base.update(overrides)
    return LrParams(**base)


Role = Callable[[RoleContext], t.Any]


def _run(
    guest: Role, host: Role, wire: WireRecorder | None = None, host_name: str = "h"
) -> dict[str, t.Any]:
    return run_roles({"g": guest, host_name: host}, guest="g", hosts=(host_name,), recorder=wire)


def _sent(wire: WireRecorder, sender: str, tag: str) -> list[int]:
    """Rounds in which ``sender`` sent step ``tag``."""
    return [e.round for e in wire.envelopes if e.sender == sender and e.tag == tag]


# ---- a dishonest peer, step by step ---------------------------------------------------------


@dataclass
class Peer:
    """A dishonest party's side of setup: its own key, what it announced, and what it got."""

    ctx: RoleContext
    peer: str
    params: LrParams
    own: PrivateKey
    layout: Layout  # as announced
    peer_key: PublicKey | None = None
    peer_layout: Layout | None = None
    peer_rows: CipherVector | None = None  # one ciphertext per row (one group)
    seen: list[tuple[int, np.ndarray, int]] = field(default_factory=list)  # round, batch, D

    @classmethod
    def announce(
        cls,
        ctx: RoleContext,
        peer: str,
        params: LrParams,
        count: int,
        bits: int,
        key: PublicKey | None = None,
    ) -> Peer:
        """Step 0a: the plan (one model), a key (``key``, else its own) and the layout
        ``(count, bits)``."""
        public, private = generate_keypair(SMALL_TEST_KEY_BITS, ctx.rng, insecure_test_size=True)
        if ctx.party == ctx.guest:
            ctx.send(LR2_PLAN, peer, 1)
        else:
            assert ctx.recv(LR2_PLAN, peer) == 1
        ctx.send(LR2_PUBLIC_KEY, peer, key or public)
        ctx.send(LR2_LAYOUT, peer, (count, bits))
        layout = Layout(count, bits, max_batch(params, N_ROWS), int(public.n))
        return cls(ctx, peer, params, private, layout)

    def exchange_features(self, plaintexts: list[int], under: PrivateKey | None = None) -> None:
        """Step 0b with crafted row plaintexts (under ``under``'s key if given)."""
        ctx, peer = self.ctx, self.peer
        self.peer_key = ctx.recv(LR2_PUBLIC_KEY, peer, insecure_test_key=True)
        count, bits = ctx.recv(LR2_LAYOUT, peer)
        self.peer_layout = Layout(count, bits, self.layout.max_batch, int(self.peer_key.n))
        assert self.layout.groups == self.peer_layout.groups == 1
        ctx.send(LR2_FEATURES, peer, (under or self.own).encrypt_ints(plaintexts, 0, ctx.rng))
        self.peer_rows = ctx.recv(LR2_FEATURES, peer, key=self.peer_key, count=N_ROWS)

    def _top(self) -> CipherVector:
        """``[[2^T]]``: the least top mask. The honest reader needs one (R >= 1): without
        it a negative sum would wrap to ``n − |S|``, whose low bits are not ``S``'s."""
        assert self.peer_key is not None and self.peer_layout is not None
        T = self.peer_layout.group_packing(0).total_bits
        return self.peer_key.encrypt_ints([1 << T], V_EXP, self.ctx.rng)

    def product(self, batch: np.ndarray, v: np.ndarray) -> CipherVector:
        """An honest product of the peer's rows with ``v``."""
        assert self.peer_rows is not None
        vq = np.clip(quantise(v, V_EXP), -_V_LIMIT, _V_LIMIT)
        return self.peer_rows.select(batch).dot_ints(vq, V_EXP).add(self._top())

    def slots(self, values: list[int]) -> CipherVector:
        """Any product it likes, packed as the peer's slots, under the peer's key."""
        assert self.peer_key is not None and self.peer_layout is not None
        packed = self.peer_layout.group_packing(0).pack(np.array([values], dtype=np.int64))
        return self.peer_key.encrypt_ints(packed, V_EXP, self.ctx.rng).add(self._top())

    def receive(self, step: int, batch: np.ndarray) -> None:
        """Step 2: decrypt the honest party's product; keep the raw plaintext."""
        product = self.ctx.recv(
            LR2_PRODUCT, self.peer, round=step, key=self.own.public_key, count=1
        )
        self.seen.append((step, batch, int(self.own.decrypt_raw(product)[0])))


def _crafting_guest(
    ctx: RoleContext,
    y: np.ndarray,
    params: LrParams,
    layout: tuple[int, int],
    plaintexts: list[int],
    steer: tuple[int, int] | None = None,
) -> Peer:
    """A guest whose "features" are ``plaintexts``; it sends the residual of a zero model
    (``2 − 4y``), or in round 0, with ``steer = (j, K)``, the slot values ``−K·e_j``."""
    host = ctx.hosts[0]
    peer = Peer.announce(ctx, host, params, *layout)
    peer.exchange_features(plaintexts)
    assert peer.peer_layout is not None
    for epoch, step, last in rounds(params, N_ROWS, 0, False):
        batch = params.schedule(N_ROWS, epoch)[step - params.first_round(N_ROWS, epoch)]
        if steer is not None and step == 0:
            j, K = steer
            values = [-K if k == j else 0 for k in range(peer.peer_layout.count)]
            ctx.send(LR2_PRODUCT, host, peer.slots(values), round=step)
        else:
            ctx.send(LR2_PRODUCT, host, peer.product(batch, 2.0 - 4.0 * y[batch]), round=step)
        peer.receive(step, batch)
        if last:
            ctx.recv(LR2_SQUARE_SUM, host, round=step, count=1)
            end = "stop" if epoch == params.epochs - 1 else "continue"
            ctx.send(LR2_EPOCH_END, host, end, round=step)
    return peer


def _crafting_host(
    ctx: RoleContext, params: LrParams, layout: tuple[int, int], plaintexts: list[int]
) -> Peer:
    """A host whose "features" are ``plaintexts``; its own partial predictions are zero."""
    peer = Peer.announce(ctx, "g", params, *layout)
    peer.exchange_features(plaintexts)
    for epoch, step, last in rounds(params, N_ROWS, 0, False):
        batch = params.schedule(N_ROWS, epoch)[step - params.first_round(N_ROWS, epoch)]
        ctx.send(LR2_PRODUCT, "g", peer.product(batch, np.zeros(len(batch))), round=step)
        peer.receive(step, batch)
        if last:
            ctx.send(LR2_SQUARE_SUM, "g", ints_to_msg([0], 16), round=step)
            if ctx.recv(LR2_EPOCH_END, "g", round=step) == "stop":
                break
    return peer


# ---- crafted layouts and how the attacker reads them ---------------------------------------------


def _placement(params: LrParams, offsets: list[int]) -> dict[int, int]:
    """Row -> bit offset: in each batch of epoch 0, its first rows get ``offsets`` in turn,
    so that every product of that epoch holds each of them once."""
    place = {}
    for batch in params.schedule(N_ROWS, 0):
        place.update({int(row): off for row, off in zip(batch, offsets, strict=False)})
    return place


def _plaintexts(place: dict[int, int]) -> list[int]:
    return [1 << place[row] if row in place else 0 for row in range(N_ROWS)]


Windows = list[tuple[int, int]]  # (bit offset, width), ascending
Read = list[tuple[int, int, int]]  # (round, row, value read)


def _windows(value: int, windows: Windows) -> list[int]:
    """The signed values in ``windows`` of a plaintext, read from the bottom up, each
    one's borrow taken out before the next (as the honest reader does with its slots)."""
    out = []
    for off, width in windows:
        chunk = (value >> off) & ((1 << width) - 1)
        signed = chunk - (1 << width) if chunk >> (width - 1) else chunk
        out.append(signed)
        value -= signed << off
    return out


def _read(peer: Peer, place: dict[int, int], windows: Windows) -> Read:
    """What the attacker reads for every placed row of every product it decrypted."""
    out = []
    for step, batch, value in peer.seen:
        rows = {place[int(r)]: int(r) for r in batch if int(r) in place}
        assert sorted(rows) == [off for off, _ in windows]
        for (off, _), got in zip(windows, _windows(value, windows), strict=True):
            out.append((step, rows[off], got))
    return out


def _max_layout(params: LrParams) -> tuple[int, int, int]:
    """The widest layout the honest party accepts: (count, bits, T)."""
    count = BATCH // BATCH_FACTOR
    bits = 64 - V_BITS - 1 - max_batch(params, N_ROWS).bit_length()
    return count, bits, count * 64


@dataclass(frozen=True)
class HostRun:
    """The honest host's training as it ran: u_H per round (by row) and its final weights."""

    u: dict[int, np.ndarray]
    weights: np.ndarray


def _host_replay(
    Xh: np.ndarray, y: np.ndarray, params: LrParams, steer: tuple[int, int] | None
) -> HostRun:
    """The honest host's rounds, from its data and what the crafting guest sent it (the
    residual of a zero model, or the steering slots in round 0); the same float steps."""
    e = choose_exponent(Xh)
    q = quantise(Xh, e).astype(object)
    w, out = np.zeros(Xh.shape[1]), {}
    for epoch, step, _ in rounds(params, N_ROWS, 0, False):
        batch = params.schedule(N_ROWS, epoch)[step - params.first_round(N_ROWS, epoch)]
        u = Xh[batch] @ w
        out[step] = np.zeros(N_ROWS)
        out[step][batch] = u
        if steer is not None and step == 0:
            slots = np.array([-steer[1] if k == steer[0] else 0 for k in range(Xh.shape[1])])
        else:
            s = np.clip(quantise(2.0 - 4.0 * y[batch], V_EXP), -_V_LIMIT, _V_LIMIT)
            slots = np.array(list(q[batch].T.dot(s.astype(object))), dtype=np.int64)
        g = slots.astype(np.float64) * 16.0 ** (V_EXP + e) + Xh[batch].T @ u
        grad = 0.25 * g / len(batch) + params.l2 * w
        w = w - params.learning_rate * grad
    return HostRun(out, w)


def _vq(u: np.ndarray) -> np.ndarray:
    return np.clip(quantise(u, V_EXP), -_V_LIMIT, _V_LIMIT)


# ---- (a) setup: refused before the honest party's features leave ---------------------------------


@pytest.mark.parametrize("dishonest", ["guest", "host"])
def test_a_coordinate_count_above_the_batch_floor_is_refused_before_any_features(
    credit, wire: WireRecorder, dishonest: str
) -> None:  # type: ignore[no-untyped-def]
    """Announcing 13 coordinates for batches of 200 rows: the honest party would hand out
    13 combinations of 200 of its values a batch (at most 12 keep 16 rows each)."""
    Xg, Xh, y = credit
    params = _params()
    count = BATCH // BATCH_FACTOR + 1

    def liar(ctx: RoleContext) -> Peer:
        return Peer.announce(ctx, "h" if dishonest == "guest" else "g", params, count, 16)

    guest: Role = liar if dishonest == "guest" else (lambda ctx: train_guest(ctx, Xg, y, params))
    host: Role = liar if dishonest == "host" else (lambda ctx: train_host(ctx, Xh, params))
    honest, cheat = ("h", "g") if dishonest == "guest" else ("g", "h")
    with pytest.raises(ProtocolError) as info:
        _run(guest, host, wire)
    assert str(info.value) == (
        f"party '{honest}' refuses the job: '{cheat}' announced 13 feature coordinates, and "
        "batches of 200 rows hide at most 12 (at least 16 rows per coordinate); raise "
        "model.batch_size"
    )
    assert not _sent(wire, honest, LR2_FEATURES.tag)


def test_feature_bits_that_cannot_fit_64_bit_slots_are_refused(credit, wire: WireRecorder) -> None:  # type: ignore[no-untyped-def]
    """27 bits fit (27 + 28 value bits + 8 for a 200-row sum + 1 = 64); 28 do not."""
    Xg, Xh, y = credit
    params = _params()
    _, widest, _ = _max_layout(params)
    assert widest == 27
    host: Role = lambda ctx: train_host(ctx, Xh, params)  # noqa: E731
    liar: Role = lambda ctx: Peer.announce(ctx, "h", params, 5, widest + 1)  # noqa: E731
    with pytest.raises(
        ProtocolError,
        match=r"party 'h' refuses the layout 'g' announced: 28-bit features do not fit "
        r"two-party LR's 64-bit slots",
    ):
        _run(liar, host, wire)
    assert not _sent(wire, "h", LR2_FEATURES.tag)


def test_a_public_key_under_2048_bits_is_refused_on_a_production_path(
    credit, wire: WireRecorder
) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = credit
    params = _params(key_bits=2048, insecure_test_key=False)
    host: Role = lambda ctx: train_host(ctx, Xh, params)  # noqa: E731
    liar: Role = lambda ctx: Peer.announce(ctx, "h", params, 5, 16)  # a 1024-bit key  # noqa: E731
    with pytest.raises(
        CryptoError, match=r"'g' sent a Paillier public key this job refuses: .*1024"
    ):
        _run(liar, host, wire)
    assert not _sent(wire, "h", LR2_FEATURES.tag)


def _honest_layout(Xg: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    q = quantise(
        np.hstack([Xg, y.reshape(-1, 1)]), choose_exponent(np.hstack([Xg, y.reshape(-1, 1)]))
    )
    return q.shape[1], int(np.abs(q).max()).bit_length()


@pytest.mark.parametrize("fault", ["another key", "one row short"])
def test_feature_ciphertexts_under_another_key_or_of_the_wrong_count_are_refused(
    credit, wire: WireRecorder, fault: str
) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = credit
    params = _params()

    def guest(ctx: RoleContext) -> None:
        peer = Peer.announce(ctx, "h", params, *_honest_layout(Xg, y))
        rows = [0] * (N_ROWS - (fault == "one row short"))
        other = generate_keypair(
            SMALL_TEST_KEY_BITS, ctx.rng.child("other"), insecure_test_size=True
        )[1]
        peer.exchange_features(rows, under=other if fault == "another key" else None)

    host: Role = lambda ctx: train_host(ctx, Xh, params)  # noqa: E731
    if fault == "another key":
        error, match = CryptoError, r"'g' sent 'lr2.features' encrypted under another public key"
    else:
        error, match = ProtocolError, r"'g' sent 799 ciphertexts as 'lr2.features', expected 800"
    with pytest.raises(error, match=match):
        _run(guest, host, wire)
    assert not _sent(wire, "h", LR2_PRODUCT.tag)


# ---- (b) products: the wrong count, key, exponent or round is refused ----------------------------


@pytest.mark.parametrize(
    "fault", ["two ciphertexts", "the host's own product back", "another exponent", "round 0 again"]
)
def test_a_malformed_or_replayed_product_is_refused(credit, wire: WireRecorder, fault: str) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = credit
    params = _params()

    def guest(ctx: RoleContext) -> None:
        peer = Peer.announce(ctx, "h", params, *_honest_layout(Xg, y))
        peer.exchange_features([0] * N_ROWS)
        batches = params.schedule(N_ROWS, 0)
        first = peer.product(batches[0], 2.0 - 4.0 * y[batches[0]])
        ctx.send(LR2_PRODUCT, "h", first, round=0)
        own = ctx.recv(LR2_PRODUCT, "h", round=0, key=peer.own.public_key, count=1)
        bad = {
            "two ciphertexts": lambda: CipherVector.concat([first, first]),
            "the host's own product back": lambda: own,
            "another exponent": lambda: peer.product(
                batches[1], y[batches[1]]
            ).decrease_exponent_to(V_EXP - 1),
        }
        if fault == "round 0 again":
            ctx.send(LR2_PRODUCT, "h", first, round=0)
        else:
            ctx.send(LR2_PRODUCT, "h", bad[fault](), round=1)

    host: Role = lambda ctx: train_host(ctx, Xh, params)  # noqa: E731
    error, match = {
        "two ciphertexts": (ProtocolError, r"'g' sent 2 ciphertexts as 'lr2.product', expected 1"),
        "the host's own product back": (
            CryptoError,
            r"'g' sent 'lr2.product' encrypted under another public key",
        ),
        "another exponent": (
            ProtocolError,
            r"'g' sent 'lr2.product' at fixed-point exponent -6, expected -5",
        ),
        "round 0 again": (
            UnexpectedMessageError,
            r"party 'h' expected 'lr2.product' round 1 from 'g' but received",
        ),
    }[fault]
    with pytest.raises(error, match=match):
        _run(guest, host, wire)
    assert _sent(wire, "h", LR2_PRODUCT.tag) == [0, 1]  # it had sent round 1's before reading


# ---- (c) a dishonest guest crafting its features: the bound on u_H -------------------------------


@dataclass(frozen=True)
class GuestAttack:
    inside: Read  # 29-bit windows inside T
    above: Read  # 48-bit windows above T
    truth: HostRun


GUEST_T = 6 * 64  # the guest announces 6 coordinates of 27 bits: T = 384


def _guest_attack(credit, host_name: str, steer: tuple[int, int] | None = None) -> GuestAttack:  # type: ignore[no-untyped-def]
    """In every batch of the epoch the guest places 13 rows in 29-bit windows inside T
    and 12 rows in 48-bit windows above it, and reads what the host's product gives."""
    _, Xh, y = credit
    params = _params()
    inside = [(WINDOW * k, WINDOW) for k in range(GUEST_T // WINDOW)]
    above = [(GUEST_T + 48 * k, 48) for k in range(12)]
    place = _placement(params, [off for off, _ in inside + above])
    plaintexts = _plaintexts(place)

    def guest(ctx: RoleContext) -> Peer:
        return _crafting_guest(ctx, y, params, (6, 27), plaintexts, steer)

    out = _run(guest, lambda ctx: train_host(ctx, Xh, params), host_name=host_name)
    assert out["g"].layout.group_packing(0).total_bits == GUEST_T
    truth = _host_replay(Xh, y, params, steer)
    np.testing.assert_array_equal(out[host_name].weights, truth.weights)  # the replay is exact
    read = _read(out["g"], place, inside + above)
    return GuestAttack(
        inside=[x for x in read if place[x[1]] < GUEST_T],
        above=[x for x in read if place[x[1]] >= GUEST_T],
        truth=truth,
    )


@pytest.fixture(scope="module")
def guest_attack(credit) -> GuestAttack:  # type: ignore[no-untyped-def]
    return _guest_attack(credit, "h")


def test_inside_its_slots_a_crafted_guest_reads_T_over_29_host_partial_predictions(
    guest_attack: GuestAttack,
) -> None:
    """The bound, demonstrated: T = 384 bits give 13 exact u_H values per product (rounds
    1-3; in round 0 the host's weights are zero). An honest layout gives 6 sums of 200."""
    u = guest_attack.truth.u
    later = [(s, r, v) for s, r, v in guest_attack.inside if s > 0]
    assert len(later) == 3 * 13
    assert [v for _, _, v in later] == [_vq(u[s])[r] for s, r, _ in later]
    assert len({v for _, _, v in later}) == len(later)  # real, distinct values


def test_above_its_slots_a_crafted_guest_reads_only_the_top_mask(
    credit, guest_attack: GuestAttack
) -> None:  # type: ignore[no-untyped-def]
    """Rows placed above T come back as uniform 48-bit noise: not one even in the range a
    u_H value can take, no correlation with the true values, and different in a run
    with another host seed (same data, same u_H), while the values inside T repeat."""
    u = guest_attack.truth.u
    later = [(s, r, v) for s, r, v in guest_attack.above if s > 0]
    assert len(later) == 3 * 12
    truth = np.array([_vq(u[s])[r] for s, r, _ in later], dtype=np.float64)
    got = np.array([v for _, _, v in later], dtype=np.float64)
    assert np.abs(truth).max() > 2**16 and np.abs(got).min() >= 2**V_BITS
    assert abs(np.corrcoef(truth, got)[0, 1]) < 0.5
    again = _guest_attack(credit, "h2")
    assert again.inside == guest_attack.inside
    pairs = zip(again.above, guest_attack.above, strict=True)
    assert all(a[:2] == b[:2] and a[2] != b[2] for a, b in pairs)


def test_the_top_mask_leaves_at_most_two_bits_above_the_slots() -> None:
    """R uniform in [1, top] with top ≈ max_int(n) / 2^T ≈ n / (3·2^T): whatever sits above
    T is known only up to a window of a third of the room, log2 3 ≈ 1.6 bits a product."""
    n = (1 << 1023) + 1  # any odd modulus of the size
    for T in (64, GUEST_T, 768):
        top = (max_int(n) >> T) - 2
        assert 1.58 < math.log2((n >> T) / top) < 1.59


def test_a_steering_guest_reads_host_feature_cells(credit) -> None:  # type: ignore[no-untyped-def]
    """The peer chooses the honest party's gradient share: −K·e_j in round 0 makes
    ``w_H = α e_j`` (the host's own term is zero while ``u_H = 0``), so round 1's u_H is
    ``α X_H[:, j]`` and the crafted slots read 13 host cells of column j, to 2**-21 / α.
    Demonstrated, not stopped: the host cannot check the product it decrypts, nor the
    guest's feature ciphertexts it multiplies."""
    _, Xh, _ = credit
    params = _params()
    e = choose_exponent(Xh)
    j, alpha = 4, 1.0
    K = round(alpha * BATCH / (params.learning_rate * 0.25 * 16.0 ** (V_EXP + e)))
    attack = _guest_attack(credit, "h", steer=(j, K))
    batch = params.schedule(N_ROWS, 0)[1]
    np.testing.assert_array_equal(attack.truth.u[1][batch], alpha * Xh[batch, j])  # steered
    cells = [(r, v) for s, r, v in attack.inside if s == 1]
    assert len(cells) == 13
    for r, v in cells:
        assert abs(v * 16.0**V_EXP / alpha - Xh[r, j]) <= 2**-21
    assert len({round(Xh[r, j], 6) for r, _ in cells}) > 5  # real, varied values


# ---- (d) a dishonest host crafting its features: the guest's residuals and labels ----------------


def _host_attack(credit, protection: tuple[float, float] | None):  # type: ignore[no-untyped-def]
    """The widest layout the guest accepts (12 coordinates of 27 bits, T = 768): 26 rows
    in 29-bit windows per batch; returns the labels guessed from s < 0 and the truth."""
    Xg, _, y = credit
    params = _params(learning_rate=1e-9, label_protection=protection)
    count, bits, T = _max_layout(params)
    inside = [(WINDOW * k, WINDOW) for k in range(T // WINDOW)]
    place = _placement(params, [off for off, _ in inside])
    guest: Role = lambda ctx: train_guest(ctx, Xg, y, params)  # noqa: E731
    host: Role = lambda ctx: _crafting_host(ctx, params, (count, bits), _plaintexts(place))  # noqa: E731
    out = _run(guest, host)
    read = _read(out["h"], place, inside)
    assert len(read) == 4 * len(inside) == 4 * 26
    guess = np.array([v < 0 for _, _, v in read])
    truth = np.array([y[r] == 1 for _, r, _ in read])
    return guess, truth, params


def _balanced(guess: np.ndarray, truth: np.ndarray) -> float:
    return float(0.5 * (guess[truth].mean() + (~guess[~truth]).mean()))


def test_without_label_protection_a_crafted_host_reads_26_labels_a_batch(credit) -> None:  # type: ignore[no-untyped-def]
    """The same bound against the guest: ⌊768/29⌋ = 26 residuals s = u_A + 2 − 4y per
    product, whose sign gives the label (as the subvector attack does in coordinated LR)."""
    guess, truth, _ = _host_attack(credit, None)
    assert truth.any() and (~truth).any()
    assert _balanced(guess, truth) > 0.99


def test_with_label_protection_the_crafted_host_is_bounded_by_epsilon(credit) -> None:  # type: ignore[no-untyped-def]
    """(ε, δ) = (1, 1e-5): each residual it reads carries the guest's noise, so any test of
    one label has balanced accuracy at most (e^ε + δ) / (1 + e^ε) = 0.731."""
    epsilon, delta = 1.0, 1e-5
    guess, truth, params = _host_attack(credit, (epsilon, delta))
    assert params.label_noise == pytest.approx(label_noise.sigma_for(epsilon, delta, 1))
    dp_bound = (math.exp(epsilon) + delta) / (1 + math.exp(epsilon))
    assert _balanced(guess, truth) <= dp_bound
