"""Two-party hetero logistic regression: a guest and one host, no third party.

Each party makes its own Paillier key and keeps its own weights. The idea: a party's
features do not change during training, so each encrypts them once, packed, under its
own key and hands them to the other; from then on a mini-batch needs no per-row
encryption at all, only one encrypted dot product per party.

Setup, once per job:

0a. guest <-> host : own public key; own layout (coordinates ``m_p``, feature bits ``b_p``).
    Each checks the other's layout: the other learns ``m_p`` combinations of its values
    per batch, so the batch floor (:mod:`lianmo.protocols.lr_guard`) is checked against it.
0b. guest <-> host : ``[[X̃_p]]_p``, every training row of the sender's quantised features
    packed into one plaintext per ``slots`` columns (:class:`Layout`), under its own key.
    The guest's ``X̃_A`` is its standardised columns, the bias column and the label column.

Per mini-batch (``round`` = global batch number), both at the same time:

1. host  -> guest : ``[[X̃_A[b]ᵀ u_H + R·2^T]]_A`` with ``u_H = X_H[b] w_H``, quantised;
   guest -> host  : ``[[X̃_H[b]ᵀ s + R'·2^T']]_H`` with ``s = u_A + 2 − 4y (+ e)``
   (``e``: label-protection noise, :mod:`lianmo.protocols.label_noise`). Each is one
   signed multi-exponentiation over the batch's packed rows, plus a *top mask*: a
   uniform multiple of ``2^T`` (``T`` the honest slots' width) that hides whatever a
   dishonest encrypter packed above its slots, re-randomising the product too.
2. Each decrypts its own product and reads its slots: the guest gets ``X_Aᵀ u_H`` (and
   ``Σ_{y=1} u_H`` for the loss), the host ``X_Hᵀ s``. With ``4d = s + u_H`` (the
   Taylor residual, as in :mod:`lianmo.protocols.hetero_lr`) each forms its gradient
   ``X_pᵀ 4d`` from its own share and updates its own weights.
3. After an epoch's last batch: host -> guest ``Σ u_H²`` over the epoch, which completes
   the guest's Taylor loss; guest -> host: stop or continue (loss change below tol).

Who learns what: exactly what the coordinated protocol lets the data parties learn,
without a third party. The guest learns ``X_Aᵀ u_H`` per batch (it learns ``X_Aᵀ 4d`` in
the coordinated protocol, which is the same thing) plus ``Σ_{y=1} u_H`` per batch and
``Σ u_H²`` per epoch (the coordinated arbiter learns the loss instead); the host learns
``X_Hᵀ 4d`` per batch as there. Neither sees the other's features, labels, partial
predictions, gradients or weights in the clear; each party's product is decrypted only
by the party that encrypted the features, and only within the layout it announced.

Fixed point: features at the exponent :func:`~lianmo.crypto.fixedpoint.choose_exponent`
picks from the party's data (``b_p`` bits); ``u_H`` and ``s`` at ``V_EXP`` (2**-20),
clipped to ``|v| < 2**(V_BITS - 20)`` = 256 (beyond it the sigmoid is flat to double
precision and the Taylor residual meaningless). A slot holds a batch sum of products,
``b_p + V_BITS + bits(batch) + 1`` bits (:meth:`Packing.for_sums`).
"""

from __future__ import annotations

import base64
import math
import time
import typing as t
from dataclasses import dataclass, field

import numpy as np

from lianmo.crypto.drbg import Drbg
from lianmo.crypto.fixedpoint import choose_exponent, max_int, quantise
from lianmo.crypto.paillier import (
    MAX_SLOT_BITS,
    CipherVector,
    Packing,
    PrivateKey,
    PublicKey,
    generate_keypair,
)
from lianmo.errors import ConfigError, ProtocolError
from lianmo.models.optimizer import Optimizer, make_optimizer, step_weights
from lianmo.protocols import label_noise
from lianmo.protocols.context import RoleContext
from lianmo.protocols.hetero_lr import LrParams, close_epoch, rounds
from lianmo.protocols.lr_guard import BATCH_FACTOR, check_batch_floor, smallest_batch
from lianmo.wire.convert import ints_to_msg
from lianmo.wire.steps import (
    LR2_EPOCH_END,
    LR2_FEATURES,
    LR2_LAYOUT,
    LR2_PLAN,
    LR2_PRODUCT,
    LR2_PUBLIC_KEY,
    LR2_SQUARE_SUM,
    LR2_V_EXP,
)

V_EXP = LR2_V_EXP
V_BITS = 28
"""Bound on a quantised partial prediction or residual: ``|v| < 2**V_BITS`` at ``V_EXP``."""
TOP_MASK_BITS = 128
"""Least room a plaintext keeps above its slots for the top mask."""
PHASE = "train"
SETUP = "lr2/setup"
CHECKPOINT = "lr2/train"
SQUARE_SUM_BYTES = 16
"""Width of the host's epoch ``Σ uq²`` on the wire: room for 2**40 rows of ``V_BITS``."""
_V_LIMIT = (1 << V_BITS) - 1


@dataclass(frozen=True, slots=True)
class Layout:
    """How a party's ``count`` feature columns of ``bits`` bits are packed, for batches
    of at most ``max_batch`` rows under a key of modulus ``n``: ``groups`` plaintexts
    per row, each of at most ``per_group`` slots."""

    count: int
    bits: int
    max_batch: int
    n: int

    @property
    def slot_bits(self) -> int:
        """A slot's width, as :meth:`Packing.for_sums` gives it for batch sums; computed
        here because a :class:`Packing` refuses slots over 64 bits before :meth:`check`
        could name the party."""
        return self.bits + V_BITS + self.max_batch.bit_length() + 1

    @property
    def per_group(self) -> int:
        room = max_int(self.n).bit_length() - TOP_MASK_BITS
        return max(1, room // self.slot_bits)

    @property
    def groups(self) -> int:
        return math.ceil(self.count / self.per_group)

    def group_columns(self, g: int) -> range:
        return range(g * self.per_group, min(self.count, (g + 1) * self.per_group))

    def group_packing(self, g: int) -> Packing:
        width = len(self.group_columns(g))
        return Packing((self.slot_bits,) * width, (self.bits + V_BITS,) * width)

    def check(self, party: str) -> None:
        """Refuse a layout whose slots would not fit (too wide a feature or batch)."""
        if self.slot_bits > MAX_SLOT_BITS:
            limit = MAX_SLOT_BITS - V_BITS - 1 - self.max_batch.bit_length()
            raise ConfigError(
                f"party '{party}': its quantised features need {self.bits} bits, but with "
                f"batches of up to {self.max_batch} rows two-party LR's {MAX_SLOT_BITS}-bit "
                f"slots leave room for {limit}; scale or clip the features (their largest "
                "standardised value is too far out), or lower model.batch_size"
            )


@dataclass(frozen=True, slots=True)
class SetupState:
    """Checkpoint ``lr2/setup``: the peer's key, layout and encrypted features."""

    peer_key: bytes
    peer_count: int
    peer_bits: int
    width: int
    features: bytes  # the peer's packed feature ciphertexts, fixed-width big-endian
    outputs: int

    def to_checkpoint(self) -> dict[str, t.Any]:
        return {
            "outputs": self.outputs,
            "peer_key": self.peer_key.hex(),
            "peer_layout": [self.peer_count, self.peer_bits],
            "width": self.width,
            "features": base64.b64encode(self.features).decode("ascii"),
        }

    @classmethod
    def from_checkpoint(cls, raw: t.Mapping[str, t.Any]) -> SetupState:
        count, bits = (int(v) for v in raw["peer_layout"])
        return cls(
            peer_key=bytes.fromhex(str(raw["peer_key"])),
            peer_count=count,
            peer_bits=bits,
            width=int(raw["width"]),
            features=base64.b64decode(str(raw["features"])),
            outputs=int(raw["outputs"]),
        )


@dataclass(frozen=True, slots=True)
class TrainState:
    """Checkpoint ``lr2/train`` after a round: weights, and the guest's loss so far."""

    round: int
    weights: tuple[float, ...]
    stopped: bool
    losses: tuple[float, ...] = ()
    loss8: float = 0.0  # the epoch's 8·loss so far, without the host's Σ u_H²
    square_sums: tuple[int, ...] = ()  # the host's Σ uq² so far this epoch, per output
    epoch_seconds: tuple[float, ...] = ()  # wall clock: out of the logged digest
    optimizer: t.Mapping[str, t.Any] = field(default_factory=dict)

    def to_checkpoint(self) -> dict[str, t.Any]:
        return {
            "opt": dict(self.optimizer),
            "round": self.round,
            "w": list(self.weights),
            "stopped": self.stopped,
            "losses": list(self.losses),
            "loss8": self.loss8,
            "square_sums": [str(v) for v in self.square_sums],
            "timing": list(self.epoch_seconds),
        }

    @classmethod
    def from_checkpoint(cls, raw: t.Mapping[str, t.Any]) -> TrainState:
        return cls(
            round=int(raw["round"]),
            weights=tuple(float(v) for v in raw["w"]),
            stopped=bool(raw["stopped"]),
            losses=tuple(float(v) for v in raw["losses"]),
            loss8=float(raw["loss8"]),
            square_sums=tuple(int(v) for v in raw["square_sums"]),
            epoch_seconds=tuple(float(v) for v in raw.get("timing", ())),
            optimizer=dict(raw["opt"]),
        )


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A party's weights; at the guest also the Taylor loss and wall seconds per epoch."""

    weights: np.ndarray
    setup_seconds: float
    losses: tuple[float, ...] = ()
    rounds: int = 0
    epoch_seconds: tuple[float, ...] = ()


@dataclass
class _Session:
    """A party's live keys and the peer's encrypted features after setup."""

    own: PrivateKey
    own_layout: Layout
    exponent: int  # of the party's own quantised features
    peer_key: PublicKey
    peer_layout: Layout
    peer_features: list[CipherVector]  # one vector per group, one ciphertext per row
    outputs: int  # models trained side by side: 1 (binary), or one per class


def peer_of(ctx: RoleContext) -> str:
    """The other data party of a two-party job."""
    if ctx.arbiter is not None or len(ctx.hosts) != 1:
        raise ProtocolError(
            "two-party logistic regression runs between one guest and one host without an "
            f"arbiter; job '{ctx.job_id}' has hosts {list(ctx.hosts)} and arbiter "
            f"{ctx.arbiter!r}"
        )
    return ctx.hosts[0] if ctx.party == ctx.guest else ctx.guest


def max_batch(params: LrParams, n_rows: int) -> int:
    """The most rows any batch of the job's schedule has (a remainder joins the last)."""
    return max(len(b) for b in params.schedule(n_rows, 0))


def _setup(ctx: RoleContext, features: np.ndarray, params: LrParams, outputs: int = 0) -> _Session:
    """Steps 0a and 0b, or the state a checkpoint kept of them. The guest passes its
    number of ``outputs`` (models: 1, or one per class); the host learns it here."""
    peer = peer_of(ctx)
    n_rows = features.shape[0]
    public, private = generate_keypair(  # from a child stream of the DRBG: same on resuming
        params.key_bits, ctx.rng, insecure_test_size=params.insecure_test_key
    )
    exponent = choose_exponent(features)
    Xq = quantise(features, exponent)
    bits = max(1, int(np.abs(Xq).max()).bit_length())
    top = max_batch(params, n_rows)
    own_layout = Layout(Xq.shape[1], bits, top, int(public.n))
    saved = ctx.checkpoints.restore(SETUP, SetupState)
    if saved is None:
        own_layout.check(ctx.party)
        check_batch_floor(ctx.party, Xq.shape[1], n_rows, params.batch_size)
        if outputs:
            ctx.send(LR2_PLAN, peer, outputs)
        else:
            outputs = ctx.recv(LR2_PLAN, peer)
        ctx.send(LR2_PUBLIC_KEY, peer, public)
        ctx.send(LR2_LAYOUT, peer, (own_layout.count, own_layout.bits))
        peer_key = ctx.recv(
            LR2_PUBLIC_KEY,
            peer,
            key_bits=params.key_bits,
            insecure_test_key=params.insecure_test_key,
        )
        count, peer_bits = ctx.recv(LR2_LAYOUT, peer)
        peer_layout = _check_peer_layout(ctx, peer, count, peer_bits, n_rows, params, peer_key)
        ctx.progress(PHASE, 0, params.total_rounds(n_rows), f"encrypting {n_rows} rows once")
        ctx.send(LR2_FEATURES, peer, _encrypt_rows(ctx, private, own_layout, Xq))
        received = ctx.recv(LR2_FEATURES, peer, key=peer_key, count=n_rows * peer_layout.groups)
        width, data = received.to_bytes()
        setup = SetupState(peer_key.n_bytes(), count, peer_bits, width, data, outputs)
        ctx.checkpoints.save(SETUP, setup)
    else:
        outputs = saved.outputs
        peer_key = ctx.job_key(
            LR2_PUBLIC_KEY,
            peer,
            saved.peer_key,
            key_bits=params.key_bits,
            insecure_test_key=params.insecure_test_key,
        )
        peer_layout = Layout(saved.peer_count, saved.peer_bits, top, int(peer_key.n))
        received = CipherVector.from_bytes(
            peer_key, 0, n_rows * peer_layout.groups, saved.width, saved.features
        )
    peer_key.prepare_obfuscation(ctx.rng)
    groups = peer_layout.groups
    by_group = [received.select(np.arange(g, n_rows * groups, groups)) for g in range(groups)]
    return _Session(private, own_layout, exponent, peer_key, peer_layout, by_group, outputs)


def _check_peer_layout(
    ctx: RoleContext,
    peer: str,
    count: int,
    bits: int,
    n_rows: int,
    params: LrParams,
    peer_key: PublicKey,
) -> Layout:
    """The peer learns ``count`` combinations of this party's values per batch: refuse a
    count the batches cannot hide, or bits no honest layout has."""
    rows = smallest_batch(n_rows, params.batch_size)
    if rows < BATCH_FACTOR * count:
        raise ProtocolError(
            f"party '{ctx.party}' refuses the job: '{peer}' announced {count} feature "
            f"coordinates, and batches of {rows} rows hide at most {rows // BATCH_FACTOR} "
            f"(at least {BATCH_FACTOR} rows per coordinate); raise model.batch_size"
        )
    layout = Layout(count, bits, max_batch(params, n_rows), int(peer_key.n))
    if layout.slot_bits > MAX_SLOT_BITS:
        raise ProtocolError(
            f"party '{ctx.party}' refuses the layout '{peer}' announced: {bits}-bit "
            f"features do not fit two-party LR's {MAX_SLOT_BITS}-bit slots"
        )
    return layout


def _encrypt_rows(
    ctx: RoleContext, private: PrivateKey, layout: Layout, Xq: np.ndarray
) -> CipherVector:
    """Each row's columns packed into ``layout.groups`` plaintexts (row-major), encrypted
    on the key holder's CRT path."""
    packed: list[int] = []
    per_group = [
        layout.group_packing(g).pack(Xq[:, list(layout.group_columns(g))])
        for g in range(layout.groups)
    ]
    for row in zip(*per_group, strict=True):
        packed.extend(row)
    return private.encrypt_ints(packed, 0, ctx.rng, ctx.compute)


def quantised(v: np.ndarray) -> np.ndarray:
    """``v`` at ``V_EXP``, clipped to ``|vq| < 2**V_BITS`` (see the module docstring)."""
    return np.clip(quantise(v, V_EXP), -_V_LIMIT, _V_LIMIT)


def top_mask(n: int, T: int, rng: Drbg) -> int:
    """``R·2^T`` with ``R`` uniform in ``[1, top_range(n, T)]``: everything above the honest
    slots is uniform to the decrypting party, whatever it packed there, and an honest sum
    ``|S| < 2^(T−1)`` plus the mask stays in ``(0, n)``, so its low ``T`` bits read ``S``
    (with ``R = 0`` a negative sum would wrap to ``n − |S|``)."""
    return (1 + rng.randbelow(top_range(n, T))) << T


def top_range(n: int, T: int) -> int:
    """How many values the top mask's ``R`` takes: ``(n >> T) − 2``."""
    return (n >> T) - 2


def _product(ctx: RoleContext, session: _Session, batch: np.ndarray, V: np.ndarray) -> CipherVector:
    """Step 1: ``[[X̃_peer[b]ᵀ vq_c + R·2^T]]`` per output ``c`` (a column of ``V``) and
    group, output-major, under the peer's key. The peer's rows of the batch are taken
    once; the top masks of all products are encrypted in one call."""
    key, layout = session.peer_key, session.peer_layout
    rows = [group.select(batch) for group in session.peer_features]
    products, masks = [], []
    for c in range(V.shape[1]):
        vq = quantised(V[:, c])
        for g, group in enumerate(rows):
            products.append(group.dot_ints(vq, V_EXP, ctx.compute))
            masks.append(top_mask(int(key.n), layout.group_packing(g).total_bits, ctx.rng))
    hidden = key.encrypt_residues(masks, V_EXP, ctx.rng, ctx.compute)
    return CipherVector.concat(products).add(hidden)


def _exchange(
    ctx: RoleContext, session: _Session, peer: str, step: int, batch: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Steps 1 and 2: send the product of the peer's rows with ``v``, read the peer's
    product of this party's rows."""
    ctx.send(LR2_PRODUCT, peer, _product(ctx, session, batch, v), round=step)
    own_key = session.own.public_key
    count = session.own_layout.groups * session.outputs
    product = ctx.recv(LR2_PRODUCT, peer, round=step, key=own_key, count=count)
    return _read_product(session, product, ctx.compute)


def _read_product(session: _Session, product: CipherVector, backend: t.Any) -> np.ndarray:
    """Step 2: decrypt the peer's products of this party's features: the slots as floats,
    one column per output."""
    layout = session.own_layout
    values = session.own.decrypt_raw(product, backend)
    out: list[np.ndarray] = []
    for i, value in enumerate(values):
        packing = layout.group_packing(i % layout.groups)
        T = packing.total_bits
        low = int(value) & ((1 << T) - 1)
        signed = low - (1 << T) if low >> (T - 1) else low
        out.append(packing.unpack([signed])[0].astype(np.float64))
    scale = 16.0 ** (V_EXP + session.exponent)
    return np.concatenate(out).reshape(session.outputs, layout.count).T * scale


def _optimizer(params: LrParams, state: TrainState) -> Optimizer:
    """This party's optimiser of its own weights (all models' weights as one vector, so
    one-vs-rest steps each class as its own binary model would): fresh, or continuing
    from the round checkpoint."""
    return make_optimizer(params.optimizer, params.learning_rate, params.lr_decay, state.optimizer)


def _update(
    opt: Optimizer, W: np.ndarray, gradient: np.ndarray, rows: int, params: LrParams, step: int
) -> np.ndarray:
    """``W`` after one step on the batch's ``Xᵀ·4d`` (``gradient``, one column per model)."""
    flat = step_weights(opt, W.ravel(), 0.25 * gradient.ravel(), rows, params.l2, step)
    return flat.reshape(W.shape)


# ---- guest ---------------------------------------------------------------------------


def train_guest(ctx: RoleContext, X: np.ndarray, y: np.ndarray, params: LrParams) -> TrainResult:
    """Guest side. ``X`` is standardised and ends with a bias column; ``y`` holds 0/1
    labels (one model) or, two-dimensional, one 0/1 column per class (one-vs-rest: one
    model per class, trained side by side on the same batches). The weights come back in
    the same shape: ``(m,)``, or ``(m, classes)``."""
    host = peer_of(ctx)
    Y = y.reshape(-1, 1) if y.ndim == 1 else y
    n_rows, m = X.shape
    outputs = Y.shape[1]
    started = time.perf_counter()
    session = _setup(ctx, np.hstack([X, Y]), params, outputs)
    setup_seconds = round(time.perf_counter() - started, 3)
    state = ctx.checkpoints.restore(CHECKPOINT, TrainState)
    if state is None:
        state = TrainState(-1, (0.0,) * (m * outputs), False)
    if params.label_protection is not None:
        epsilon, delta = params.label_protection
        sigma = round(params.label_noise, 6)
        ctx.record("label_protection", epsilon=epsilon, delta=delta, sigma=sigma)
    W = np.array(state.weights, dtype=np.float64).reshape(m, outputs)
    opt = _optimizer(params, state)
    losses, loss8 = list(state.losses), state.loss8
    epoch_seconds = list(state.epoch_seconds)
    done = state.round + 1
    total = params.total_rounds(n_rows)
    for epoch, step, last in rounds(params, n_rows, state.round + 1, state.stopped):
        batch = params.schedule(n_rows, epoch)[step - params.first_round(n_rows, epoch)]
        started = time.perf_counter()
        U_a = X[batch] @ W
        S = U_a + 2.0 - 4.0 * Y[batch]
        if params.label_noise > 0:  # the guest's update uses the same noisy residual
            noise = label_noise.gaussian(ctx.rng, len(batch) * outputs, params.label_noise)
            S = S + noise.reshape(len(batch), outputs)
        slots = _exchange(ctx, session, host, step, batch, S)  # 1., 2.
        xt_u, positives_u = slots[:m], slots[m:]
        loss8 += sum(
            _loss8_part(U_a[:, c], Y[batch, c], W[:, c], xt_u[:, c], float(positives_u[c, c]))
            for c in range(outputs)
        )
        W = _update(opt, W, X[batch].T @ S + xt_u, len(batch), params, step)
        ctx.progress(PHASE, step + 1, total, f"epoch {epoch + 1}/{params.epochs}")
        stop = False
        epoch_seconds += [0.0] * (epoch + 1 - len(epoch_seconds))
        epoch_seconds[epoch] += time.perf_counter() - started
        if last:  # 3.
            squares = ctx.recv(LR2_SQUARE_SUM, host, round=step, count=outputs)
            losses.append((loss8 + sum(squares) * 16.0 ** (2 * V_EXP)) / 8.0 / n_rows)
            loss8 = 0.0
            stop = close_epoch(ctx, params, losses, epoch, step, total)
            ctx.send(LR2_EPOCH_END, host, "stop" if stop else "continue", round=step)
        done = step + 1
        timing = tuple(round(v, 3) for v in epoch_seconds)
        flat = tuple(float(v) for v in W.ravel())
        saved = TrainState(step, flat, stop, tuple(losses), loss8, (), timing, opt.state())
        ctx.checkpoints.save(CHECKPOINT, saved)
        if stop:
            break
    seconds = tuple(round(v, 3) for v in epoch_seconds)
    return TrainResult(W[:, 0] if y.ndim == 1 else W, setup_seconds, tuple(losses), done, seconds)


def _loss8_part(
    u_a: np.ndarray, y: np.ndarray, w: np.ndarray, xt_u: np.ndarray, positives_u: float
) -> float:
    """8·(Taylor loss) of a batch without ``Σ u_H²``: ``Σ 8 log 2 + (4 − 8y) u_A + u_A²
    + Σ (4 − 8y + 2 u_A) u_H``, the last from the decrypted slots (``Σ u_H`` is the bias
    slot, ``Σ u_A u_H = w · X_Aᵀ u_H``)."""
    plain = float(np.sum(8.0 * math.log(2.0) + (4.0 - 8.0 * y) * u_a + u_a * u_a))
    cross = 4.0 * float(xt_u[-1]) - 8.0 * positives_u + 2.0 * float(w @ xt_u)
    return plain + cross


# ---- host ----------------------------------------------------------------------------


def train_host(ctx: RoleContext, X: np.ndarray, params: LrParams) -> TrainResult:
    """Host side. ``X`` is standardised (no bias); returns the host's own weights,
    ``(m,)`` for one model or ``(m, classes)`` for one-vs-rest (the guest's plan says)."""
    guest = peer_of(ctx)
    n_rows, m = X.shape
    started = time.perf_counter()
    session = _setup(ctx, X, params)
    setup_seconds = round(time.perf_counter() - started, 3)
    outputs = session.outputs
    state = ctx.checkpoints.restore(CHECKPOINT, TrainState)
    if state is None:
        state = TrainState(-1, (0.0,) * (m * outputs), False, square_sums=(0,) * outputs)
    W = np.array(state.weights, dtype=np.float64).reshape(m, outputs)
    opt = _optimizer(params, state)
    squares = list(state.square_sums)
    total = params.total_rounds(n_rows)
    for epoch, step, last in rounds(params, n_rows, state.round + 1, state.stopped):
        batch = params.schedule(n_rows, epoch)[step - params.first_round(n_rows, epoch)]
        U = X[batch] @ W
        xt_s = _exchange(ctx, session, guest, step, batch, U)  # 1., 2.
        for c in range(outputs):
            squares[c] += sum(int(v) * int(v) for v in quantised(U[:, c]))
        W = _update(opt, W, xt_s + X[batch].T @ U, len(batch), params, step)
        ctx.progress(PHASE, step + 1, total, f"epoch {epoch + 1}/{params.epochs}")
        stop = False
        if last:  # 3.
            ctx.send(LR2_SQUARE_SUM, guest, ints_to_msg(squares, SQUARE_SUM_BYTES), round=step)
            squares = [0] * outputs
            stop = ctx.recv(LR2_EPOCH_END, guest, round=step) == "stop"
        weights = tuple(float(v) for v in W.ravel())
        saved = TrainState(step, weights, stop, square_sums=tuple(squares), optimizer=opt.state())
        ctx.checkpoints.save(CHECKPOINT, saved)
        if stop:
            break
    return TrainResult(W[:, 0] if outputs == 1 else W, setup_seconds)
