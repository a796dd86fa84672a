"""Tests for lianmo.models.logistic, the plaintext reference of vertical Taylor LR."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss  # type: ignore[import-untyped]

from lianmo.data.split import batch_schedule, validation_mask
from lianmo.data.table import load_table
from lianmo.errors import ConfigError, DataError
from lianmo.models.logistic import (
    learning_rate,
    log_loss,
    sigmoid,
    taylor_gradient,
    taylor_loss,
    taylor_residual,
    train_plaintext_taylor,
)
from lianmo.models.metrics import auc
from lianmo.models.scaler import Standardizer

SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"

SETTINGS: dict[str, Any] = {
    "epochs": 5,
    "batch_size": 16,
    "learning_rate": 0.3,
    "lr_decay": 0.01,
    "l2": 1e-3,
    "seed": 3,
    "tol": 0.0,
}


def _problem(n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) + rng.normal(size=n) > 0).astype(float)
    return X, y


def test_sigmoid_is_exact_and_does_not_overflow() -> None:
    z = np.array([-1000.0, -30.0, -1.0, 0.0, 2.0, 30.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = sigmoid(z)
    np.testing.assert_allclose(s[1:-1], 1.0 / (1.0 + np.exp(-z[1:-1])), rtol=1e-15)
    assert s[0] == 0.0
    assert s[-1] == 1.0


def test_taylor_residual_and_loss_approximate_the_exact_ones_near_zero() -> None:
    z = np.array([-0.2, 0.0, 0.1, 0.3])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(taylor_residual(z, y), 0.25 * z + 0.5 - y)
    np.testing.assert_allclose(taylor_residual(z, y), sigmoid(z) - y, atol=1e-3)
    assert taylor_loss(z, y) == pytest.approx(log_loss(z, y), abs=1e-4)
    assert taylor_loss(np.zeros(3), np.array([0.0, 1.0, 1.0])) == pytest.approx(math.log(2))


def test_log_loss_matches_scikit_learn_and_is_stable() -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(scale=3.0, size=200)
    y = rng.integers(0, 2, size=200).astype(float)
    assert log_loss(z, y) == pytest.approx(sk_log_loss(y, sigmoid(z)), rel=1e-9)
    assert log_loss(np.array([800.0]), np.array([0.0])) == pytest.approx(800.0)


def test_taylor_gradient_is_the_gradient_of_the_taylor_loss() -> None:
    X, y = _problem()
    w = np.random.default_rng(5).normal(size=5) * 0.1
    gradient = taylor_gradient(X, X @ w, y)
    eps = 1e-6
    for j in range(5):
        step = np.zeros(5)
        step[j] = eps
        numeric = (taylor_loss(X @ (w + step), y) - taylor_loss(X @ (w - step), y)) / (2 * eps)
        assert gradient[j] == pytest.approx(numeric, abs=1e-8)


@pytest.mark.parametrize(
    ("lr0", "decay", "step", "expected"),
    [(0.5, 0.0, 100, 0.5), (0.5, 0.1, 0, 0.5), (0.5, 0.1, 10, 0.25), (1.0, 0.05, 20, 0.5)],
)
def test_learning_rate(lr0: float, decay: float, step: int, expected: float) -> None:
    assert learning_rate(lr0, decay, step) == pytest.approx(expected)


def test_train_matches_a_step_by_step_reading_of_the_definition() -> None:
    # Prepare: a guest part with its bias column last, and one host part.
    X, y = _problem(n=40)
    guest = np.column_stack([X[:, :2], np.ones(40)])
    host = X[:, 2:]
    settings = {**SETTINGS, "epochs": 2, "batch_size": 16, "l2": 0.01}

    # Execute
    weights, losses = train_plaintext_taylor([guest, host], y, **settings)

    # Assert: redo the documented steps by hand.
    w = [np.zeros(3), np.zeros(3)]
    expected_losses, step = [], 0
    for epoch in range(2):
        total = 0.0
        for batch in batch_schedule(40, 16, epoch, settings["seed"]):
            z = guest[batch] @ w[0] + host[batch] @ w[1]
            total += len(batch) * taylor_loss(z, y[batch])
            rate = 0.3 / (1 + 0.01 * step)
            r = 0.25 * z + 0.5 - y[batch]
            w = [
                wp - rate * (Xp[batch].T @ r / len(batch) + 0.01 * wp)
                for wp, Xp in zip(w, (guest, host), strict=True)
            ]
            step += 1
        expected_losses.append(total / 40)
    np.testing.assert_allclose(weights[0], w[0], rtol=1e-12)
    np.testing.assert_allclose(weights[1], w[1], rtol=1e-12)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-12)


def test_first_full_batch_step_by_hand() -> None:
    X = np.array([[1.0, 2.0], [1.0, -1.0]])
    y = np.array([1.0, 0.0])
    settings = {**SETTINGS, "epochs": 1, "batch_size": 10, "learning_rate": 0.5, "l2": 0.0}
    weights, losses = train_plaintext_taylor([X], y, **settings)
    # w = 0 so z = 0, residual = 0.5 - y = [-0.5, 0.5], gradient = X.T @ r / 2.
    np.testing.assert_allclose(weights[0], -0.5 * np.array([0.0, -0.75]))
    assert losses == [pytest.approx(math.log(2))]


def test_splitting_the_columns_between_parties_does_not_change_the_model() -> None:
    X, y = _problem()
    (whole,), whole_losses = train_plaintext_taylor([X], y, **SETTINGS)
    parts, part_losses = train_plaintext_taylor([X[:, :2], X[:, 2:4], X[:, 4:]], y, **SETTINGS)
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-12)
    np.testing.assert_allclose(part_losses, whole_losses, rtol=1e-12)


def test_loss_goes_down_and_l2_shrinks_the_weights() -> None:
    X, y = _problem()
    plain, losses = train_plaintext_taylor([X], y, **{**SETTINGS, "l2": 0.0})
    shrunk, _ = train_plaintext_taylor([X], y, **{**SETTINGS, "l2": 0.5})
    assert losses[-1] < losses[0] < math.log(2)
    assert np.linalg.norm(shrunk[0]) < np.linalg.norm(plain[0])


def test_tol_stops_early_and_zero_tol_runs_every_epoch() -> None:
    X, y = _problem()
    _, stopped = train_plaintext_taylor([X], y, **{**SETTINGS, "epochs": 20, "tol": 1.0})
    _, full = train_plaintext_taylor([X], y, **{**SETTINGS, "epochs": 20, "tol": 0.0})
    assert len(stopped) == 2
    assert len(full) == 20
    np.testing.assert_allclose(stopped, full[:2])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"epochs": 0}, r"epochs is 0 but must be at least 1"),
        ({"batch_size": 0}, r"batch_size is 0 but must be at least 1"),
        ({"learning_rate": 0.0}, r"learning_rate is 0.0 but must be a positive number"),
        ({"learning_rate": float("nan")}, r"learning_rate is nan"),
        ({"lr_decay": -0.1}, r"lr_decay is -0.1 but must be 0 or more"),
        ({"l2": -1.0}, r"l2 is -1.0"),
        ({"tol": float("inf")}, r"tol is inf"),
    ],
)
def test_train_rejects_bad_hyperparameters(override: dict[str, Any], message: str) -> None:
    X, y = _problem(n=10)
    with pytest.raises(ConfigError, match=message):
        train_plaintext_taylor([X], y, **{**SETTINGS, **override})


@pytest.mark.parametrize(
    ("parts", "labels", "message"),
    [
        ([np.ones((4, 2)), np.ones((3, 1))], np.zeros(4), r"part 1 has shape \(3, 1\) but there"),
        ([np.ones(4)], np.zeros(4), r"part 0 has shape \(4,\)"),
        ([], np.zeros(4), r"no feature parts given"),
        ([np.ones((1, 1))], np.zeros((1, 1)), r"y has shape \(1, 1\)"),
        ([np.full((2, 1), np.inf)], np.zeros(2), r"part 0 contains NaN or infinite"),
    ],
)
def test_train_rejects_misaligned_arrays(
    parts: list[np.ndarray], labels: np.ndarray, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        train_plaintext_taylor(parts, labels, **SETTINGS)


@pytest.mark.skipif(
    not (SHARED_DATA / "breast_hetero_host.csv").is_file(),
    reason=f"shared data folder {SHARED_DATA} is not present in this checkout",
)
def test_breast_guest_and_host_reach_auc_above_097() -> None:
    # Prepare: align the host to the guest's ids, split by id, standardise on training rows.
    guest = load_table(SHARED_DATA / "breast_hetero_guest.csv", id_column="id", label_column="y")
    host = load_table(SHARED_DATA / "breast_hetero_host.csv", id_column="id")
    position = host.index_of()
    host = host.select(np.array([position[i] for i in guest.ids]))
    valid = validation_mask(guest.ids, 0.2, seed=42)
    train = ~valid
    parts = []
    for table in (guest, host):
        parts.append(Standardizer.fit(table.X[train]).transform(table.X))
    parts[0] = np.column_stack([parts[0], np.ones(len(guest))])
    assert guest.y is not None

    # Execute
    weights, losses = train_plaintext_taylor(
        [p[train] for p in parts],
        guest.y[train],
        epochs=10,
        batch_size=64,
        learning_rate=0.15,
        lr_decay=0.01,
        l2=1e-3,
        seed=42,
        tol=1e-5,
    )

    # Assert
    scores = sum(p[valid] @ w for p, w in zip(parts, weights, strict=True))
    assert losses[-1] < losses[0]
    assert auc(guest.y[valid], np.asarray(scores)) > 0.97
