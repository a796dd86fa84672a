"""The in-memory :class:`Table` and :class:`Rows`, what it shares with a file's scan.

A party's rows are held two ways: a :class:`Table` keeps every feature in memory, a
:class:`~lianmo.data.scan.TableScan` keeps ids and labels and reads features from the
file on demand. Both are :class:`Rows`: ids, labels and column names, and picking rows
into a new :class:`Table` (:meth:`Rows.take`), so the label checks and the code that
builds tables from chosen rows serve both.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from lianmo.data.cells import data_error

__all__ = ["Rows", "Table", "read_only"]


class Rows(abc.ABC):
    """Rows with ids, optional labels and named feature columns, from one source.

    Subclasses are frozen dataclasses that define the attributes below and the ids.
    """

    __slots__ = ()

    #: where the rows came from (the file path), used in error messages
    source: str
    #: column name of ``y`` in the file, used in error messages
    label_name: str | None
    #: the feature columns, in order
    feature_names: tuple[str, ...]
    #: float64 labels of shape ``(n_rows,)`` (read-only), or None
    y: np.ndarray | None
    #: per categorical feature column, its categories in code order (see :class:`Table`)
    categories: Mapping[str, tuple[str, ...]]

    @abc.abstractmethod
    def __len__(self) -> int:
        """Return the number of rows."""

    @abc.abstractmethod
    def id_at(self, row: int) -> str:
        """The id of row ``row``."""

    @abc.abstractmethod
    def ids_at(self, rows: np.ndarray) -> tuple[str, ...]:
        """The ids of ``rows``, in that order, as strings."""

    def take(self, rows: np.ndarray, X: np.ndarray) -> Table:
        """Return a :class:`Table` of ``rows`` (positions, in that order) with features ``X``.

        ``X`` holds the features of exactly those rows, one row each; ids and labels
        come from ``self``, columns and source stay the same.
        """
        idx = np.asarray(rows, dtype=np.intp)
        return Table(
            ids=self.ids_at(idx),
            X=X,
            feature_names=self.feature_names,
            y=None if self.y is None else self.y[idx],
            source=self.source,
            label_name=self.label_name,
            categories=self.categories,
        )


@dataclass(frozen=True, slots=True, eq=False)
class Table(Rows):
    """One party's rows: ids, a float64 feature matrix and, for the label holder, labels.

    Parameters
    ----------
    ids : tuple of str
        Row ids, unique, in file order (or the order chosen by :meth:`select`).
    X : numpy.ndarray
        Float64 features of shape ``(n_rows, n_features)``; stored as a read-only view.
    feature_names : tuple of str
        Column name of each column of ``X``.
    y : numpy.ndarray or None
        Float64 labels of shape ``(n_rows,)`` (read-only), or None if the party has none.
    source : str
        Where the rows came from (the file path), used in error messages.
    label_name : str or None, optional
        Column name of ``y`` in the file, used in error messages.
    categories : mapping of str to tuple of str, optional
        The categorical feature columns: each one's categories (the cell texts) in code
        order. Such a column of ``X`` holds codes: ``k`` for ``categories[name][k]``.
        In every feature column NaN is a missing cell. The codes are this party's own:
        never sent, only kept in its model share to read later tables the same way.

    Notes
    -----
    Tables compare by identity (``eq=False``): numpy arrays have no single-valued ``==``.
    """

    ids: tuple[str, ...]
    X: np.ndarray
    feature_names: tuple[str, ...]
    y: np.ndarray | None
    source: str
    label_name: str | None = None
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(self.ids))
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        X = read_only(np.asarray(self.X, dtype=np.float64))
        n_rows = len(self.ids)
        if X.ndim != 2 or X.shape != (n_rows, len(self.feature_names)):
            raise data_error(
                "",
                self.source,
                f"X has shape {X.shape} but there are {n_rows} ids and "
                f"{len(self.feature_names)} feature names; build X as (rows, features)",
            )
        object.__setattr__(self, "X", X)
        if self.y is not None:
            y = read_only(np.asarray(self.y, dtype=np.float64))
            if y.shape != (n_rows,):
                raise data_error(
                    "",
                    self.source,
                    f"y has shape {y.shape} but there are {n_rows} ids; pass one label per row",
                )
            object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        """Return the number of rows."""
        return len(self.ids)

    def select(self, indices: np.ndarray) -> Table:
        """Return the rows at ``indices``, in that order.

        Parameters
        ----------
        indices : numpy.ndarray
            Integer row positions (a boolean mask of length ``len(self)`` also works).

        Returns
        -------
        Table
            A new table with the same columns and source.
        """
        idx = np.asarray(indices)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.intp, copy=False)
        return self.take(idx, self.X[idx])

    def id_at(self, row: int) -> str:
        """The id of row ``row``."""
        return self.ids[row]

    def ids_at(self, rows: np.ndarray) -> tuple[str, ...]:
        """The ids of ``rows``, in that order."""
        return tuple(self.ids[i] for i in np.asarray(rows, dtype=np.intp).tolist())

    def index_of(self) -> dict[str, int]:
        """Return a mapping from each id to its row position."""
        return {row_id: i for i, row_id in enumerate(self.ids)}


def read_only(array: np.ndarray) -> np.ndarray:
    """Return a read-only view of ``array`` (the caller's array stays writable)."""
    view = array.view()
    view.flags.writeable = False
    return view
