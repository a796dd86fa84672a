"""Scoring aligned rows with a trained hetero LR model; the guest receives the scores.

1. host_k -> guest : u_k = X_k w_k for the rows being scored, in aligned order (a
   one-vs-rest model: one value per row and class, row by row)
2. guest           : score = sigmoid(u_A + Σ_k u_k); one-vs-rest: each class's sigmoid,
   normalised to sum to 1 over the classes (scikit-learn's one-vs-rest probabilities)

What the guest learns: each host's partial linear score per row. That is no more than
the scores themselves reveal to the guest, who knows u_A (score = sigmoid(u_A + u_B)
determines u_B); with several hosts it also learns the split of u_B between them. Host
features and weights stay with the host; hosts learn nothing from this step.
"""

from __future__ import annotations

import numpy as np

from lianmo.models.logistic import sigmoid
from lianmo.protocols.context import RoleContext
from lianmo.wire.step import Step
from lianmo.wire.steps import PREDICT_PARTIAL

PHASE = "predict"


def score_guest(
    ctx: RoleContext, u_guest: np.ndarray, *, step: Step[np.ndarray, np.ndarray] = PREDICT_PARTIAL
) -> np.ndarray:
    """Guest side: combine the hosts' partial scores with its own; returns probabilities
    (``(rows, classes)`` for a one-vs-rest model, whose ``u_guest`` is that shape)."""
    return probabilities(log_odds_guest(ctx, u_guest, step=step))


def probabilities(log_odds: np.ndarray) -> np.ndarray:
    """The sigmoid of one model's log-odds; one-vs-rest: each class's, normalised."""
    p = np.asarray(sigmoid(log_odds), dtype=np.float64)
    if p.ndim == 1:
        return p
    total = p.sum(axis=1, keepdims=True)
    return np.asarray(p / np.where(total > 0, total, 1.0), dtype=np.float64)


def log_odds_guest(
    ctx: RoleContext, u_guest: np.ndarray, *, step: Step[np.ndarray, np.ndarray] = PREDICT_PARTIAL
) -> np.ndarray:
    """Guest side: ``u_A + Σ_k u_k``, the log-odds (a scorecard scales them to points)."""
    total = np.array(u_guest, dtype=np.float64)
    for i, host in enumerate(ctx.hosts):
        total += ctx.recv(step, host, count=total.size).reshape(total.shape)
        ctx.progress(PHASE, i + 1, len(ctx.hosts), f"partial scores from {host}")
    return total


def score_host(
    ctx: RoleContext, u_host: np.ndarray, *, step: Step[np.ndarray, np.ndarray] = PREDICT_PARTIAL
) -> None:
    """Host side: send this host's partial linear scores to the guest (row by row)."""
    ctx.send(step, ctx.guest, np.ascontiguousarray(u_host).ravel())
    ctx.progress(PHASE, 1, 1, f"{len(u_host)} partial scores sent")
