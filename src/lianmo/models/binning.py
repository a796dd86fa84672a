"""Quantile bins per feature: what a tree split can see of a column.

Each party bins its own columns on its own training rows; nothing about the edges ever
leaves the party. Feature ``f`` gets strictly increasing edges ``e_0 < e_1 < ...`` and a
value ``x`` falls in bin ``b`` = the number of edges strictly below ``x``, so that

    x <= e_b   <=>   bin(x) <= b.

A split "after bin b" sends a row left exactly when ``x <= e_b``: the threshold a party
keeps in its model. A column with at most ``max_bins`` distinct values gets one bin per
value; otherwise the edges are the distinct lower quantiles at ``k / max_bins``.

Missing cells (NaN) take no part in the edges: a column with missing training cells gets
its own *missing bin* after its value bins, index ``n_bins(f)`` (so such a column has at
most 255 value bins: bins are uint8). A split sends the missing bin to the side it
learned (its default direction, :mod:`lianmo.models.split_candidates`).
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
    """Split thresholds per feature; see the module docstring for the bin rule.

    ``missing[f]``: whether feature ``f`` had missing training cells, and so a missing bin.
    """

    edges: tuple[np.ndarray, ...]
    missing: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        if not self.missing:
            object.__setattr__(self, "missing", (False,) * len(self.edges))

    @classmethod
    def fit(cls, X: np.ndarray, max_bins: int) -> QuantileBins:
        """Choose at most ``max_bins`` bins per column of ``X`` (rows x features, NaN = missing)."""
        if not 2 <= max_bins <= MAX_BINS:
            raise ConfigError(f"max_bins must be from 2 to {MAX_BINS}, got {max_bins}")
        X = np.asarray(X, dtype=np.float64)
        edges, missing = [], []
        for f in range(X.shape[1]):
            column = X[:, f]
            absent = np.isnan(column)
            has_missing = bool(absent.any())
            if has_missing:
                column = column[~absent]
            edges.append(_edges(column, min(max_bins, MAX_BINS - 1) if has_missing else max_bins))
            missing.append(has_missing)
        return cls(tuple(edges), tuple(missing))

    @property
    def n_features(self) -> int:
        return len(self.edges)

    def n_bins(self, feature: int) -> int:
        """Value bins of ``feature``: one more than its edges (the missing bin not counted)."""
        return len(self.edges[feature]) + 1

    def n_cells(self, feature: int) -> int:
        """Bins of ``feature`` including its missing bin, if it has one."""
        return self.n_bins(feature) + int(self.missing[feature])

    def missing_bin(self, feature: int) -> int | None:
        """Index of the missing bin of ``feature`` (None if it had no missing cells)."""
        return self.n_bins(feature) if self.missing[feature] else None

    @property
    def width(self) -> int:
        """The widest feature's cell count (at least 1): the stride of a histogram."""
        return max((self.n_cells(f) for f in range(self.n_features)), default=1)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Bin index of every cell of ``X``, as uint8 (rows x features); NaN -> missing bin."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ConfigError(
                f"binning was fitted on {self.n_features} columns, got an array of shape {X.shape}"
            )
        out = np.empty(X.shape, dtype=np.uint8)
        for f, cut in enumerate(self.edges):
            column = X[:, f]
            out[:, f] = np.searchsorted(cut, column, side="left")
            absent = np.isnan(column)
            if absent.any():
                if not self.missing[f]:
                    raise ConfigError(
                        f"column {f} had no missing cells when its bins were fitted, so it has "
                        "no missing bin; bin only the rows the bins were fitted on"
                    )
                out[absent, f] = self.n_bins(f)
        return out

    def threshold(self, feature: int, bin_index: int) -> float:
        """The value ``e_b``: a split after ``bin_index`` sends ``x <= e_b`` left."""
        return float(self.edges[feature][bin_index])


def _edges(values: np.ndarray, max_bins: int) -> np.ndarray:
    """The edges of one column's (non-missing) values."""
    distinct = np.unique(values)
    if len(distinct) <= max_bins:
        cut = distinct[:-1]
    else:
        levels = np.arange(1, max_bins) / max_bins
        cut = np.unique(np.quantile(values, levels, method="lower"))
        cut = cut[cut < distinct[-1]]  # an edge at the maximum leaves an empty top bin
    return np.ascontiguousarray(cut, dtype=np.float64)
