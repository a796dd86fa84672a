"""Load and validate one party's table of ids, numeric features and optional labels.

:func:`scan_checked` checks a file of any size in chunks and keeps only ids and labels;
:meth:`TableScan.read_rows` then reads the features of the rows a job uses (the aligned
ones) and :meth:`TableScan.map_rows` scores rows chunk by chunk. :func:`load_table`
reads a whole (small) file at once.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lianmo.config import BOOST_OBJECTIVES
from lianmo.data.reader import data_error, iter_chunks, read_header, where
from lianmo.errors import ConfigError, DataError

__all__ = [
    "MAX_CLASSES",
    "TASKS",
    "Table",
    "TableScan",
    "check_binary_labels",
    "check_labels",
    "load_table",
    "scan_checked",
]

#: what a label column is for: SecureBoost's objectives (logistic regression is binary)
TASKS = BOOST_OBJECTIVES

#: multi-class labels are the integers ``0 .. MAX_CLASSES - 1``; the same bound as
#: ``lianmo.models.objectives.Objective.for_labels``, which checks the aligned rows again
MAX_CLASSES = 256


@dataclass(frozen=True, slots=True, eq=False)
class Table:
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(self.ids))
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        X = _read_only(np.asarray(self.X, dtype=np.float64))
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
            y = _read_only(np.asarray(self.y, dtype=np.float64))
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
        y = None if self.y is None else self.y[idx]
        return Table(
            ids=tuple(self.ids[i] for i in idx.tolist()),
            X=self.X[idx],
            feature_names=self.feature_names,
            y=y,
            source=self.source,
            label_name=self.label_name,
        )

    def id_at(self, row: int) -> str:
        """The id of row ``row``."""
        return self.ids[row]

    def index_of(self) -> dict[str, int]:
        """Return a mapping from each id to its row position."""
        return {row_id: i for i, row_id in enumerate(self.ids)}


def load_table(
    path: str | os.PathLike[str],
    *,
    id_column: str,
    label_column: str | None = None,
    party: str = "",
    feature_columns: Sequence[str] | None = None,
) -> Table:
    """Read a party's whole table file (CSV, gzip CSV or Parquet) and check every cell.

    For files larger than memory use :func:`scan_checked`, which keeps ids and labels
    only and reads the features of chosen rows later.

    Parameters
    ----------
    path : str or os.PathLike
        The file: Parquet if the name ends in ``.parquet`` or ``.pq``, otherwise CSV,
        read through gzip if the name ends in ``.gz`` (see :mod:`lianmo.data.reader`).
    id_column : str
        Column holding the join key. Ids are stripped of surrounding spaces and must be
        non-empty and unique.
    label_column : str, optional
        Column holding the labels (only the label holder has one).
    party : str, optional
        Party name, used in error messages.
    feature_columns : sequence of str, optional
        Require exactly these features, in this order (e.g. the training schema at
        prediction time); other columns are ignored. By default every column that is
        neither the id nor the label is a feature, in file order.

    Returns
    -------
    Table
        The parsed table, rows in file order.

    Raises
    ------
    DataError
        If the file cannot be read, is empty or has no data rows; a named column is
        missing; an id is empty or repeated; a row has the wrong number of cells; or a
        feature or label cell is empty, not a number, NaN or infinite. The message names
        the party, the file, the column and the 1-based data row.
    """
    return _read(
        os.fspath(path), id_column, label_column, party, feature_columns, keep_features=True
    ).table()


def scan_checked(
    path: str | os.PathLike[str],
    *,
    id_column: str,
    label_column: str | None = None,
    task: str | None = None,
    party: str = "",
    feature_columns: Sequence[str] | None = None,
) -> TableScan:
    """Check every cell of a party's table in one pass, keeping only ids and labels.

    The one validation: a party node calls this when a job loads its data set and
    ``lianmo data check`` calls it on a file before any job, so both accept and refuse
    the same tables with the same messages. The file is read in chunks, so its size is
    not bounded by memory; what is kept is about ``id length + 8`` bytes per row.

    Parameters
    ----------
    path, id_column, label_column, party, feature_columns
        As for :func:`load_table`.
    task : str, optional
        One of :data:`TASKS`. When given and the table has a label column, the labels
        are checked with :func:`check_labels`; when None (prediction, or a party without
        labels) only the cells are checked.

    Returns
    -------
    TableScan
        Ids and labels in file order; :meth:`TableScan.read_rows` reads features later.

    Raises
    ------
    DataError
        If a cell, column or id is unusable (see :func:`load_table`) or a label does not
        suit ``task``; the message names the party, file, column and data row.
    ConfigError
        If ``task`` is not one of :data:`TASKS`.
    """
    scan = _read(
        os.fspath(path), id_column, label_column, party, feature_columns, keep_features=False
    ).scan()
    if task is not None and scan.y is not None:
        check_labels(scan, task, party=party)
    return scan


@dataclass(frozen=True, slots=True, eq=False)
class TableScan:
    """A checked table file's ids and labels, without its features (read on demand).

    Attributes
    ----------
    source : str
        The file.
    party : str
        Party name, used in error messages.
    id_column : str
        The id column's name.
    label_name : str or None
        The label column's name, if the labels were loaded.
    feature_names : tuple of str
        The feature columns, in the order :meth:`read_rows` returns them.
    ids : numpy.ndarray
        The ids as UTF-8 bytes (numpy ``S`` dtype, read-only), in file order: a tenth of
        the memory of Python strings. Byte order sorts as the strings do.
    y : numpy.ndarray or None
        Float64 labels (read-only), or None.
    """

    source: str
    party: str
    id_column: str
    label_name: str | None
    feature_names: tuple[str, ...]
    ids: np.ndarray
    y: np.ndarray | None

    def __len__(self) -> int:
        """Return the number of rows."""
        return len(self.ids)

    def id_at(self, row: int) -> str:
        """The id of row ``row``."""
        return bytes(self.ids[row]).decode("utf-8")

    def ids_at(self, rows: np.ndarray) -> tuple[str, ...]:
        """The ids of ``rows``, in that order, as strings."""
        return tuple(v.decode("utf-8") for v in self.ids[np.asarray(rows, dtype=np.intp)].tolist())

    def read_rows(self, rows: np.ndarray) -> Table:
        """Read the features of ``rows`` (file positions), in that order, in one pass.

        Only those rows' features are kept, so this needs memory for the selected rows
        alone. The file is read again, so it is checked against this scan: a row whose
        id changed since means the file changed under the job.

        Raises
        ------
        DataError
            If the file changed since the scan, or a cell is now unusable.
        """
        idx = np.asarray(rows, dtype=np.intp)
        n_features = len(self.feature_names)
        X = np.empty((len(idx), n_features), dtype=np.float64)

        def keep(values: np.ndarray, dest: np.ndarray) -> None:
            X[dest] = values

        self._pass(idx, keep)
        return Table(
            ids=self.ids_at(idx),
            X=X,
            feature_names=self.feature_names,
            y=None if self.y is None else self.y[idx],
            source=self.source,
            label_name=self.label_name,
        )

    def spill_rows(self, rows: np.ndarray, path: Path) -> np.ndarray:
        """The features of ``rows``, in that order, in a float64 file at ``path`` (one pass).

        For scoring a table larger than memory with a model that takes the rows in order,
        block by block (SecureBoost's routing): returns a read-only memory map of shape
        ``(len(rows), n_features)``, so only the pages in use are in memory. The caller
        deletes the file. Checked against the scan as :meth:`read_rows` is.
        """
        idx = np.asarray(rows, dtype=np.intp)
        shape = (len(idx), len(self.feature_names))
        if 0 in shape:
            return np.zeros(shape, dtype=np.float64)
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)  # raw features: for this party's eyes (and process) only
        out = np.memmap(path, dtype=np.float64, mode="w+", shape=shape)

        def put(values: np.ndarray, dest: np.ndarray) -> None:
            out[dest] = values

        try:
            self._pass(idx, put)
            out.flush()
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return np.memmap(path, dtype=np.float64, mode="r", shape=shape)

    def map_rows(self, rows: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``fn`` of the features of ``rows``, chunk by chunk, one value per row in order.

        For scoring a table larger than memory: ``fn`` maps a ``(k, n_features)`` block of
        features to ``k`` numbers (e.g. a model's partial scores); only those numbers are
        kept.
        """
        idx = np.asarray(rows, dtype=np.intp)
        out = np.empty(len(idx), dtype=np.float64)

        def apply(values: np.ndarray, dest: np.ndarray) -> None:
            out[dest] = fn(values)

        self._pass(idx, apply)
        return out

    def _pass(self, idx: np.ndarray, use: Callable[[np.ndarray, np.ndarray], None]) -> None:
        """Read the file once; hand ``use`` each chunk's selected features and their slots."""
        header = read_header(self.source, self.party)
        id_index = _find_column(header, self.id_column, "id", self.source, self.party)
        features = [
            _find_column(header, name, "feature", self.source, self.party)
            for name in self.feature_names
        ]
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        seen = 0
        for chunk in iter_chunks(
            self.source, header, id_index=id_index, numeric=features, party=self.party
        ):
            stop = chunk.start + len(chunk.ids)
            lo, hi = np.searchsorted(ordered, [chunk.start, stop])
            local = ordered[lo:hi] - chunk.start
            if any(
                chunk.ids[i].encode("utf-8") != bytes(self.ids[chunk.start + i])
                for i in local.tolist()
            ):
                raise self._changed()
            if hi > lo:
                use(chunk.values[local], order[lo:hi])
            seen = stop
        if seen != len(self.ids):
            raise self._changed()

    def _changed(self) -> DataError:
        return data_error(
            self.party,
            self.source,
            "the file changed while the job was reading it (its rows differ from the first "
            "pass); do not replace a data set's file while a job uses it, then run the job "
            "again",
        )


@dataclass(frozen=True, slots=True, eq=False)
class _Read:
    """What one checked pass over a file gives (see :func:`_read`)."""

    source: str
    party: str
    id_column: str
    label_name: str | None
    feature_names: tuple[str, ...]
    ids: np.ndarray
    X: np.ndarray | None
    y: np.ndarray | None

    def table(self) -> Table:
        assert self.X is not None
        return Table(
            ids=tuple(v.decode("utf-8") for v in self.ids.tolist()),
            X=self.X,
            feature_names=self.feature_names,
            y=self.y,
            source=self.source,
            label_name=self.label_name,
        )

    def scan(self) -> TableScan:
        return TableScan(
            source=self.source,
            party=self.party,
            id_column=self.id_column,
            label_name=self.label_name,
            feature_names=self.feature_names,
            ids=_read_only(self.ids),
            y=None if self.y is None else _read_only(self.y),
        )


def _read(
    source: str,
    id_column: str,
    label_column: str | None,
    party: str,
    feature_columns: Sequence[str] | None,
    *,
    keep_features: bool,
) -> _Read:
    """Check every cell of ``source`` chunk by chunk; keep ids, labels and maybe features."""
    header = read_header(source, party)
    id_index = _find_column(header, id_column, "id", source, party)
    label_index = None
    if label_column is not None:
        label_index = _find_column(header, label_column, "label", source, party)
        if label_index == id_index:
            raise data_error(
                party,
                source,
                "named as both the id and the label column; set the label column to the "
                "column holding the labels",
                column=id_column,
            )
    feature_indices = _feature_indices(
        header, id_index, label_index, feature_columns, source, party
    )
    numeric = feature_indices + ([] if label_index is None else [label_index])
    n_features = len(feature_indices)
    ids: list[np.ndarray] = []
    lines: list[np.ndarray] = []
    X: list[np.ndarray] = []
    y: list[np.ndarray] = []
    for chunk in iter_chunks(source, header, id_index=id_index, numeric=numeric, party=party):
        ids.append(np.array([v.encode("utf-8") for v in chunk.ids], dtype=np.bytes_))
        if chunk.lines is not None:
            lines.append(chunk.lines)
        if keep_features:
            X.append(chunk.values[:, :n_features])
        if label_index is not None:
            y.append(chunk.values[:, n_features].copy())
    all_ids = np.concatenate(ids)
    _check_unique(all_ids, np.concatenate(lines) if lines else None, id_column, source, party)
    return _Read(
        source=source,
        party=party,
        id_column=id_column,
        label_name=label_column,
        feature_names=tuple(header[i] for i in feature_indices),
        ids=all_ids,
        X=np.concatenate(X) if keep_features else None,
        y=np.concatenate(y) if y else None,
    )


def _check_unique(
    ids: np.ndarray, lines: np.ndarray | None, column: str, source: str, party: str
) -> None:
    """Refuse a repeated id, naming its first repetition in file order and the original."""
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    repeats = np.flatnonzero(ordered[1:] == ordered[:-1])
    if not repeats.size:
        return
    k = int(np.argmin(order[repeats + 1]))
    first, second = int(order[repeats[k]]), int(order[repeats[k] + 1])
    row_id = bytes(ids[second]).decode("utf-8")
    fix = "ids must be unique, so remove or merge the duplicate rows"
    raise data_error(
        party,
        source,
        f"the id already appears in data row {first + 1}; {fix}",
        column=column,
        row=second + 1,
        line=None if lines is None else int(lines[second]),
        private=f"id '{row_id}' already appears in data row {first + 1}; {fix}",
    )


def check_labels(table: Table | TableScan, task: str, *, party: str = "") -> None:
    """Check that the table's labels suit ``task``.

    - ``binary``: exactly 0 or 1, both present (:func:`check_binary_labels`).
    - ``multiclass``: the integers ``0 .. K-1`` with ``K <= MAX_CLASSES``, at least two
      distinct classes present.
    - ``regression``: any finite number (:func:`load_table` already refuses empty,
      NaN and infinite cells).

    Parameters
    ----------
    table : Table
        A table loaded with a label column.
    task : str
        One of :data:`TASKS`.
    party : str, optional
        Party name, used in error messages.

    Raises
    ------
    DataError
        If the table has no labels, a label does not suit ``task`` (the first such row,
        its id and value are named), or a classification task sees only one class.
    ConfigError
        If ``task`` is not one of :data:`TASKS`.
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {list(TASKS)}, got {task!r}")
    if task == "binary":
        check_binary_labels(table, party=party)
    elif table.y is None:
        raise data_error(party, table.source, _NO_LABELS)
    elif task == "multiclass":
        _check_multiclass_labels(table, table.y, party)


def check_binary_labels(table: Table | TableScan, party: str = "") -> None:
    """Check that the labels are exactly 0 or 1 and that both classes occur.

    Parameters
    ----------
    table : Table
        A table loaded with a label column.
    party : str, optional
        Party name, used in error messages.

    Raises
    ------
    DataError
        If the table has no labels, a label is neither 0 nor 1 (the first such row and
        value are named), or only one class is present.
    """
    if table.y is None:
        raise data_error(party, table.source, _NO_LABELS)
    bad = np.flatnonzero((table.y != 0.0) & (table.y != 1.0))
    if bad.size:
        row = int(bad[0])
        raise _bad_label(
            table,
            party,
            row,
            f"label is {table.y[row]:g} but",
            "binary classification expects 0 or 1; recode the labels",
        )
    n_positive = int(table.y.sum())
    if n_positive in (0, len(table)):
        only = 1 if n_positive else 0
        raise data_error(
            party,
            table.source,
            f"every one of the {len(table)} labels is {only}; a binary model needs rows of "
            "both classes 0 and 1",
            column=table.label_name,
        )


def _check_multiclass_labels(table: Table | TableScan, y: np.ndarray, party: str) -> None:
    """Refuse a label that is not an integer ``0 .. MAX_CLASSES - 1``, or a single class."""
    bad = np.flatnonzero(~np.isin(y, np.arange(MAX_CLASSES)))
    if bad.size:
        row = int(bad[0])
        raise _bad_label(
            table,
            party,
            row,
            f"label is {y[row]:g} but",
            "multiclass classification expects a class number 0, 1, ..., K-1 (at most "
            f"{MAX_CLASSES - 1}); recode the labels",
        )
    classes = np.unique(y)
    if len(classes) < 2:
        raise data_error(
            party,
            table.source,
            f"every one of the {len(table)} labels is the same class; a multiclass model "
            "needs rows of at least two classes",
            column=table.label_name,
            private=f"every one of the {len(table)} labels is {classes[0]:g}; a multiclass "
            "model needs rows of at least two classes",
        )


_NO_LABELS = "no label column was loaded; load the label holder's file with label_column set"


def _bad_label(
    table: Table | TableScan, party: str, row: int, value: str, expected: str
) -> DataError:
    """A label that does not suit the task: the full message quotes its id and value."""
    at = where(party, table.source, column=table.label_name, row=row + 1)
    return DataError(
        f"{at} (id '{table.id_at(row)}'): {value} {expected}",
        party=party,
        column=table.label_name,
        row=row + 1,
        problem=f"the label does not suit the task: {expected}",
    )


def _read_only(array: np.ndarray) -> np.ndarray:
    """Return a read-only view of ``array`` (the caller's array stays writable)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _find_column(header: list[str], name: str, role: str, source: str, party: str) -> int:
    """Return the position of column ``name`` or explain which columns exist."""
    if name in header:
        return header.index(name)
    lowered = {column.lower(): column for column in header}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    hint = f" Did you mean '{lowered[close[0]]}'?" if close else ""
    raise data_error(
        party,
        source,
        f"{role} column not found; the party's node log lists the file's columns. Set the "
        f"{role} column to one of them.",
        column=name,
        private=f"{role} column not found; the file has columns {', '.join(header)}.{hint} "
        f"Set the {role} column to one of them.",
    )


def _feature_indices(
    header: list[str],
    id_index: int,
    label_index: int | None,
    feature_columns: Sequence[str] | None,
    source: str,
    party: str,
) -> list[int]:
    """Return the feature column positions: the required ones, or all the others."""
    reserved = {id_index} if label_index is None else {id_index, label_index}
    if feature_columns is None:
        return [i for i in range(len(header)) if i not in reserved]
    if len(set(feature_columns)) != len(feature_columns):
        raise data_error(
            party,
            source,
            "the required feature columns repeat a name; list each feature once",
            private=f"the required feature columns repeat a name ({', '.join(feature_columns)}); "
            "list each feature once",
        )
    indices = []
    for name in feature_columns:
        if name not in header:
            raise data_error(
                party,
                source,
                "feature column required by the model is missing; provide a file with the "
                "training columns (the party's node log lists them)",
                column=name,
                private=f"feature column required by the model is missing; the file has "
                f"columns {', '.join(header)}. Provide a file with the training columns "
                f"({', '.join(feature_columns)}).",
            )
        if header.index(name) in reserved:
            raise data_error(
                party,
                source,
                "the id or label column cannot also be a feature; remove it from the "
                "feature columns",
                column=name,
            )
        indices.append(header.index(name))
    return indices
