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

A categorical column (codes ``0 .. K-1`` of its ``K`` training categories, NaN missing)
gets one bin per category with at least ``min_category_rows`` training rows, at most
``max_bins - 1`` of them (the most frequent), in code order; every other category (rare,
beyond the cap, or a code >= K: unseen when the bins were fitted) shares one "other" bin
after them, and missing cells the missing bin after that. XGBoost does not merge rare
categories; merging those below 0.1% of the rows (:func:`min_category_rows`) keeps the
histograms small without costing measurable AUC on the credit data.
"""

from __future__ import annotations

import math
import typing as t
from dataclasses import dataclass

import numpy as np

from lianmo.errors import ConfigError

__all__ = ["QuantileBins", "min_category_rows"]

#: the threshold of "every value left": the largest float64, so that every finite value
#: (tables refuse infinite ones) goes left and the model file stays standard JSON
ALL_VALUES = float(np.finfo(np.float64).max)
#: bins are stored as uint8 when they fit, which is what the histogram kernels expect
MAX_BINS = 256


@dataclass(frozen=True, eq=False)
class QuantileBins:
    """Split thresholds per feature; see the module docstring for the bin rule.

    ``missing[f]``: whether feature ``f`` had missing training cells, and so a missing bin.
    ``code_bins[f]``: for a categorical feature with ``K`` training categories, the bin of
    each code ``0 .. K-1`` and, last, of every other code: the "other" bin,
    ``n_bins(f) - 1``; None for a numeric feature (a categorical one has no edges).
    """

    edges: tuple[np.ndarray, ...]
    missing: tuple[bool, ...] = ()
    code_bins: tuple[np.ndarray | None, ...] = ()

    def __post_init__(self) -> None:
        if not self.missing:
            object.__setattr__(self, "missing", (False,) * len(self.edges))
        if not self.code_bins:
            object.__setattr__(self, "code_bins", (None,) * len(self.edges))

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        max_bins: int,
        categories: t.Sequence[int | None] | None = None,
    ) -> QuantileBins:
        """Choose at most ``max_bins`` bins per column of ``X`` (rows x features, NaN = missing).

        ``categories[f]``: the number of training categories of a categorical column
        (its cells are codes), None for a numeric one; all numeric if omitted.
        """
        if not 2 <= max_bins <= MAX_BINS:
            raise ConfigError(f"max_bins must be from 2 to {MAX_BINS}, got {max_bins}")
        X = np.asarray(X, dtype=np.float64)
        kinds = list(categories) if categories is not None else [None] * X.shape[1]
        if len(kinds) != X.shape[1]:
            raise ConfigError(f"{len(kinds)} column kinds for {X.shape[1]} columns")
        edges: list[np.ndarray] = []
        missing: list[bool] = []
        code_bins: list[np.ndarray | None] = []
        for f in range(X.shape[1]):
            column = X[:, f]
            absent = np.isnan(column)
            has_missing = bool(absent.any())
            budget = min(max_bins, MAX_BINS - 1) if has_missing else max_bins
            kind = kinds[f]
            if kind is None:
                edges.append(_edges(column[~absent], budget))
                code_bins.append(None)
            else:
                edges.append(np.zeros(0, dtype=np.float64))
                code_bins.append(_code_bins(column[~absent], int(kind), budget, len(X)))
            missing.append(has_missing)
        return cls(tuple(edges), tuple(missing), tuple(code_bins))

    def is_categorical(self, feature: int) -> bool:
        return self.code_bins[feature] is not None

    @property
    def n_features(self) -> int:
        return len(self.edges)

    def n_bins(self, feature: int) -> int:
        """Value bins of ``feature`` (the missing bin not counted): one more than its edges,
        or for a categorical feature its kept categories plus "other"."""
        codes = self.code_bins[feature]
        if codes is not None:
            return int(codes[-1]) + 1
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
            absent = np.isnan(column)
            codes = self.code_bins[f]
            if codes is None:
                out[:, f] = np.searchsorted(cut, column, side="left")
            else:
                known = ~absent & (column >= 0) & (column < len(codes) - 1)
                out[:, f] = codes[-1]  # "other"
                out[known, f] = codes[column[known].astype(np.int64)]
            if absent.any():
                if not self.missing[f]:
                    raise ConfigError(
                        f"column {f} had no missing cells when its bins were fitted, so it has "
                        "no missing bin; bin only the rows the bins were fitted on"
                    )
                out[absent, f] = self.n_bins(f)
        return out

    def threshold(self, feature: int, bin_index: int) -> float:
        """The value ``e_b``: a split after ``bin_index`` sends ``x <= e_b`` left.

        After the last value bin ("every value left, missing right") it is
        :data:`ALL_VALUES`, which every finite value is at most; before the first (no
        value left) ``-inf``.
        """
        edges = self.edges[feature]
        if bin_index >= len(edges):
            return ALL_VALUES
        return float(edges[bin_index]) if bin_index >= 0 else -math.inf


def min_category_rows(rows: int) -> int:
    """Training rows a category needs for a bin of its own: 0.1% of the rows, at least 1."""
    return max(1, -(-rows // 1000))


def _code_bins(codes: np.ndarray, n_categories: int, max_bins: int, rows: int) -> np.ndarray:
    """The bin of each category code 0 .. n_categories-1, then of "other" (rare, unseen)."""
    count = np.bincount(
        codes[(codes >= 0) & (codes < n_categories)].astype(np.int64), minlength=n_categories
    )[:n_categories]
    frequent = np.flatnonzero(count >= min_category_rows(rows))
    if len(frequent) > max_bins - 1:  # the most frequent; ties: the lower code
        frequent = np.sort(frequent[np.argsort(-count[frequent], kind="stable")[: max_bins - 1]])
    out = np.full(n_categories + 1, len(frequent), dtype=np.int64)  # "other"
    out[frequent] = np.arange(len(frequent))
    return out


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
