"""Attacks on coordinated hetero LR's labels by a curious or dishonest party, and what stops them.

Each test runs the real protocol code over in-memory channels (unit-test Paillier keys of
1024 bits, named as such); a dishonest party is a role function that sends what the
protocol's own ``ctx.send`` allows, but not what the protocol says. The numbers each test
asserts are the bounds docs/protocols.md states for hetero LR.
"""

from __future__ import annotations

import functools
import math
import typing as t
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lianmo.crypto.fixedpoint import choose_exponent, decode_ints, quantise
from lianmo.crypto.paillier import CipherVector
from lianmo.data.split import batch_schedule
from lianmo.data.table import load_table
from lianmo.errors import ConfigError, ProtocolError
from lianmo.models.metrics import auc
from lianmo.models.scaler import Standardizer
from lianmo.protocols import label_noise
from lianmo.protocols.context import RoleContext
from lianmo.protocols.hetero_lr import (
    G_EXP,
    U_EXP,
    LrParams,
    train_arbiter,
    train_guest,
    train_host,
)
from lianmo.protocols.lr_guard import BATCH_FACTOR, MASK_BITS
from lianmo.wire.steps import (
    LR_EPOCH_END,
    LR_GRADIENT,
    LR_HOST_FORWARD,
    LR_HOST_SQUARE_SUM,
    LR_LOSS,
    LR_MASKED_GRADIENT,
    LR_PLAN,
    LR_PUBLIC_KEY,
    LR_RESIDUAL,
    LR_SHAPE,
)

from .conftest import WireRecorder, run_roles

# Unit tests only: 1024-bit keys keep the suite fast. Every real path refuses them.
SMALL_TEST_KEY_BITS = 1024
HOST_FEATURES = 10  # default_credit_hetero's host columns


@pytest.fixture(scope="module")
def credit(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """default_credit_hetero aligned: guest (3 columns and the bias), host (10), labels."""
    guest = load_table(
        shared_data / "default_credit_hetero_guest.csv", id_column="id", label_column="y"
    )
    host = load_table(shared_data / "default_credit_hetero_host.csv", id_column="id")
    index = host.index_of()
    host = host.select(np.array([index[i] for i in guest.ids]))
    assert guest.y is not None and host.X.shape[1] == HOST_FEATURES
    Xg = Standardizer.fit(guest.X[:, :3]).transform(guest.X[:, :3])
    Xg = np.hstack([Xg, np.ones((len(Xg), 1))])
    return Xg, Standardizer.fit(host.X).transform(host.X), guest.y


def _params(**overrides: t.Any) -> LrParams:
    base: dict[str, t.Any] = dict(
        epochs=1,
        batch_size=BATCH_FACTOR * HOST_FEATURES,
        learning_rate=1.0,
        lr_decay=0.0,
        l2=0.0,
        tol=0.0,
        key_bits=SMALL_TEST_KEY_BITS,
        seed=5,
        insecure_test_key=True,
    )
    base.update(overrides)
    return LrParams(**base)


def _run(
    params: LrParams,
    Xg: np.ndarray,
    y: np.ndarray,
    host: Callable[[RoleContext], t.Any],
    wire: WireRecorder | None = None,
    guest: Callable[[RoleContext], t.Any] | None = None,
) -> dict[str, t.Any]:
    roles = {
        "a": lambda ctx: train_arbiter(ctx, params),
        "g": guest or (lambda ctx: train_guest(ctx, Xg, y, params)),
        "h": host,
    }
    return run_roles(roles, guest="g", hosts=("h",), arbiter="a", recorder=wire)


def _tags(wire: WireRecorder, receiver: str | None = None) -> set[str]:
    return {e.tag for e in wire.envelopes if receiver is None or e.receiver == receiver}


def _least_squares_labels(X: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """The host's attack on round 0: solve X_bᵀ (2 − 4y) = gradient for y by least squares
    (minimum norm where the batch is wider than X has columns); a score per row."""
    residual = np.linalg.lstsq(X.T, gradient, rcond=None)[0]
    return np.asarray((2.0 - residual) / 4.0)


Crafted = Callable[[CipherVector, np.ndarray], CipherVector]


def _dishonest_host(
    ctx: RoleContext, n_rows: int, params: LrParams, shape: tuple[int, int], craft: Crafted
) -> list[tuple[np.ndarray, list[int]]]:
    """A host that announces ``shape``, sends ``[[0]]`` as its ``[[u]]``, and asks the
    arbiter to decrypt ``craft([[4d]], batch)`` (under its own mask) each round; returns
    what it unmasked per batch."""
    arbiter = "a"
    ctx.send(LR_SHAPE, arbiter, shape)
    key = ctx.job_key(
        LR_PUBLIC_KEY, arbiter, None, key_bits=params.key_bits, insecure_test_key=True
    )
    seen, step = [], 0
    for epoch in range(params.epochs):
        batches = batch_schedule(n_rows, params.batch_size, epoch, params.seed)
        for i, batch in enumerate(batches):
            zeros = key.encrypt_ints([0] * len(batch), U_EXP, ctx.rng)
            ctx.send(LR_HOST_FORWARD, "g", zeros, round=step)
            ctx.send(LR_HOST_SQUARE_SUM, "g", key.encrypt_ints([0], G_EXP, ctx.rng), round=step)
            d4 = ctx.recv(LR_RESIDUAL, "g", round=step, key=key, count=len(batch))
            crafted = craft(d4, batch)
            masks = [ctx.rng.randbits(MASK_BITS) for _ in range(len(crafted))]
            masked = crafted.add(key.encrypt_ints(masks, crafted.exponent, ctx.rng))
            ctx.send(LR_MASKED_GRADIENT, arbiter, masked, round=step)
            values = ctx.recv(LR_GRADIENT, arbiter, round=step, count=len(crafted))
            n = int(key.n)
            plain = [(v - r) % n for v, r in zip(values, masks, strict=True)]
            seen.append((batch, decode_ints(plain, n)))
            if i == len(batches) - 1:
                ctx.recv(LR_EPOCH_END, arbiter, round=step)
            step += 1
    return seen


# ---- (a) a tiny batch: refused before any residual is sent ---------------------------


def test_a_batch_no_larger_than_the_host_features_would_give_the_labels_away(credit) -> None:  # type: ignore[no-untyped-def]
    """Why the floor exists: at batch = feature count, round 0's gradient solves exactly."""
    _, Xh, y = credit
    rows = np.arange(HOST_FEATURES)
    Xq = quantise(Xh[rows], choose_exponent(Xh)) * 16.0 ** choose_exponent(Xh)
    guess = _least_squares_labels(Xq, Xq.T @ (2.0 - 4.0 * y[rows])) > 0.5
    assert (guess == y[rows]).all()


def test_a_tiny_batch_is_refused_by_each_honest_party_before_anything_is_sent(
    credit, wire: WireRecorder
) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = credit
    params = _params(batch_size=HOST_FEATURES)
    with pytest.raises(ConfigError, match=r"party '(g|h)' refuses model.batch_size 10: "):
        _run(params, Xg[:400], y[:400], lambda ctx: train_host(ctx, Xh[:400], params), wire)
    assert not _tags(wire) & {LR_RESIDUAL.tag, LR_HOST_FORWARD.tag, LR_PUBLIC_KEY.tag}
    # the host alone, with a guest that would accept the batch: still refused
    one_column = np.ones((400, 1))
    params = _params(batch_size=4 * HOST_FEATURES)
    with pytest.raises(ConfigError) as info:
        _run(params, one_column, y[:400], lambda ctx: train_host(ctx, Xh[:400], params))
    assert str(info.value) == (
        "party 'h' refuses model.batch_size 40: its gradient has 10 coordinates, and "
        "batches of fewer than 16 rows per coordinate (160) let a host solve a round's "
        "gradient for the labels; set model.batch_size to at least 160, or use fewer features"
    )


def test_a_dishonest_host_skipping_its_own_check_is_refused_by_the_arbiter(
    credit, wire: WireRecorder
) -> None:  # type: ignore[no-untyped-def]
    """It announces its 10 coordinates for batches of 40: the arbiter sends no key, so no
    residual is ever encrypted. Announcing fewer would only get fewer values decrypted."""
    Xg, _, y = credit
    params = _params(batch_size=4 * HOST_FEATURES)
    host = functools.partial(
        _dishonest_host, n_rows=400, params=params, shape=(10, -9), craft=lambda d4, b: d4
    )
    refused = r"arbiter refuses the job: party 'h' announced a gradient of 10 coordinates, "
    with pytest.raises(ProtocolError, match=refused + "more than batches of 40 rows allow"):
        _run(params, np.ones((400, 1)), y[:400], host, wire)
    assert not _tags(wire) & {LR_RESIDUAL.tag, LR_PUBLIC_KEY.tag}


def test_no_batch_is_shorter_than_the_batch_size(credit) -> None:  # type: ignore[no-untyped-def]
    """The short final batch (n mod batch_size rows) no longer exists: it joins the last."""
    params = _params()
    for n_rows in (160, 161, 319, 320, 4003):
        sizes = [len(b) for b in params.schedule(n_rows, 0)]
        assert min(sizes) >= params.batch_size and sum(sizes) == n_rows


# ---- (b) at the floor: least squares learns no more than the documented bound -------


def test_at_the_floor_the_least_squares_attack_is_within_the_documented_bound(credit) -> None:  # type: ignore[no-untyped-def]
    """A semi-honest host at 16 rows per feature runs the least-squares attack on what it
    unmasks in round 0 (here the whole job: one batch, lr 1, so w = −0.25·gradient/b).

    Bound (docs/protocols.md): the attack's label AUC stays within 0.05 of what a
    regression of the labels on the host's own columns gives (0.716 on this data), far
    from the 1.0 of a batch as small as the feature count.
    """
    Xg, Xh, y = credit
    b = BATCH_FACTOR * HOST_FEATURES
    params = _params(batch_size=b)
    e = choose_exponent(Xh)
    scores, labels = [], []
    for job in range(20):  # 3200 labels: the AUC to about ±0.01
        rows = np.arange(job * b, (job + 1) * b)
        out = _run(params, Xg[rows], y[rows], lambda ctx, r=rows: train_host(ctx, Xh[r], params))
        gradient = -4.0 * b * out["h"]  # what the host unmasked: X_qᵀ (2 − 4y)
        Xq = quantise(Xh[rows], e) * 16.0**e
        np.testing.assert_allclose(gradient, Xq.T @ (2.0 - 4.0 * y[rows]), atol=1e-3)
        scores.append(_least_squares_labels(Xq, gradient))
        labels.append(y[rows])
    attack = auc(np.concatenate(labels), np.concatenate(scores))
    A = np.hstack([Xh, np.ones((len(y), 1))])
    baseline = auc(y, A @ np.linalg.lstsq(A, y, rcond=None)[0])
    assert 0.70 < baseline < 0.73
    assert attack <= baseline + 0.05, (attack, baseline)


# ---- (c) decrypting anything but a gradient: refused ----------------------------------


def test_a_host_sending_residual_shaped_ciphertexts_is_refused(credit, wire: WireRecorder) -> None:  # type: ignore[no-untyped-def]
    Xg, _, y = credit
    params = _params()
    host = functools.partial(
        _dishonest_host, n_rows=320, params=params, shape=(10, U_EXP), craft=lambda d4, b: d4
    )
    with pytest.raises(
        ProtocolError, match=r"'h' sent 160 ciphertexts as 'lr.masked_gradient', expected 10"
    ):
        _run(params, Xg[:320], y[:320], host, wire)
    assert LR_GRADIENT.tag not in _tags(wire, receiver="h")  # nothing decrypted for it


def test_a_guest_sending_a_hosts_forward_vector_is_refused(credit, wire: WireRecorder) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = credit
    params = _params()

    def guest(ctx: RoleContext) -> None:
        ctx.send(LR_PLAN, "a", 320)
        ctx.send(LR_SHAPE, "a", (4, -9))
        key = ctx.job_key(LR_PUBLIC_KEY, "a", None, key_bits=1024, insecure_test_key=True)
        u = ctx.recv(LR_HOST_FORWARD, "h", key=key, count=160)
        ctx.recv(LR_HOST_SQUARE_SUM, "h", key=key, count=1)
        ctx.send(LR_LOSS, "a", key.encrypt_ints([0], G_EXP, ctx.rng))
        ctx.send(LR_MASKED_GRADIENT, "a", u.obfuscate(ctx.rng))

    host = lambda ctx: train_host(ctx, Xh[:320], params)  # noqa: E731
    with pytest.raises(
        ProtocolError, match=r"'g' sent 160 ciphertexts as 'lr.masked_gradient', expected 4"
    ):
        _run(params, Xg[:320], y[:320], host, wire, guest=guest)
    assert LR_GRADIENT.tag not in _tags(wire)


def test_a_gradient_at_another_exponent_is_refused(credit) -> None:  # type: ignore[no-untyped-def]
    Xg, _, y = credit
    params = _params()
    host = functools.partial(
        _dishonest_host,
        n_rows=320,
        params=params,
        shape=(10, -9),
        craft=lambda d4, b: d4.select(np.arange(10)),  # [[4d]] entries sit at exponent -6
    )
    with pytest.raises(ProtocolError, match=r"at fixed-point exponent -6, expected -9"):
        _run(params, Xg[:320], y[:320], host)


def test_a_gradient_packed_beyond_the_masks_window_is_refused(credit, wire: WireRecorder) -> None:  # type: ignore[no-untyped-def]
    """Packing many residuals into one coordinate needs large coefficients: a value above
    2^128 plus the 256-bit mask is refused after decryption, before anything returns."""
    Xg, _, y = credit
    params = _params()

    def pack(d4: CipherVector, batch: np.ndarray) -> CipherVector:
        terms = [d4.select([i]).mul_int(1 << (300 + 4 * i)) for i in range(len(batch))]
        packed = CipherVector.concat(terms).sum()
        return CipherVector.concat([packed] + [d4.select([i]) for i in range(9)])

    host = functools.partial(
        _dishonest_host, n_rows=320, params=params, shape=(10, U_EXP), craft=pack
    )
    refused = r"arbiter refuses 'lr.masked_gradient' of round 0 from 'h': 1 of 10 values "
    with pytest.raises(ProtocolError, match=refused + "are not a gradient"):
        _run(params, Xg[:320], y[:320], host, wire)
    assert LR_GRADIENT.tag not in _tags(wire, receiver="h")


# ---- (d) label protection bounds even a dishonest host ------------------------------


def _subvector_attack(credit, protection: tuple[float, float] | None) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """A dishonest host reads the first 10 entries of [[4d (+ e)]] every batch as its
    "gradient" and guesses y = 1 where the value is below 0 (4d = 2 − 4y while the guest's
    weights stay near 0: a learning rate of 1e-9 gives the attack its best case).
    Returns its balanced accuracy and the σ used."""
    Xg, _, y = credit
    n = 3200
    params = _params(learning_rate=1e-9, label_protection=protection)
    host = functools.partial(
        _dishonest_host,
        n_rows=n,
        params=params,
        shape=(HOST_FEATURES, U_EXP),
        craft=lambda d4, b: d4.select(np.arange(HOST_FEATURES)),
    )
    out = _run(params, Xg[:n], y[:n], host)
    rows = np.concatenate([batch[:HOST_FEATURES] for batch, _ in out["h"]])
    values = np.concatenate([np.array(v, dtype=float) for _, v in out["h"]]) * 16.0**U_EXP
    guess, truth = values < 0, y[rows] == 1
    balanced = 0.5 * (guess[truth].mean() + (~guess[~truth]).mean())
    return float(balanced), params.label_noise


def test_without_label_protection_the_subvector_attack_reads_the_labels(credit) -> None:  # type: ignore[no-untyped-def]
    """The documented semi-honest-only limit: a dishonest host reads m residuals a batch."""
    balanced, sigma = _subvector_attack(credit, None)
    assert sigma == 0.0 and balanced > 0.99


def test_with_label_protection_the_subvector_attack_is_bounded_by_epsilon(credit) -> None:  # type: ignore[no-untyped-def]
    """(ε, δ) = (1, 1e-5): any test of one label has balanced accuracy at most
    (e^ε + δ) / (1 + e^ε) = 0.731; the Gaussian mechanism's own optimum is Φ(2/σ)."""
    epsilon, delta = 1.0, 1e-5
    balanced, sigma = _subvector_attack(credit, (epsilon, delta))
    assert sigma == pytest.approx(label_noise.sigma_for(epsilon, delta, 1)) and sigma > 19
    dp_bound = (math.exp(epsilon) + delta) / (1 + math.exp(epsilon))
    optimum = 0.5 * (1 + math.erf(2.0 / sigma / math.sqrt(2)))  # Φ(2/σ) = 0.54
    stderr = 0.5 / math.sqrt(200)  # 200 labels read (10 per batch, 20 batches)
    assert balanced <= dp_bound
    assert abs(balanced - optimum) < 3.5 * stderr, (balanced, optimum)


def test_privacy_accounting_round_trips_and_composes_over_epochs() -> None:
    for epochs in (1, 5, 20):
        sigma = label_noise.sigma_for(2.0, 1e-6, epochs)
        assert label_noise.epsilon_for(sigma, 1e-6, epochs) == pytest.approx(2.0)
    # zCDP composes linearly in the epochs: σ grows with their square root
    assert label_noise.sigma_for(1.0, 1e-5, 4) == pytest.approx(
        2 * label_noise.sigma_for(1.0, 1e-5, 1)
    )


def test_label_noise_is_gaussian_and_replayable() -> None:
    from lianmo.crypto.drbg import Drbg

    draws = label_noise.gaussian(Drbg(b"k" * 32, "noise-test"), 20000, 3.0)
    again = label_noise.gaussian(Drbg(b"k" * 32, "noise-test"), 20000, 3.0)
    np.testing.assert_array_equal(draws, again)
    assert abs(draws.mean()) < 0.1 and abs(draws.std() - 3.0) < 0.1
    assert abs(float(np.mean(np.abs(draws) < 3.0)) - 0.6827) < 0.01
