"""Encode one party's raw columns (NaN = missing, categories as codes) into model inputs.

An encoding is fitted on a party's own training rows and then transforms any table of
the same columns the same way, at training, validation and scoring alike. It is kept in
that party's model share as plain JSON (:meth:`Encoder.to_dict`,
:func:`encoder_from_dict`) and never leaves the party: its levels, medians and category
names are the party's own.

:class:`ImputeOneHot` is the encoding logistic regression uses (scikit-learn's
``SimpleImputer(strategy="constant") + OneHotEncoder`` for categories and
``SimpleImputer(strategy="median", add_indicator=True)`` for numbers, in one step):

- a categorical column (codes ``0..K-1`` into its trained vocabulary, NaN missing) becomes
  one 0/1 column per kept level: the most frequent codes, at most ``max_levels``; an
  ``<other>`` column for the remaining codes (and, at scoring, for codes ``>= K``:
  categories training never saw); a ``<missing>`` column for missing cells;
- a numeric column keeps its values with missing cells set to the training median, plus
  a 0/1 ``<missing>`` indicator column.

Every 0/1 column covers at least ``min_rows`` training rows: a level, ``<other>``,
``<missing>`` or indicator with fewer is not made (its rows get no level, or just the
median). A 0/1 column's gradient is a sum over exactly its rows, so a small one would
single out the labels of a few rows; logistic regression sets ``min_rows`` from its batch
size (see ``node/lr_job.py``).

On a table without missing cells and without categorical columns the transform is the
identity (:attr:`Encoder.is_identity`). Nothing is dropped: a categorical column's 0/1
columns sum to one, which only adds a flat direction to the (L2-regularised) loss.
"""

from __future__ import annotations

import abc
import math
import typing as t
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lianmo.errors import DataError

__all__ = [
    "DEFAULT_MAX_LEVELS",
    "DEFAULT_MIN_ROWS",
    "CategoryColumn",
    "Encoder",
    "ImputeOneHot",
    "NumberColumn",
    "encoder_from_dict",
]

#: at most this many one-hot levels per categorical column (plus other and missing)
DEFAULT_MAX_LEVELS = 20
#: a 0/1 column (level, other, missing, indicator) needs at least this many training rows
DEFAULT_MIN_ROWS = 10

OTHER = "<other>"
MISSING = "<missing>"


class Encoder(abc.ABC):
    """A fitted encoding of a party's columns: same columns in, named model inputs out.

    Subclasses register under their ``KIND`` (the ``"kind"`` of their JSON) with
    :func:`register`, so :func:`encoder_from_dict` rebuilds any of them.
    """

    KIND: t.ClassVar[str]

    @property
    @abc.abstractmethod
    def input_names(self) -> tuple[str, ...]:
        """The raw columns it reads, in the order of the columns of ``X``."""

    @property
    @abc.abstractmethod
    def output_names(self) -> tuple[str, ...]:
        """A name for every column :meth:`transform` returns, in order."""

    @property
    @abc.abstractmethod
    def categories(self) -> Mapping[str, tuple[str, ...]]:
        """Per categorical input column, its trained vocabulary in code order.

        A scoring table must be read with it (known texts keep their codes, new ones
        come after), so the codes mean what they meant at training.
        """

    @property
    @abc.abstractmethod
    def is_identity(self) -> bool:
        """True if :meth:`transform` returns ``X`` unchanged on rows without NaN."""

    @abc.abstractmethod
    def transform(self, X: np.ndarray) -> np.ndarray:
        """Encode ``X`` (rows x :attr:`input_names`) into rows x :attr:`output_names`."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, t.Any]:
        """Plain JSON data, with ``"kind"``; :func:`encoder_from_dict` reads it back."""


_KINDS: dict[str, t.Callable[[Mapping[str, t.Any]], Encoder]] = {}


def register(kind: str, from_dict: t.Callable[[Mapping[str, t.Any]], Encoder]) -> None:
    """Make :func:`encoder_from_dict` rebuild encoders whose JSON has ``"kind": kind``."""
    _KINDS[kind] = from_dict


def encoder_from_dict(data: Mapping[str, t.Any]) -> Encoder:
    """Rebuild an encoder from its :meth:`Encoder.to_dict` data.

    Raises
    ------
    DataError
        If the kind is unknown or the data malformed.
    """
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if kind not in _KINDS:
        raise DataError(
            f"unknown encoding kind {kind!r} (known: {sorted(_KINDS)}); the model share "
            "was written by another lianmo version: retrain the model with this one"
        )
    try:
        return _KINDS[kind](data)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"encoding of kind {kind!r} is malformed: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class NumberColumn:
    """A numeric column: missing cells get ``median``; ``indicator`` adds a 0/1 column."""

    name: str
    median: float
    indicator: bool

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}={MISSING}") if self.indicator else (self.name,)

    def encode(self, x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        values = np.where(missing, self.median, x)
        if not self.indicator:
            return values[:, None]
        return np.column_stack([values, missing.astype(np.float64)])

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "name": self.name,
            "type": "number",
            "median": self.median,
            "indicator": self.indicator,
        }


@dataclass(frozen=True, slots=True)
class CategoryColumn:
    """A categorical column of codes into ``vocabulary``, one-hot encoded.

    ``levels`` are the codes with their own column, most frequent first; ``other`` adds
    a column for every other code (unseen ones, ``>= len(vocabulary)``, included);
    ``missing`` one for missing cells. Without a ``missing`` column a missing cell is
    treated as an unseen category; without an ``other`` column those rows are all zeros.
    """

    name: str
    vocabulary: tuple[str, ...]
    levels: tuple[int, ...]
    other: bool
    missing: bool

    def __post_init__(self) -> None:
        k = len(self.vocabulary)
        if any(not 0 <= code < k for code in self.levels) or len(set(self.levels)) != len(
            self.levels
        ):
            raise ValueError(
                f"column '{self.name}': levels {list(self.levels)} must be distinct codes "
                f"below its {k} categories"
            )

    @property
    def outputs(self) -> tuple[str, ...]:
        names = [f"{self.name}={self.vocabulary[code]}" for code in self.levels]
        names += [f"{self.name}={OTHER}"] * self.other + [f"{self.name}={MISSING}"] * self.missing
        return tuple(names)

    def encode(self, x: np.ndarray) -> np.ndarray:
        codes = _codes(self.name, x)
        n_levels = len(self.levels)
        # the output column of each code: its level, else other (-1: none)
        other_at = n_levels if self.other else -1
        lookup = np.full(len(self.vocabulary) + 1, other_at, dtype=np.intp)
        lookup[list(self.levels)] = np.arange(n_levels)
        missing = codes < 0
        target = lookup[np.minimum(np.where(missing, 0, codes), len(self.vocabulary))]
        target[missing] = n_levels + self.other if self.missing else other_at
        out = np.zeros((len(x), len(self.outputs)), dtype=np.float64)
        hit = target >= 0
        out[np.flatnonzero(hit), target[hit]] = 1.0
        return out

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "name": self.name,
            "type": "category",
            "vocabulary": list(self.vocabulary),
            "levels": list(self.levels),
            "other": self.other,
            "missing": self.missing,
        }


Column = NumberColumn | CategoryColumn


@dataclass(frozen=True, slots=True)
class ImputeOneHot(Encoder):
    """One-hot categories and median-imputed numbers with missing indicators.

    Build it with :meth:`fit`; see the module docstring for what it does per column.
    """

    columns: tuple[Column, ...]
    KIND: t.ClassVar[str] = "impute_onehot"

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        feature_names: Sequence[str],
        categories: Mapping[str, Sequence[str]],
        *,
        max_levels: int = DEFAULT_MAX_LEVELS,
        min_rows: int = DEFAULT_MIN_ROWS,
    ) -> ImputeOneHot:
        """Learn levels and medians from the training rows ``X``.

        Parameters
        ----------
        X : numpy.ndarray
            Training rows, shape ``(n_rows, len(feature_names))``: numbers, or codes for
            the columns in ``categories``; NaN for a missing cell.
        feature_names : sequence of str
            The name of each column of ``X``.
        categories : mapping of str to sequence of str
            Each categorical column's vocabulary (the table's ``categories``).
        max_levels, min_rows : int
            At most ``max_levels`` levels per categorical column; every 0/1 column
            (level, other, missing, indicator) covers at least ``min_rows`` rows.

        Raises
        ------
        DataError
            If ``X`` does not match the names, has no rows, holds infinite values, or a
            categorical column holds something other than codes.
        """
        X = _matrix(X, len(feature_names))
        if X.shape[0] == 0:
            raise DataError("cannot fit an encoding on 0 rows; pass the training rows")
        if max_levels < 1 or min_rows < 1:
            raise DataError(f"max_levels ({max_levels}) and min_rows ({min_rows}) must be >= 1")
        columns: list[Column] = []
        for j, name in enumerate(feature_names):
            x = X[:, j]
            if name in categories:
                columns.append(
                    _fit_category(name, x, tuple(categories[name]), max_levels, min_rows)
                )
            else:
                columns.append(_fit_number(name, x, min_rows))
        return cls(tuple(columns))

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(name for c in self.columns for name in c.outputs)

    @property
    def categories(self) -> Mapping[str, tuple[str, ...]]:
        return {c.name: c.vocabulary for c in self.columns if isinstance(c, CategoryColumn)}

    @property
    def is_identity(self) -> bool:
        return all(isinstance(c, NumberColumn) and not c.indicator for c in self.columns)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Encode ``X``; see the module docstring.

        Raises
        ------
        DataError
            If ``X`` has another number of columns, holds infinite values, or a
            categorical column holds something other than codes (or NaN).
        """
        X = _matrix(X, len(self.columns))
        blocks = [c.encode(X[:, j]) for j, c in enumerate(self.columns)]
        if not blocks:
            return np.zeros((X.shape[0], 0))
        return np.hstack(blocks)

    def to_dict(self) -> dict[str, t.Any]:
        return {"kind": self.KIND, "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, t.Any]) -> ImputeOneHot:
        columns: list[Column] = []
        for raw in data["columns"]:
            if raw["type"] == "number":
                median = float(raw["median"])
                if not math.isfinite(median):
                    raise ValueError(f"column '{raw['name']}': median {median} is not finite")
                columns.append(NumberColumn(str(raw["name"]), median, bool(raw["indicator"])))
            elif raw["type"] == "category":
                columns.append(
                    CategoryColumn(
                        str(raw["name"]),
                        tuple(str(v) for v in raw["vocabulary"]),
                        tuple(int(v) for v in raw["levels"]),
                        bool(raw["other"]),
                        bool(raw["missing"]),
                    )
                )
            else:
                raise ValueError(f"column type {raw['type']!r} is neither number nor category")
        return cls(tuple(columns))


register(ImputeOneHot.KIND, ImputeOneHot.from_dict)


def _fit_number(name: str, x: np.ndarray, min_rows: int) -> NumberColumn:
    missing = np.isnan(x)
    # a column with no value at all in training encodes to constants (weight 0)
    median = float(np.median(x[~missing])) if not missing.all() else 0.0
    return NumberColumn(name, median, int(missing.sum()) >= min_rows)


def _fit_category(
    name: str, x: np.ndarray, vocabulary: tuple[str, ...], max_levels: int, min_rows: int
) -> CategoryColumn:
    codes = _codes(name, x)
    present = codes[codes >= 0]
    counts = np.bincount(np.minimum(present, len(vocabulary)), minlength=len(vocabulary) + 1)
    counts[len(vocabulary)] = 0  # codes beyond the vocabulary never get a level
    # most frequent first, ties by code (a stable sort keeps code order)
    order = np.argsort(-counts, kind="stable")
    levels = tuple(int(c) for c in order[:max_levels] if counts[c] >= min_rows)
    other = len(present) - int(counts[list(levels)].sum()) >= min_rows
    return CategoryColumn(name, vocabulary, levels, other, int((codes < 0).sum()) >= min_rows)


def _codes(name: str, x: np.ndarray) -> np.ndarray:
    """Integer codes of a categorical column, -1 for missing."""
    missing = np.isnan(x)
    values = np.where(missing, 0.0, x)
    if not ((values >= 0) & (values == np.floor(values))).all():
        raise DataError(
            f"categorical column '{name}' holds a value that is not a category code "
            "(a whole number >= 0); read the table with its categories declared"
        )
    codes = values.astype(np.int64)
    codes[missing] = -1
    return codes


def _matrix(X: np.ndarray, n_columns: int) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_columns:
        raise DataError(
            f"X has shape {X.shape} but the encoding has {n_columns} columns; pass the "
            "columns the encoding was fitted on, in the same order"
        )
    if np.isinf(X).any():
        raise DataError("X contains infinite values; only NaN (missing) can be encoded")
    return X
