"""Quantile bins per feature: what a tree split can see of a column.

Each party bins its own columns on its own training rows; nothing about the edges ever
leaves the party. Feature ``f`` gets strictly increasing edges ``e_0 < e_1 < ...`` and a
value ``x`` falls in bin ``b`` = the number of edges strictly below ``x``, so that

    x <= e_b   <=>   bin(x) <= b.

A split "after bin b" sends a row left exactly when ``x <= e_b``: the threshold a party
keeps in its model. A column with at most ``max_bins`` distinct values gets one bin per
value; otherwise the edges are the distinct lower quantiles at ``k / max_bins``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lianmo.errors import ConfigError

__all__ = ["QuantileBins"]

#: bins are stored as uint8 when they fit, which is what the histogram kernels expect
MAX_BINS = 256


@dataclass(frozen=True, eq=False)
class QuantileBins:
    """Split thresholds per feature; see the module docstring for the bin rule."""

    edges: tuple[np.ndarray, ...]

    @classmethod
    def fit(cls, X: np.ndarray, max_bins: int) -> QuantileBins:
        """Choose at most ``max_bins`` bins per column of ``X`` (rows x features)."""
        if not 2 <= max_bins <= MAX_BINS:
            raise ConfigError(f"max_bins must be from 2 to {MAX_BINS}, got {max_bins}")
        X = np.asarray(X, dtype=np.float64)
        edges = []
        for f in range(X.shape[1]):
            values = np.unique(X[:, f])
            if len(values) <= max_bins:
                cut = values[:-1]
            else:
                levels = np.arange(1, max_bins) / max_bins
                cut = np.unique(np.quantile(X[:, f], levels, method="lower"))
                cut = cut[cut < values[-1]]  # an edge at the maximum leaves an empty top bin
            edges.append(np.ascontiguousarray(cut, dtype=np.float64))
        return cls(tuple(edges))

    @property
    def n_features(self) -> int:
        return len(self.edges)

    def n_bins(self, feature: int) -> int:
        """Bins of ``feature``: one more than its edges."""
        return len(self.edges[feature]) + 1

    @property
    def max_bins(self) -> int:
        """The widest feature's bin count (at least 1)."""
        return max((self.n_bins(f) for f in range(self.n_features)), default=1)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Bin index of every cell of ``X``, as uint8 (rows x features)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ConfigError(
                f"binning was fitted on {self.n_features} columns, got an array of shape {X.shape}"
            )
        out = np.empty(X.shape, dtype=np.uint8)
        for f, cut in enumerate(self.edges):
            out[:, f] = np.searchsorted(cut, X[:, f], side="left")
        return out

    def threshold(self, feature: int, bin_index: int) -> float:
        """The value ``e_b``: a split after ``bin_index`` sends ``x <= e_b`` left."""
        return float(self.edges[feature][bin_index])
