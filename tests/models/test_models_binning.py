"""Quantile bins: the split rule x <= e_b <=> bin(x) <= b, and the bin budget."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lianmo.errors import ConfigError
from lianmo.models.binning import QuantileBins

finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 200), st.integers(1, 3)), elements=finite),
    st.integers(2, 40),
)
def test_bins_respect_the_split_rule_and_the_budget(X: np.ndarray, max_bins: int) -> None:
    bins = QuantileBins.fit(X, max_bins)
    binned = bins.transform(X)
    for f in range(X.shape[1]):
        assert bins.n_bins(f) <= max_bins
        edges = bins.edges[f]
        assert np.all(np.diff(edges) > 0) and np.all(edges < X[:, f].max())
        for b in range(len(edges)):
            assert np.array_equal(X[:, f] <= bins.threshold(f, b), binned[:, f] <= b)
        if len(np.unique(X[:, f])) <= max_bins:  # one bin per distinct value
            assert len(np.unique(binned[:, f])) == len(np.unique(X[:, f]))


def test_bad_budget_and_shape_are_refused() -> None:
    with pytest.raises(ConfigError, match="max_bins"):
        QuantileBins.fit(np.zeros((3, 1)), 1)
    with pytest.raises(ConfigError, match="fitted on 1 columns"):
        QuantileBins.fit(np.zeros((3, 1)), 4).transform(np.zeros((3, 2)))


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 200), st.integers(1, 3)), elements=finite),
    arrays(np.bool_, st.tuples(st.integers(1, 200), st.integers(1, 3))),
    st.integers(2, 40),
)
def test_missing_cells_get_their_own_bin_and_leave_the_edges_alone(
    X: np.ndarray, blank: np.ndarray, max_bins: int
) -> None:
    blank = np.resize(blank, X.shape)
    with_missing = np.where(blank, np.nan, X)
    bins = QuantileBins.fit(with_missing, max_bins)
    binned = bins.transform(with_missing)
    for f in range(X.shape[1]):
        present = X[~blank[:, f], f]
        # the edges are those of the non-missing values alone
        want = QuantileBins.fit(present[:, None], max_bins).edges[0] if len(present) else []
        np.testing.assert_array_equal(bins.edges[f], want)
        assert bins.missing[f] == bool(blank[:, f].any())
        assert bins.missing_bin(f) == (bins.n_bins(f) if blank[:, f].any() else None)
        assert bins.n_cells(f) == bins.n_bins(f) + int(blank[:, f].any())
        assert np.all(binned[blank[:, f], f] == bins.n_bins(f))
        assert np.all(binned[~blank[:, f], f] < bins.n_bins(f))
    assert bins.width == max(bins.n_cells(f) for f in range(X.shape[1]))


def test_a_column_with_missing_cells_keeps_room_for_its_missing_bin_in_uint8() -> None:
    X = np.arange(1000, dtype=np.float64)[:, None]
    X[::7] = np.nan
    bins = QuantileBins.fit(X, 256)
    assert bins.n_bins(0) == 255 and bins.missing_bin(0) == 255
    assert bins.transform(X).max() == 255
    assert QuantileBins.fit(np.arange(1000.0)[:, None], 256).n_bins(0) == 256  # unchanged


def test_missing_cells_in_a_column_fitted_without_them_are_refused() -> None:
    bins = QuantileBins.fit(np.arange(5.0)[:, None], 4)
    with pytest.raises(ConfigError, match="column 0 had no missing cells when its bins"):
        bins.transform(np.array([[np.nan]]))


def test_every_value_left_missing_right_is_a_rule_that_scores() -> None:
    # found by a user-style run: the candidate "all values left, missing right" has no
    # edge after the last value bin; its rule must send every finite value left and a
    # missing cell right (it used to raise IndexError at the party that won it)
    from lianmo.protocols.secureboost.rules import make_rule  # noqa: PLC0415

    X = np.array([[0.5], [1.0], [2.0], [np.nan], [np.nan], [3.0]])
    bins = QuantileBins.fit(X, 4)
    nv = bins.n_bins(0)
    left = np.zeros(nv + 1, dtype=bool)
    left[:nv] = True  # every value bin left, the missing bin right
    present = np.ones(nv + 1, dtype=bool)
    rule, _ = make_rule(bins, 0, left, present, tree=0, depth=0)
    probe = np.array([[-1e300], [0.5], [3.0], [1e300], [np.nan]])
    assert rule.goes_left(probe, np.arange(5)).tolist() == [True, True, True, True, False]
    assert np.isfinite(rule.threshold)  # the share stays standard JSON
