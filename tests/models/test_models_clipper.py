"""Tests for lianmo.models.scaler.QuantileClipper (winsorising at training quantiles)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lianmo.errors import DataError
from lianmo.models.scaler import QuantileClipper


def _heavy_tailed(n: int = 2000, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.lognormal(0, 2, n), rng.standard_t(1.5, n), rng.normal(size=n)])


def test_bounds_are_the_training_quantiles_and_clip_each_tail() -> None:
    X = _heavy_tailed()
    clipper = QuantileClipper.fit(X, 0.02)
    np.testing.assert_array_equal(clipper.lower, np.percentile(X, 2, axis=0))
    np.testing.assert_array_equal(clipper.upper, np.percentile(X, 98, axis=0))
    out = clipper.transform(X)
    assert (out >= clipper.lower).all() and (out <= clipper.upper).all()
    changed = (out != X).mean(axis=0)
    np.testing.assert_allclose(changed, 0.04, atol=0.002)  # 2% of the rows in each tail
    inside = (X > clipper.lower) & (X < clipper.upper)
    np.testing.assert_array_equal(out[inside], X[inside])


def test_fitted_on_training_rows_it_clips_new_rows_to_the_training_bounds() -> None:
    X = _heavy_tailed()
    clipper = QuantileClipper.fit(X[:1500], 0.01)
    new = np.array([[1e9, -1e9, 0.0]])
    np.testing.assert_array_equal(
        clipper.transform(new)[0], [clipper.upper[0], clipper.lower[1], 0.0]
    )
    assert clipper.upper[0] < X[:, 0].max()  # the tail it clips is real


def test_a_rare_zero_one_column_and_a_constant_column_pass_unchanged() -> None:
    """Quantiles that coincide would flatten a column: its training range is used instead."""
    n = 1000
    rare = np.zeros(n)
    rare[:15] = 1.0  # 1.5% ones: the 2% and 98% quantiles are both 0
    X = np.column_stack([rare, np.full(n, 7.0), np.arange(n, dtype=float)])
    clipper = QuantileClipper.fit(X, 0.02)
    np.testing.assert_array_equal(clipper.lower[:2], [0.0, 7.0])
    np.testing.assert_array_equal(clipper.upper[:2], [1.0, 7.0])
    np.testing.assert_array_equal(clipper.transform(X)[:, :2], X[:, :2])
    assert clipper.upper[2] < n - 1  # the spread column is clipped as usual


def test_to_dict_round_trips_through_json_exactly() -> None:
    clipper = QuantileClipper.fit(_heavy_tailed(), 0.01)
    again = QuantileClipper.from_dict(json.loads(json.dumps(clipper.to_dict())))
    np.testing.assert_array_equal(again.lower, clipper.lower)
    np.testing.assert_array_equal(again.upper, clipper.upper)
    assert not again.lower.flags.writeable


@pytest.mark.parametrize(
    ("X", "share", "message"),
    [
        (np.zeros((0, 2)), 0.01, "0 rows"),
        (np.array([[1.0, np.nan]]), 0.01, "NaN or infinite"),
        (np.ones((5, 2)), 0.5, r"clip share is 0.5 but must lie in \(0, 0.5\)"),
        (np.ones((5, 2)), 0.0, "clip share is 0.0"),
    ],
)
def test_fit_rejects_bad_input(X: np.ndarray, share: float, message: str) -> None:
    with pytest.raises(DataError, match=message):
        QuantileClipper.fit(X, share)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lower": [0.0]}, "lacks upper"),
        ({"lower": [1.0], "upper": [0.0]}, "lower <= upper"),
        ({"lower": [0.0, 1.0], "upper": [1.0]}, "one value per feature"),
        ({"lower": ["a"], "upper": [1.0]}, "not lists of numbers"),
    ],
)
def test_from_dict_rejects_bad_data(data: dict[str, list[float]], message: str) -> None:
    with pytest.raises(DataError, match=message):
        QuantileClipper.from_dict(data)


def test_transform_rejects_another_number_of_columns() -> None:
    clipper = QuantileClipper.fit(_heavy_tailed(), 0.01)
    with pytest.raises(DataError, match="X has 2 features but the clipper was fitted on 3"):
        clipper.transform(np.zeros((4, 2)))
