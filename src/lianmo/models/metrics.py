"""Binary-classification metrics (AUC, KS) in numpy, with ties handled exactly."""

from __future__ import annotations

import numpy as np

__all__ = ["auc", "ks"]


def auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Return the area under the ROC curve, from average ranks.

    ``AUC = (sum of positive ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``, where tied
    scores share their average rank, so a tied positive/negative pair counts one half.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels 0/1 (or booleans), shape ``(n,)``.
    scores : numpy.ndarray
        Finite scores, higher meaning more likely positive, shape ``(n,)``.

    Returns
    -------
    float
        AUC in ``[0, 1]``; equals scikit-learn's ``roc_auc_score``.

    Raises
    ------
    ValueError
        If the inputs differ in length, a label is not 0/1, a score is not finite, or
        only one class is present.
    """
    positive, s = _check(y_true, scores)
    ranks = _average_ranks(s)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    rank_sum = float(ranks[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def ks(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Return the Kolmogorov-Smirnov statistic ``max |TPR - FPR|`` over all thresholds.

    Thresholds are the distinct scores, so tied rows always fall on the same side.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels 0/1 (or booleans), shape ``(n,)``.
    scores : numpy.ndarray
        Finite scores, shape ``(n,)``.

    Returns
    -------
    float
        KS in ``[0, 1]``.

    Raises
    ------
    ValueError
        As for :func:`auc`.
    """
    positive, s = _check(y_true, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    tp = np.cumsum(positive[order])
    fp = np.cumsum(~positive[order])
    # Keep only the last position of each run of equal scores: one point per threshold.
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tpr = tp[last] / tp[-1]
    fpr = fp[last] / fp[-1]
    return float(np.max(np.abs(tpr - fpr)))


def _check(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return boolean labels and float64 scores after validating them."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(
            f"y_true has shape {y.shape} and scores {s.shape}; pass two 1-D arrays of equal length"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 and 1 (or False and True)")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    positive = y.astype(np.bool_)
    n_pos = int(positive.sum())
    if n_pos in (0, positive.size):
        raise ValueError(
            "y_true holds only one class; AUC and KS need both positive and negative rows"
        )
    return positive, s


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Return 1-based ranks of ``values``, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    sizes = np.diff(np.r_[first, values.size])
    mean_rank = first + (sizes + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = mean_rank[group]
    return ranks
