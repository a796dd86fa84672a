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
