"""Coordinated hetero logistic regression (Hardy et al. 2017; FATE's arbiter mode).

The arbiter makes the Paillier key and decrypts only masked gradients and the loss. The
guest holds labels and its own columns (with the bias), each host its own columns; each
keeps its own weights. Before training each data party checks the batch floor against
its own coordinate count and announces its gradient's shape to the arbiter
(``lr.gradient_shape``; the guest first sends ``lr.plan``), and the arbiter checks every
shape before it sends the key (:mod:`lianmo.protocols.lr_guard`). Per mini-batch
(``round`` = global batch number):

1. host_k  -> guest   : [[u_k]] = [[X_k w_k]] and [[Σ u_k²]]
2. guest   -> host_k  : [[4d]] = [[Σ_k u_k]] + [[u_A + 2 - 4y (+ e)]]   (d = Taylor residual;
                        e: label-protection noise, :mod:`lianmo.protocols.label_noise`)
3. guest   -> host_k  : [[S_<k]] = [[Σ_{j<k} u_j]]  (k ≥ 2 only, for the loss cross terms)
   host_k  -> guest   : [[Σ_i S_<k,i u_k,i]]
4. guest   -> arbiter : [[8 L]], the batch's Taylor loss times eight
5. every data party p -> arbiter : [[X_p^T 4d + r_p]] with a fresh random mask r_p
   arbiter -> p       : X_p^T 4d + r_p, decrypted if p's announced count and exponent
                        and the mask's window fit; p removes r_p and updates w_p
6. arbiter -> all     : after each epoch, continue or stop (loss change below tol)

Who learns what: the arbiter learns the loss per batch, each party's coordinate count
and masked gradients (uniform noise to it); the guest never sees host weights or
features, only ciphertexts it cannot decrypt; a host learns ``X_kᵀ·4d`` per batch, ``m``
linear combinations of at least ``16 m`` residuals (docs/protocols.md states the bound).
Aligned row counts and the batch schedule are known to all.

Fixed point: u and d use exponent ``U_EXP`` (16**-6 = 2**-24); loss weights are
quantised to ``X_EXP`` (2**-12), so the loss comes out at ``G_EXP`` = U_EXP + X_EXP and
never needs exponent alignment. Each party quantises its own features at the exponent
:func:`~lianmo.crypto.fixedpoint.choose_exponent` picks from its data (2**-12 for
standardised columns), which bounds each gradient entry's error by half a step times
``sum |4d|``; its gradient comes out at U_EXP plus that exponent. All Paillier work runs
on the party's compute backend (``ctx.compute``).
"""

from __future__ import annotations

import math
import time
import typing as t
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from lianmo.crypto.fixedpoint import choose_exponent, decode_ints, quantise
from lianmo.crypto.paillier import (
    CipherVector,
    PrivateKey,
    PublicKey,
    generate_keypair,
)
from lianmo.data.split import batch_count, batch_schedule
from lianmo.errors import ProtocolError
from lianmo.models.optimizer import Optimizer, make_optimizer, step_weights
from lianmo.protocols import label_noise
from lianmo.protocols.context import RoleContext
from lianmo.protocols.lr_guard import (
    MASK_BITS,
    GradientShape,
    check_announced,
    check_batch_floor,
    check_masked_window,
)
from lianmo.wire.convert import ints_to_msg
from lianmo.wire.steps import (
    LR_CROSS_IN,
    LR_CROSS_OUT,
    LR_EPOCH_END,
    LR_G_EXP,
    LR_GRADIENT,
    LR_HOST_FORWARD,
    LR_HOST_SQUARE_SUM,
    LR_LOSS,
    LR_MASKED_GRADIENT,
    LR_PLAN,
    LR_PUBLIC_KEY,
    LR_RESIDUAL,
    LR_SHAPE,
    LR_U_EXP,
    LR_X_EXP,
)

U_EXP, X_EXP, G_EXP = LR_U_EXP, LR_X_EXP, LR_G_EXP  # declared with the steps that carry them
PHASE = "train"
CHECKPOINT = "lr/train"


@dataclass(frozen=True, slots=True)
class LrParams:
    """Hyperparameters every party of the job shares (from the job spec)."""

    epochs: int
    batch_size: int
    learning_rate: float
    lr_decay: float
    l2: float
    tol: float
    key_bits: int
    seed: int
    insecure_test_key: bool = False  # unit tests only: allows keys below 2048 bits
    label_protection: tuple[float, float] | None = None
    """(ε, δ) the labels keep against hosts over all epochs, or None (see label_noise)."""
    optimizer: str = "sgd"
    """Each data party's optimiser of its own weights (:mod:`lianmo.models.optimizer`)."""
    checkpoint: str = CHECKPOINT
    """Name of the round checkpoint: one per model where a job trains several in turn
    (coordinated one-vs-rest, :mod:`lianmo.node.lr_job`)."""

    @property
    def label_noise(self) -> float:
        """σ of the noise on each residual: calibrated to ``label_protection``, or 0."""
        if self.label_protection is None:
            return 0.0
        epsilon, delta = self.label_protection
        return label_noise.sigma_for(epsilon, delta, self.epochs)

    def schedule(self, n_rows: int, epoch: int) -> list[np.ndarray]:
        return batch_schedule(n_rows, self.batch_size, epoch, self.seed)

    def total_rounds(self, n_rows: int) -> int:
        return self.epochs * batch_count(n_rows, self.batch_size)

    def first_round(self, n_rows: int, epoch: int) -> int:
        """The global round number of ``epoch``'s first batch."""
        return epoch * batch_count(n_rows, self.batch_size)

    def batch_rows(self, n_rows: int, epoch: int, step: int) -> int:
        """How many rows round ``step`` (in ``epoch``) trains on."""
        return len(self.schedule(n_rows, epoch)[step - self.first_round(n_rows, epoch)])


@dataclass(frozen=True, slots=True)
class ArbiterResult:
    """What the arbiter learns: the loss per epoch and when training stopped."""

    losses: tuple[float, ...]
    rounds: int
    round_losses: tuple[float, ...] = ()
    epoch_seconds: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class ArbiterState:
    """Checkpoint ``lr/train`` at the arbiter after a round (``round`` -1: none yet)."""

    round: int
    n_rows: int
    losses: tuple[float, ...] = ()
    round_losses: tuple[float, ...] = ()
    epoch_seconds: tuple[float, ...] = ()  # wall clock: out of the logged digest
    loss_sum: float = 0.0
    stopped: bool = False
    shapes: tuple[tuple[int, int], ...] = ()  # (count, exponent) per data party, in order

    def to_checkpoint(self) -> dict[str, t.Any]:
        return {
            "round": self.round,
            "n_rows": self.n_rows,
            "shapes": [list(s) for s in self.shapes],
            "losses": list(self.losses),
            "round_losses": list(self.round_losses),
            "timing": list(self.epoch_seconds),
            "loss_sum": self.loss_sum,
            "stopped": self.stopped,
        }

    @classmethod
    def from_checkpoint(cls, raw: t.Mapping[str, t.Any]) -> ArbiterState:
        return cls(
            round=int(raw["round"]),
            n_rows=int(raw["n_rows"]),
            losses=tuple(float(v) for v in raw["losses"]),
            round_losses=tuple(float(v) for v in raw["round_losses"]),
            epoch_seconds=tuple(float(v) for v in raw["timing"]),
            loss_sum=float(raw["loss_sum"]),
            stopped=bool(raw["stopped"]),
            shapes=tuple((int(c), int(e)) for c, e in raw["shapes"]),
        )


@dataclass(frozen=True, slots=True)
class PartyState:
    """Checkpoint ``lr/train`` at a data party after a round: its weights, its optimiser's
    state (none for SGD; a checkpoint without one restores a fresh state) and the job key."""

    round: int
    weights: tuple[float, ...]
    stopped: bool
    key: bytes  # the arbiter's modulus, big-endian
    optimizer: t.Mapping[str, t.Any] = field(default_factory=dict)

    def to_checkpoint(self) -> dict[str, t.Any]:
        raw = {
            "round": self.round,
            "w": list(self.weights),
            "stopped": self.stopped,
            "key": self.key.hex(),
        }
        if self.optimizer:  # an SGD checkpoint stays what it always was
            raw["opt"] = dict(self.optimizer)
        return raw

    @classmethod
    def from_checkpoint(cls, raw: t.Mapping[str, t.Any]) -> PartyState:
        return cls(
            round=int(raw["round"]),
            weights=tuple(float(v) for v in raw["w"]),
            stopped=bool(raw["stopped"]),
            key=bytes.fromhex(str(raw["key"])),
            optimizer=dict(raw.get("opt") or {}),
        )


# ---- arbiter -------------------------------------------------------------------------


def train_arbiter(ctx: RoleContext, params: LrParams) -> ArbiterResult:
    """Arbiter side: make the key, decrypt masked gradients and losses, decide when to stop."""
    public, private = generate_keypair(  # from a child stream of the DRBG: same on resuming
        params.key_bits, ctx.rng, insecure_test_size=params.insecure_test_key
    )
    data_parties = (ctx.guest, *ctx.hosts)
    state = ctx.checkpoints.restore(params.checkpoint, ArbiterState)
    if state is None:
        state = _accept_shapes(ctx, params, data_parties)
        ctx.broadcast(LR_PUBLIC_KEY, data_parties, public)  # the key only once all are fit
    shapes = {p: GradientShape(*s) for p, s in zip(data_parties, state.shapes, strict=True)}
    n_rows = state.n_rows
    losses = list(state.losses)
    round_losses = list(state.round_losses)
    epoch_seconds = list(state.epoch_seconds)
    loss_sum = state.loss_sum
    total = params.total_rounds(n_rows)
    for epoch, step, last in rounds(params, n_rows, state.round + 1, state.stopped):
        started = time.perf_counter()
        loss_ct = ctx.recv(LR_LOSS, ctx.guest, round=step, key=public, count=1)  # 4.
        batch_loss = float(private.decrypt(loss_ct)[0]) / 8.0
        loss_sum += batch_loss
        round_losses.append(batch_loss / params.batch_rows(n_rows, epoch, step))
        for party in data_parties:  # 5. decrypt masked gradients
            _decrypt_masked(ctx, private, party, step, shapes[party])
        ctx.record("round", round=step, epoch=epoch, loss=round(round_losses[-1], 10))
        ctx.progress(PHASE, step + 1, total, f"round loss {round_losses[-1]:.5f}")
        elapsed = time.perf_counter() - started
        epoch_seconds = _add_seconds(epoch_seconds, epoch, elapsed)
        stop = False
        if last:
            losses.append(loss_sum / n_rows)
            loss_sum = 0.0
            stop = close_epoch(ctx, params, losses, epoch, step, total)
            decision = "stop" if stop else "continue"
            ctx.broadcast(LR_EPOCH_END, data_parties, decision, round=step)  # 6.
        saved = ArbiterState(
            step,
            n_rows,
            tuple(losses),
            tuple(round_losses),
            tuple(epoch_seconds),
            loss_sum,
            stop,
            state.shapes,
        )
        ctx.checkpoints.save(params.checkpoint, saved)
        if stop:
            break
    return ArbiterResult(
        losses=tuple(losses),
        rounds=len(round_losses),
        round_losses=tuple(round_losses),
        epoch_seconds=tuple(round(v, 3) for v in epoch_seconds),
    )


def close_epoch(
    ctx: RoleContext, params: LrParams, losses: list[float], epoch: int, step: int, total: int
) -> bool:
    """After an epoch's last batch, with its loss appended to ``losses``: stop at the last
    epoch or when the loss changed by less than ``tol``; the decision is reported and
    recorded (the key holder's here, the guest's in two-party LR)."""
    stop = epoch == params.epochs - 1 or (
        len(losses) > 1 and abs(losses[-2] - losses[-1]) < params.tol
    )
    ctx.progress(PHASE, step + 1, total, f"epoch {epoch + 1} loss {losses[-1]:.5f}")
    ctx.record(
        "epoch", epoch=epoch, loss=round(losses[-1], 10), decision="stop" if stop else "go on"
    )
    return stop


def rounds(
    params: LrParams, n_rows: int, start: int, stopped: bool
) -> Iterator[tuple[int, int, bool]]:
    """(epoch, round, last of its epoch) of every round from ``start`` on.

    A party resuming from a checkpoint starts after the round it saved; a checkpoint
    taken at a stop decision means nothing is left.
    """
    if stopped:
        return
    step = 0
    for epoch in range(params.epochs):
        batches = len(params.schedule(n_rows, epoch))
        for i in range(batches):
            if step >= start:
                yield epoch, step, i == batches - 1
            step += 1


def _add_seconds(seconds: list[float], epoch: int, elapsed: float) -> list[float]:
    out = list(seconds) + [0.0] * (epoch + 1 - len(seconds))
    out[epoch] += elapsed
    return out


def _accept_shapes(
    ctx: RoleContext, params: LrParams, data_parties: tuple[str, ...]
) -> ArbiterState:
    """0. The training row count and every data party's gradient shape, each checked."""
    n_rows = ctx.recv(LR_PLAN, ctx.guest)
    shapes = []
    for party in data_parties:
        shape = GradientShape(*ctx.recv(LR_SHAPE, party))
        check_announced(party, shape, n_rows, params.batch_size)
        shapes.append((shape.count, shape.exponent))
    return ArbiterState(round=-1, n_rows=n_rows, shapes=tuple(shapes))


def _decrypt_masked(
    ctx: RoleContext, private: PrivateKey, party: str, step: int, shape: GradientShape
) -> None:
    """Decrypt ``party``'s masked gradient only if it has the shape the party announced
    and every value lies in the window a gradient plus its mask can reach."""
    masked = ctx.recv(
        LR_MASKED_GRADIENT,
        party,
        round=step,
        key=private.public_key,
        count=shape.count,
        exponent=shape.exponent,
    )
    width = (private.public_key.n.bit_length() + 7) // 8
    plain = private.decrypt_raw(masked, ctx.compute)
    check_masked_window(party, plain, int(private.public_key.n), step)
    ctx.send(LR_GRADIENT, party, ints_to_msg(plain, width), round=step)


# ---- data parties --------------------------------------------------------------------


def train_guest(ctx: RoleContext, X: np.ndarray, y: np.ndarray, params: LrParams) -> np.ndarray:
    """Guest side. ``X`` is standardised and ends with a bias column; returns its weights."""
    state = ctx.checkpoints.restore(params.checkpoint, PartyState)
    features = _Quantised.of(X)
    if state is None:
        check_batch_floor(ctx.party, X.shape[1], len(y), params.batch_size)
        ctx.send(LR_PLAN, _arbiter(ctx), len(y))
        _announce_shape(ctx, features)
    key = _job_key(ctx, params, state)
    if state is None:
        state = PartyState(-1, (0.0,) * X.shape[1], False, key.n_bytes())
    if params.label_protection is not None:
        epsilon, delta = params.label_protection
        sigma = round(params.label_noise, 6)
        ctx.record("label_protection", epsilon=epsilon, delta=delta, sigma=sigma)
    w = np.array(state.weights, dtype=np.float64)
    opt = _optimizer(params, state)
    total = params.total_rounds(len(y))
    for epoch, step, last in rounds(params, len(y), state.round + 1, state.stopped):
        batch = params.schedule(len(y), epoch)[step - params.first_round(len(y), epoch)]
        u_a = X[batch] @ w
        # encrypt the guest's own term first: the hosts encrypt theirs at the same time
        own_term = u_a + 2.0 - 4.0 * y[batch]
        if params.label_noise > 0:  # the guest's update uses the same noisy residual
            own_term = own_term + label_noise.gaussian(ctx.rng, len(batch), params.label_noise)
        own = key.encrypt(own_term, U_EXP, ctx.rng, ctx.compute)
        u_hosts = [_recv_forward(ctx, key, h, step, len(batch)) for h in ctx.hosts]  # 1.
        u_b = u_hosts[0][0]
        for other, _ in u_hosts[1:]:
            u_b = u_b.add(other)
        d4 = u_b.add(own)
        ctx.broadcast(LR_RESIDUAL, ctx.hosts, d4, round=step)  # 2.
        loss8 = _guest_loss(ctx, key, u_hosts, u_a, y[batch], step)  # 3.
        ctx.send(LR_LOSS, _arbiter(ctx), loss8, round=step)  # 4.
        w = _masked_update(ctx, key, d4, features.rows(batch), w, opt, params.l2, step)  # 5.
        ctx.progress(PHASE, step + 1, total, f"epoch {epoch + 1}/{params.epochs}")
        stop = last and _epoch_end(ctx, step)  # 6.
        _save_round(ctx, params, key, step, w, stop, opt)
        if stop:
            break
    return w


def _save_round(
    ctx: RoleContext,
    params: LrParams,
    key: PublicKey,
    step: int,
    w: np.ndarray,
    stop: bool,
    opt: Optimizer,
) -> None:
    """A data party's checkpoint after a round: its weights, optimiser state and the
    arbiter's public key."""
    weights = tuple(float(v) for v in w)
    saved = PartyState(step, weights, stop, key.n_bytes(), opt.state())
    ctx.checkpoints.save(params.checkpoint, saved)


def _optimizer(params: LrParams, state: PartyState) -> Optimizer:
    """This party's optimiser: fresh, or continuing from the round checkpoint."""
    return make_optimizer(params.optimizer, params.learning_rate, params.lr_decay, state.optimizer)


def train_host(ctx: RoleContext, X: np.ndarray, params: LrParams) -> np.ndarray:
    """Host side. ``X`` is standardised (no bias); returns the host's own weights."""
    state = ctx.checkpoints.restore(params.checkpoint, PartyState)
    features = _Quantised.of(X)
    if state is None:
        check_batch_floor(ctx.party, X.shape[1], X.shape[0], params.batch_size)
        _announce_shape(ctx, features)
    key = _job_key(ctx, params, state)
    if state is None:
        state = PartyState(-1, (0.0,) * X.shape[1], False, key.n_bytes())
    w = np.array(state.weights, dtype=np.float64)
    opt = _optimizer(params, state)
    position = ctx.hosts.index(ctx.party)
    n_rows = X.shape[0]
    total = params.total_rounds(n_rows)
    for epoch, step, last in rounds(params, n_rows, state.round + 1, state.stopped):
        batch = params.schedule(n_rows, epoch)[step - params.first_round(n_rows, epoch)]
        u = X[batch] @ w
        u_mant = [int(m) for m in quantise(u, U_EXP)]
        square_sum = sum(m * m for m in u_mant) >> (4 * -X_EXP)  # Σu² at G_EXP
        forward = key.encrypt_ints(u_mant, U_EXP, ctx.rng, ctx.compute)
        ctx.send(LR_HOST_FORWARD, ctx.guest, forward, round=step)
        square = key.encrypt_ints([square_sum], G_EXP, ctx.rng)
        ctx.send(LR_HOST_SQUARE_SUM, ctx.guest, square, round=step)  # 1.
        d4 = ctx.recv(LR_RESIDUAL, ctx.guest, round=step, key=key, count=len(batch))  # 2.
        if position > 0:  # 3.
            before = ctx.recv(LR_CROSS_IN, ctx.guest, round=step, key=key, count=len(batch))
            # re-randomised: the guest knows the ciphertexts it sent and could test guesses
            cross = before.dot_ints(quantise(u, X_EXP), X_EXP, ctx.compute)
            ctx.send(LR_CROSS_OUT, ctx.guest, cross.obfuscate(ctx.rng), round=step)
        w = _masked_update(ctx, key, d4, features.rows(batch), w, opt, params.l2, step)  # 5.
        ctx.progress(PHASE, step + 1, total, f"epoch {epoch + 1}/{params.epochs}")
        stop = last and _epoch_end(ctx, step)  # 6.
        _save_round(ctx, params, key, step, w, stop, opt)
        if stop:
            break
    return w


@dataclass(frozen=True)
class _Quantised:
    """A party's features as fixed-point integers at an exponent chosen from the data."""

    Xq: np.ndarray
    exponent: int

    @classmethod
    def of(cls, X: np.ndarray) -> _Quantised:
        exponent = choose_exponent(X)
        return cls(quantise(X, exponent), exponent)

    def rows(self, batch: np.ndarray) -> _Quantised:
        return _Quantised(self.Xq[batch], self.exponent)


def _guest_loss(
    ctx: RoleContext,
    key: PublicKey,
    u_hosts: list[tuple[CipherVector, CipherVector]],
    u_a: np.ndarray,
    y: np.ndarray,
    step: int,
) -> CipherVector:
    """[[8 L]] for the batch: 8L = Σ 8 log2 + (4 - 8y) u_A + u_A² + (4 - 8y + 2u_A) u_B + u_B²,
    where u_B² = Σ_k u_k² + 2 Σ_{j<k} u_j u_k (cross terms computed by host k)."""
    plain = float(np.sum(8.0 * math.log(2.0) + (4.0 - 8.0 * y) * u_a + u_a * u_a))
    plain_mant = int(round(plain * 16.0**-U_EXP)) << (4 * -X_EXP)
    u_b = u_hosts[0][0]
    total = key.encrypt_ints([plain_mant], G_EXP, ctx.rng).add(u_hosts[0][1])
    for k in range(1, len(u_hosts)):
        host = ctx.hosts[k]
        ctx.send(LR_CROSS_IN, host, u_b.obfuscate(ctx.rng, ctx.compute), round=step)
        cross = ctx.recv(LR_CROSS_OUT, host, round=step, key=key, count=1)
        total = total.add(cross.mul_int(2)).add(u_hosts[k][1])
        u_b = u_b.add(u_hosts[k][0])
    q = quantise(4.0 - 8.0 * y + 2.0 * u_a, X_EXP)
    return total.add(u_b.dot_ints(q, X_EXP, ctx.compute))


def _recv_forward(
    ctx: RoleContext, key: PublicKey, host: str, step: int, count: int
) -> tuple[CipherVector, CipherVector]:
    u = ctx.recv(LR_HOST_FORWARD, host, round=step, key=key, count=count)
    sq = ctx.recv(LR_HOST_SQUARE_SUM, host, round=step, key=key, count=1)
    return u, sq


def _masked_update(
    ctx: RoleContext,
    key: PublicKey,
    d4: CipherVector,
    features: _Quantised,
    w: np.ndarray,
    opt: Optimizer,
    l2: float,
    step: int,
) -> np.ndarray:
    """Step 5 for one data party: mask, have the arbiter decrypt, unmask, update."""
    gradient = d4.matvec_t(features.Xq, features.exponent, ctx.compute)
    masks = [ctx.rng.randbits(MASK_BITS) for _ in range(len(w))]
    masked = gradient.add(key.encrypt_ints(masks, gradient.exponent, ctx.rng, ctx.compute))
    arbiter = _arbiter(ctx)
    ctx.send(LR_MASKED_GRADIENT, arbiter, masked, round=step)
    values = ctx.recv(LR_GRADIENT, arbiter, round=step, count=len(w))
    n = int(key.n)
    g_int = decode_ints([(v - r) % n for v, r in zip(values, masks, strict=True)], n)
    g = np.array([float(x) for x in g_int]) * 16.0**gradient.exponent
    return step_weights(opt, w, 0.25 * g, features.Xq.shape[0], l2, step)  # X_p^T d


def _announce_shape(ctx: RoleContext, features: _Quantised) -> None:
    """0. Tell the arbiter the one gradient shape it may decrypt for this party."""
    shape = (features.Xq.shape[1], U_EXP + features.exponent)
    ctx.send(LR_SHAPE, _arbiter(ctx), shape)


def _job_key(ctx: RoleContext, params: LrParams, state: PartyState | None) -> PublicKey:
    """The arbiter's public key: received now, or as the round checkpoint kept it."""
    saved = None if state is None else state.key
    return ctx.job_key(
        LR_PUBLIC_KEY,
        _arbiter(ctx),
        saved,
        key_bits=params.key_bits,
        insecure_test_key=params.insecure_test_key,
    )


def _epoch_end(ctx: RoleContext, step: int) -> bool:
    return ctx.recv(LR_EPOCH_END, _arbiter(ctx), round=step) == "stop"


def _arbiter(ctx: RoleContext) -> str:
    if ctx.arbiter is None:
        raise ProtocolError("coordinated logistic regression needs an arbiter in the job")
    return ctx.arbiter
