"""A per-column profile of a party's table: type, missing share, categories, range, flags.

What ``lianmo data check`` prints after its summary line. It works on the features as the
node reads them (float64, NaN for a missing cell, codes for a categorical column) and
can take them chunk by chunk (:class:`Profiler`), so a table larger than memory is
profiled in one pass. A category column is described by counts only: its values (the
category texts) are never part of a profile.

Flags, for the operator to look at before a job uses the column:

- ``constant``: every cell holds the same value, or every cell is missing;
- ``almost all missing``: at least :data:`ALMOST_ALL_MISSING` of the cells are missing;
- ``unique per row``: an id in disguise; every row holds its own value and none is
  missing. A number counts only if every value is a whole number (a continuous amount
  is unique per row by nature), and only tables of at least :data:`MIN_ROWS_UNIQUE` rows
  are judged (in a handful of rows any column may be unique by chance).
"""

from __future__ import annotations

import math
import typing as t
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lianmo.data.rows import Table

__all__ = [
    "ALMOST_ALL_MISSING",
    "MIN_ROWS_UNIQUE",
    "ColumnProfile",
    "Profiler",
    "profile",
]

#: share of missing cells from which a column is flagged ``almost all missing``
ALMOST_ALL_MISSING = 0.95
#: fewest rows for which a column unique per row is flagged as an id in disguise
MIN_ROWS_UNIQUE = 20

Kind = t.Literal["number", "category"]


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """What one feature column holds.

    Attributes
    ----------
    name : str
        The column's name.
    kind : {"number", "category"}
        How the node reads it.
    rows, missing : int
        Cells in the column, and how many of them are missing.
    distinct : int or None
        Categories: how many distinct values occur (a count; the values are not kept).
        None for a number.
    minimum, maximum, mean : float or None
        Numbers: over the cells that are not missing (None if all are). None for a
        category.
    flags : tuple of str
        ``constant``, ``almost all missing``, ``unique per row`` (see the module).
    """

    name: str
    kind: Kind
    rows: int
    missing: int
    distinct: int | None
    minimum: float | None
    maximum: float | None
    mean: float | None
    flags: tuple[str, ...]

    @property
    def missing_share(self) -> float:
        """Missing cells as a share of all cells (0 for an empty column)."""
        return self.missing / self.rows if self.rows else 0.0

    def to_json(self) -> dict[str, object]:
        """The profile as plain JSON data (``missing_share`` included)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "missing": self.missing,
            "missing_share": self.missing_share,
            "distinct": self.distinct,
            "min": self.minimum,
            "max": self.maximum,
            "mean": self.mean,
            "flags": list(self.flags),
        }


class _Column:
    """Running counts of one column, added to block by block."""

    def __init__(self, name: str, n_categories: int | None) -> None:
        self.name = name
        self.is_category = n_categories is not None
        self.rows = self.missing = 0
        self.counts = np.zeros(n_categories or 0, dtype=np.int64)  # per category code
        self.total, self.low, self.high = 0.0, math.inf, -math.inf
        # while the column may still be unique per row: each block's distinct values
        self.blocks: list[np.ndarray] | None = []

    def add(self, values: np.ndarray) -> None:
        present = values[~np.isnan(values)]
        self.rows += len(values)
        self.missing += len(values) - len(present)
        if len(present) < len(values):
            self.blocks = None  # a missing cell: not an id
        if self.is_category:
            codes = np.bincount(present.astype(np.int64), minlength=len(self.counts))
            codes[: len(self.counts)] += self.counts
            self.counts = codes
            return
        if len(present):
            self.total += float(present.sum())
            self.low = min(self.low, float(present.min()))
            self.high = max(self.high, float(present.max()))
        self._track_unique(present)

    def _track_unique(self, present: np.ndarray) -> None:
        if self.blocks is None:
            return
        distinct = np.unique(present)
        if len(distinct) < len(present) or not np.all(distinct == np.floor(distinct)):
            self.blocks = None  # a repeated value, or not whole numbers
        else:
            self.blocks.append(distinct)

    def _unique_per_row(self, distinct: int | None) -> bool:
        if self.rows < MIN_ROWS_UNIQUE or self.missing:
            return False
        if self.is_category:
            return distinct == self.rows
        if self.blocks is None:
            return False
        return len(np.unique(np.concatenate(self.blocks))) == self.rows

    def result(self) -> ColumnProfile:
        present = self.rows - self.missing
        distinct = int(np.count_nonzero(self.counts)) if self.is_category else None
        flags = []
        if self.is_category:
            one_value = distinct == 1
        else:
            one_value = present > 0 and self.low == self.high
        if present == 0 or (one_value and self.missing == 0):
            flags.append("constant")
        if self.rows and self.missing / self.rows >= ALMOST_ALL_MISSING:
            flags.append("almost all missing")
        if self._unique_per_row(distinct):
            flags.append("unique per row")
        number = not self.is_category and present > 0
        return ColumnProfile(
            name=self.name,
            kind="category" if self.is_category else "number",
            rows=self.rows,
            missing=self.missing,
            distinct=distinct,
            minimum=self.low if number else None,
            maximum=self.high if number else None,
            mean=self.total / present if number else None,
            flags=tuple(flags),
        )


class Profiler:
    """Profiles a table's feature columns from blocks of its rows, in any number of blocks.

    Parameters
    ----------
    feature_names : sequence of str
        The columns, in the order of the blocks' columns.
    categories : mapping of str to tuple of str
        The categorical columns and their categories in code order (as a Table has them).
    """

    def __init__(
        self, feature_names: Sequence[str], categories: Mapping[str, tuple[str, ...]]
    ) -> None:
        self._columns = [
            _Column(name, len(categories[name]) if name in categories else None)
            for name in feature_names
        ]

    def add(self, X: np.ndarray) -> None:
        """Count a block of rows: float64 of shape ``(rows, len(feature_names))``."""
        for j, column in enumerate(self._columns):
            column.add(np.asarray(X[:, j], dtype=np.float64))

    def result(self) -> tuple[ColumnProfile, ...]:
        """One profile per column, in column order."""
        return tuple(column.result() for column in self._columns)


def profile(table: Table) -> tuple[ColumnProfile, ...]:
    """Profile every feature column of an in-memory table."""
    profiler = Profiler(table.feature_names, table.categories)
    profiler.add(table.X)
    return profiler.result()
