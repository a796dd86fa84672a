"""Tests for lianmo.models.scaler.Standardizer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

from lianmo.errors import DataError
from lianmo.models.scaler import Standardizer


def test_fit_transform_matches_scikit_learn() -> None:
    X = np.random.default_rng(1).normal(3.0, 2.0, size=(200, 4))
    scaler = Standardizer.fit(X)
    np.testing.assert_allclose(scaler.transform(X), StandardScaler().fit_transform(X))
    np.testing.assert_allclose(scaler.mean, X.mean(axis=0))


@pytest.mark.parametrize("value", [0.0, 0.1, 7.0, -1e6])
def test_constant_column_gets_scale_one_and_maps_to_zero(value: float) -> None:
    X = np.column_stack([np.full(50, value), np.arange(50.0)])
    scaler = Standardizer.fit(X)
    assert scaler.scale[0] == 1.0
    np.testing.assert_allclose(scaler.transform(X)[:, 0], 0.0, atol=1e-9)


def test_to_dict_round_trips_through_json() -> None:
    scaler = Standardizer.fit(np.array([[1.0, 2.0], [3.0, 5.0]]))
    data = json.loads(json.dumps(scaler.to_dict()))
    assert data == {"mean": [2.0, 3.5], "scale": [1.0, 1.5]}
    again = Standardizer.from_dict(data)
    np.testing.assert_array_equal(again.mean, scaler.mean)
    np.testing.assert_array_equal(again.scale, scaler.scale)


def test_transform_does_not_change_its_input_and_arrays_are_read_only() -> None:
    X = np.array([[1.0], [3.0]])
    scaler = Standardizer.fit(X)
    scaler.transform(X)
    np.testing.assert_array_equal(X, [[1.0], [3.0]])
    with pytest.raises(ValueError, match="read-only"):
        scaler.mean[0] = 0.0


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.zeros(3), r"expected a 2-D array .* reshape"),
        (np.zeros((0, 2)), r"cannot fit a standardizer on 0 rows"),
        (np.array([[1.0], [np.nan]]), r"NaN or infinite"),
    ],
)
def test_fit_rejects_bad_input(X: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        Standardizer.fit(X)


def test_transform_rejects_a_different_number_of_features() -> None:
    scaler = Standardizer.fit(np.ones((3, 2)))
    with pytest.raises(DataError, match=r"X has 3 features but the standardizer was fitted on 2"):
        scaler.transform(np.ones((3, 3)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mean": [0.0]}, r"lacks scale"),
        ({"mean": [0.0], "scale": [1.0, 2.0]}, r"both must be one value per feature"),
        ({"mean": [0.0], "scale": [0.0]}, r"scale finite and positive"),
        ({"mean": ["a"], "scale": [1.0]}, r"not lists of numbers"),
    ],
)
def test_from_dict_rejects_bad_data(data: dict[str, list[float]], message: str) -> None:
    with pytest.raises(DataError, match=message):
        Standardizer.from_dict(data)
