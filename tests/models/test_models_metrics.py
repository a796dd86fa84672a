"""Tests for lianmo.models.metrics against scikit-learn, with many tied scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve  # type: ignore[import-untyped]

from lianmo.models.metrics import auc, ks


def _tied_data(seed: int, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    # Rounding to one decimal makes most scores tied with others.
    scores = np.round(rng.normal(size=n) + 0.8 * y, 1)
    return y, scores


@pytest.mark.parametrize("seed", range(8))
def test_auc_matches_scikit_learn_with_ties(seed: int) -> None:
    y, scores = _tied_data(seed)
    assert auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_ks_matches_scikit_learn_roc_curve_with_ties(seed: int) -> None:
    y, scores = _tied_data(seed)
    fpr, tpr, _ = roc_curve(y, scores)
    assert ks(y, scores) == pytest.approx(np.max(tpr - fpr), abs=1e-12)
    assert ks(y, -scores) == pytest.approx(np.max(np.abs(tpr - fpr)), abs=1e-12)


@pytest.mark.parametrize(
    ("y", "scores", "expected_auc", "expected_ks"),
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 1.0, 1.0),
        ([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1], 0.0, 1.0),
        ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5, 0.0),
        ([0, 1, 1, 0], [0.1, 0.5, 0.5, 0.5], 0.75, 0.5),
        ([False, True], [0.0, 1.0], 1.0, 1.0),
    ],
)
def test_small_cases(
    y: list[int], scores: list[float], expected_auc: float, expected_ks: float
) -> None:
    assert auc(np.array(y), np.array(scores)) == pytest.approx(expected_auc)
    assert ks(np.array(y), np.array(scores)) == pytest.approx(expected_ks)


@pytest.mark.parametrize("metric", [auc, ks])
@pytest.mark.parametrize(
    ("y", "scores", "message"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], r"only one class"),
        ([0, 1, 2], [0.1, 0.2, 0.3], r"only 0 and 1"),
        ([0, 1], [0.1, 0.2, 0.3], r"two 1-D arrays of equal length"),
        ([0, 1], [0.1, np.nan], r"NaN or infinite"),
    ],
)
def test_metrics_reject_bad_input(
    metric: object, y: list[int], scores: list[float], message: str
) -> None:
    assert callable(metric)
    with pytest.raises(ValueError, match=message):
        metric(np.array(y), np.array(scores))
