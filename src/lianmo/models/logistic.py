"""Logistic-regression maths in plaintext numpy, and the reference for vertical Taylor LR.

The federated protocol cannot evaluate ``sigmoid`` on ciphertexts, so it uses the
first-order Taylor expansion around 0, ``sigmoid(z) ~ 0.25 z + 0.5``. Everything here is
pure: no crypto, no I/O, no randomness beyond the public batch schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from lianmo.data.split import batch_schedule
from lianmo.errors import ConfigError, DataError
from lianmo.models.optimizer import learning_rate as learning_rate
from lianmo.models.optimizer import make_optimizer, step_weights

__all__ = [
    "learning_rate",
    "log_loss",
    "sigmoid",
    "taylor_gradient",
    "taylor_loss",
    "taylor_residual",
    "train_plaintext_taylor",
]

_LOG2 = math.log(2.0)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Return ``1 / (1 + exp(-z))`` without overflow for large ``|z|``."""
    z = np.asarray(z, dtype=np.float64)
    # exp of a non-positive number never overflows: use exp(-|z|) on both branches.
    e = np.exp(-np.abs(z))
    result: np.ndarray = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return result


def taylor_residual(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return ``0.25 z + 0.5 - y``, the first-order Taylor form of ``sigmoid(z) - y``."""
    return 0.25 * np.asarray(z, dtype=np.float64) + 0.5 - np.asarray(y, dtype=np.float64)


def taylor_loss(z: np.ndarray, y: np.ndarray) -> float:
    """Return the mean second-order Taylor log loss ``log 2 + (0.5 - y) z + z**2 / 8``.

    Its gradient in ``z`` is :func:`taylor_residual`, so the Taylor loss and gradient fit
    together.
    """
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean(_LOG2 + (0.5 - y) * z + 0.125 * z * z))


def log_loss(z: np.ndarray, y: np.ndarray) -> float:
    """Return the exact mean log loss of logits ``z``, as ``mean(log(1 + e**z) - y z)``."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def taylor_gradient(X: np.ndarray, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return ``X.T @ taylor_residual(z, y) / len(y)``, the mean Taylor gradient."""
    gradient: np.ndarray = np.asarray(X, dtype=np.float64).T @ taylor_residual(z, y) / len(y)
    return gradient


def train_plaintext_taylor(
    X_parts: Sequence[np.ndarray],
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    lr_decay: float,
    l2: float,
    seed: int,
    tol: float,
    residual_noise: Callable[[int], np.ndarray] | None = None,
    optimizer: str = "sgd",
) -> tuple[list[np.ndarray], list[float]]:
    """Train vertically split logistic regression in plaintext, exactly as the protocol does.

    This is the reference the federated coordinated LR is tested against, so its
    definition is fixed:

    1. Every weight vector starts at zero. ``X_parts[0]`` is the guest's part and already
       ends with a bias column of ones (added by the caller); the other parts are hosts'.
    2. For each epoch ``e = 0, 1, ...`` the batches are ``batch_schedule(n_rows,
       batch_size, e, seed)``. A global ``step`` counts batches from 0 across epochs.
    3. For a batch ``b``: ``z = sum_p X_p[b] @ w_p`` (with the weights before this
       update), ``r = taylor_residual(z, y[b])``; for every part
       ``g_p = X_p[b].T @ r / len(b) + l2 * w_p`` (the bias is regularised too) and
       every part steps its own ``optimizer`` instance
       (:func:`lianmo.models.optimizer.step_weights`): with ``sgd``,
       ``w_p -= learning_rate(lr0, lr_decay, step) * g_p``.
    4. The epoch loss is ``sum_b len(b) * taylor_loss(z_b, y[b]) / n_rows``: the Taylor
       loss of each batch under the weights used for that batch, without the L2 term.
    5. After an epoch, training stops early if ``abs(previous_loss - loss) < tol``
       (``tol=0`` never stops early).
    6. With ``residual_noise``, every party's update in step 3 uses
       ``r + residual_noise(len(b)) / 4``: the noise ``e`` the protocol's label protection
       adds to ``4d`` (the loss stays exact).

    Parameters
    ----------
    X_parts : sequence of numpy.ndarray
        Each party's features for the same aligned rows, shape ``(n_rows, n_p)``.
    y : numpy.ndarray
        Labels 0/1, shape ``(n_rows,)``.
    epochs : int
        Maximum number of epochs, at least 1.
    batch_size : int
        Rows per batch, at least 1.
    learning_rate : float
        Initial step size ``lr0 > 0``.
    lr_decay : float
        Decay ``>= 0`` of the step size per global batch.
    l2 : float
        L2 penalty ``>= 0``.
    seed : int
        Seed of the batch schedule.
    tol : float
        Early-stopping tolerance ``>= 0`` on the change of the epoch loss.
    residual_noise : callable, optional
        Draws the label-protection noise on ``4d`` for a batch of the given length.
    optimizer : str
        ``sgd`` (default), ``momentum`` or ``adam`` (:mod:`lianmo.models.optimizer`).

    Returns
    -------
    weights : list of numpy.ndarray
        Final weights of each part, in the order of ``X_parts``.
    losses : list of float
        Taylor loss of every epoch run.

    Raises
    ------
    ConfigError
        If a hyperparameter is out of range.
    DataError
        If the parts and labels do not have matching rows.
    """
    _check_hyperparameters(epochs, batch_size, learning_rate, lr_decay, l2, tol)
    parts, labels = _check_arrays(X_parts, y)
    weights = [np.zeros(part.shape[1]) for part in parts]
    optimizers = [make_optimizer(optimizer, learning_rate, lr_decay) for _ in parts]
    losses: list[float] = []
    step = 0
    for epoch in range(epochs):
        total = 0.0
        for batch in batch_schedule(len(labels), batch_size, epoch, seed):
            rows = [part[batch] for part in parts]
            z = sum((X @ w for X, w in zip(rows, weights, strict=True)), np.zeros(len(batch)))
            total += len(batch) * taylor_loss(z, labels[batch])
            residual = taylor_residual(z, labels[batch])
            if residual_noise is not None:
                residual = residual + residual_noise(len(batch)) / 4.0
            weights = [
                step_weights(opt, w, X.T @ residual, len(batch), l2, step)
                for opt, X, w in zip(optimizers, rows, weights, strict=True)
            ]
            step += 1
        losses.append(total / len(labels))
        if len(losses) > 1 and abs(losses[-2] - losses[-1]) < tol:
            break
    return weights, losses


def _check_hyperparameters(
    epochs: int, batch_size: int, lr0: float, lr_decay: float, l2: float, tol: float
) -> None:
    """Raise ConfigError naming the first hyperparameter out of range."""
    checks = (
        ("epochs", epochs, epochs >= 1, "at least 1"),
        ("batch_size", batch_size, batch_size >= 1, "at least 1"),
        ("learning_rate", lr0, math.isfinite(lr0) and lr0 > 0, "a positive number"),
        ("lr_decay", lr_decay, math.isfinite(lr_decay) and lr_decay >= 0, "0 or more"),
        ("l2", l2, math.isfinite(l2) and l2 >= 0, "0 or more"),
        ("tol", tol, math.isfinite(tol) and tol >= 0, "0 or more"),
    )
    for name, value, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{name} is {value!r} but must be {expected}")


def _check_arrays(
    X_parts: Sequence[np.ndarray], y: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Return the parts and labels as float64, checking shapes and finiteness."""
    labels = np.asarray(y, dtype=np.float64)
    if labels.ndim != 1 or labels.size == 0:
        raise DataError(f"y has shape {labels.shape}; expected a non-empty 1-D label vector")
    if not X_parts:
        raise DataError("no feature parts given; pass the guest's part (with its bias column)")
    parts = [np.asarray(part, dtype=np.float64) for part in X_parts]
    for p, part in enumerate(parts):
        if part.ndim != 2 or part.shape[0] != labels.shape[0]:
            raise DataError(
                f"part {p} has shape {part.shape} but there are {labels.shape[0]} labels; "
                f"align every party's rows to the same ids first"
            )
        if not np.isfinite(part).all():
            raise DataError(f"part {p} contains NaN or infinite values; clean it first")
    return parts, labels
