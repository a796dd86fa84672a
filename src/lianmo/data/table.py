"""Load and validate one party's table of ids, numeric features and optional labels."""

from __future__ import annotations

import csv
import difflib
import gzip
import os
import typing as t
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lianmo.config import BOOST_OBJECTIVES
from lianmo.errors import ConfigError, DataError

__all__ = [
    "MAX_CLASSES",
    "TASKS",
    "Table",
    "check_binary_labels",
    "check_labels",
    "load_checked",
    "load_table",
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
            raise DataError(
                f"{_where('', self.source)}: X has shape {X.shape} but there are {n_rows} ids "
                f"and {len(self.feature_names)} feature names; build X as (rows, features)"
            )
        object.__setattr__(self, "X", X)
        if self.y is not None:
            y = _read_only(np.asarray(self.y, dtype=np.float64))
            if y.shape != (n_rows,):
                raise DataError(
                    f"{_where('', self.source)}: y has shape {y.shape} but there are "
                    f"{n_rows} ids; pass one label per row"
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
    """Read a party's ``.csv`` or ``.csv.gz`` file and check every cell.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a name ending in ``.gz`` is read as gzip.
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
    source = os.fspath(path)
    header, rows, lines = _read_rows(source, party)
    id_index = _find_column(header, id_column, "id", source, party)
    label_index = None
    if label_column is not None:
        label_index = _find_column(header, label_column, "label", source, party)
        if label_index == id_index:
            raise DataError(
                f"{_where(party, source, column=id_column)}: named as both the id and the "
                f"label column; set the label column to the column holding the labels"
            )
    feature_indices = _feature_indices(
        header, id_index, label_index, feature_columns, source, party
    )
    _check_widths(header, rows, lines, source, party)
    ids = _parse_ids(rows, lines, id_index, id_column, source, party)
    numeric = feature_indices + ([] if label_index is None else [label_index])
    values = _parse_numeric(rows, lines, numeric, header, source, party)
    n_features = len(feature_indices)
    return Table(
        ids=ids,
        X=values[:, :n_features],
        feature_names=tuple(header[i] for i in feature_indices),
        y=None if label_index is None else values[:, n_features],
        source=source,
        label_name=label_column,
    )


def load_checked(
    path: str | os.PathLike[str],
    *,
    id_column: str,
    label_column: str | None = None,
    task: str | None = None,
    party: str = "",
    feature_columns: Sequence[str] | None = None,
) -> Table:
    """Load a party's table and check its labels suit ``task``: the one validation.

    A party node calls this when a job loads its data set and ``lianmo data check``
    calls it on a file before any job, so both accept and refuse the same tables with
    the same messages.

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
    Table
        The parsed table, rows in file order.

    Raises
    ------
    DataError
        If a cell, column or id is unusable (see :func:`load_table`) or a label does not
        suit ``task``; the message names the party, file, column and data row.
    ConfigError
        If ``task`` is not one of :data:`TASKS`.
    """
    table = load_table(
        path,
        id_column=id_column,
        label_column=label_column,
        party=party,
        feature_columns=feature_columns,
    )
    if task is not None and table.y is not None:
        check_labels(table, task, party=party)
    return table


def check_labels(table: Table, task: str, *, party: str = "") -> None:
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
        raise DataError(
            f"{_where(party, table.source)}: no label column was loaded; load the label "
            f"holder's file with label_column set"
        )
    elif task == "multiclass":
        _check_multiclass_labels(table, table.y, party)


def check_binary_labels(table: Table, party: str = "") -> None:
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
    where = _where(party, table.source)
    if table.y is None:
        raise DataError(
            f"{where}: no label column was loaded; load the label holder's file with "
            f"label_column set"
        )
    bad = np.flatnonzero((table.y != 0.0) & (table.y != 1.0))
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"{_where(party, table.source, column=table.label_name, row=row + 1)} "
            f"(id '{table.ids[row]}'): label is {table.y[row]:g} but binary classification "
            f"expects 0 or 1; recode the labels"
        )
    n_positive = int(table.y.sum())
    if n_positive in (0, len(table)):
        only = 1 if n_positive else 0
        raise DataError(
            f"{_where(party, table.source, column=table.label_name)}: every one of the "
            f"{len(table)} labels is {only}; a binary model needs rows of both classes 0 and 1"
        )


def _check_multiclass_labels(table: Table, y: np.ndarray, party: str) -> None:
    """Refuse a label that is not an integer ``0 .. MAX_CLASSES - 1``, or a single class."""
    bad = np.flatnonzero(~np.isin(y, np.arange(MAX_CLASSES)))
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"{_where(party, table.source, column=table.label_name, row=row + 1)} "
            f"(id '{table.ids[row]}'): label is {y[row]:g} but multiclass classification "
            f"expects a class number 0, 1, ..., K-1 (at most {MAX_CLASSES - 1}); recode "
            f"the labels"
        )
    classes = np.unique(y)
    if len(classes) < 2:
        raise DataError(
            f"{_where(party, table.source, column=table.label_name)}: every one of the "
            f"{len(table)} labels is {classes[0]:g}; a multiclass model needs rows of at "
            f"least two classes"
        )


def _where(party: str, source: str, column: str | None = None, row: int | None = None) -> str:
    """Build the location prefix of an error message."""
    parts = [f"party '{party}'"] if party else []
    parts.append(f"file '{source}'")
    if column is not None:
        parts.append(f"column '{column}'")
    if row is not None:
        parts.append(f"data row {row}")
    return ", ".join(parts)


def _read_only(array: np.ndarray) -> np.ndarray:
    """Return a read-only view of ``array`` (the caller's array stays writable)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _open_text(source: str) -> t.TextIO:
    """Open ``source`` as UTF-8 text, through gzip when the name ends in ``.gz``."""
    if source.endswith(".gz"):
        return gzip.open(source, "rt", encoding="utf-8-sig", newline="")
    return open(source, encoding="utf-8-sig", newline="")


def _read_rows(source: str, party: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Return the stripped header, the non-blank data rows and each row's line number."""
    where = _where(party, source)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with _open_text(source) as handle:
            reader = csv.reader(handle)
            header = next((row for row in reader if row), None)
            for row in reader:
                if row:
                    rows.append(row)
                    lines.append(reader.line_num)
    except FileNotFoundError:
        raise DataError(f"{where}: file not found; check the path in the party config") from None
    except (OSError, UnicodeDecodeError, EOFError, csv.Error) as exc:
        raise DataError(
            f"{where}: cannot read the file ({exc}); expected a UTF-8 CSV file, gzip-compressed "
            f"if its name ends in .gz"
        ) from exc
    if not header:
        raise DataError(f"{where}: the file is empty; expected a header line naming the columns")
    if not rows:
        raise DataError(f"{where}: the file has a header but no data rows; add the party's rows")
    header = [name.strip() for name in header]
    _check_header(header, source, party)
    return header, rows, lines


def _check_header(header: list[str], source: str, party: str) -> None:
    """Reject empty or repeated column names."""
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if not name:
            raise DataError(
                f"{_where(party, source)}: header column {position} has no name; name every "
                f"column in the first line"
            )
        if name in seen:
            raise DataError(
                f"{_where(party, source, column=name)}: the header names this column twice "
                f"(columns {seen[name]} and {position}); rename or drop one of them"
            )
        seen[name] = position


def _find_column(header: list[str], name: str, role: str, source: str, party: str) -> int:
    """Return the position of column ``name`` or explain which columns exist."""
    if name in header:
        return header.index(name)
    lowered = {column.lower(): column for column in header}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    hint = f" Did you mean '{lowered[close[0]]}'?" if close else ""
    raise DataError(
        f"{_where(party, source, column=name)}: {role} column not found; the file has "
        f"columns {', '.join(header)}.{hint} Set the {role} column to one of them."
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
        raise DataError(
            f"{_where(party, source)}: the required feature columns repeat a name "
            f"({', '.join(feature_columns)}); list each feature once"
        )
    indices = []
    for name in feature_columns:
        if name not in header:
            raise DataError(
                f"{_where(party, source, column=name)}: feature column required by the model "
                f"is missing; the file has columns {', '.join(header)}. Provide a file with "
                f"the training columns ({', '.join(feature_columns)})."
            )
        if header.index(name) in reserved:
            raise DataError(
                f"{_where(party, source, column=name)}: the id or label column cannot also be "
                f"a feature; remove it from the feature columns"
            )
        indices.append(header.index(name))
    return indices


def _check_widths(
    header: list[str], rows: list[list[str]], lines: list[int], source: str, party: str
) -> None:
    """Reject any row whose number of cells differs from the header's."""
    for number, (row, line) in enumerate(zip(rows, lines, strict=True), start=1):
        if len(row) != len(header):
            raise DataError(
                f"{_where(party, source, row=number)} (line {line}): the row has {len(row)} "
                f"cells but the header has {len(header)} columns; look for a missing value "
                f"or a stray comma (quote cells that contain commas)"
            )


def _parse_ids(
    rows: list[list[str]],
    lines: list[int],
    id_index: int,
    id_column: str,
    source: str,
    party: str,
) -> tuple[str, ...]:
    """Return the ids stripped of surrounding spaces, checking they are non-empty and unique."""
    first_row: dict[str, int] = {}
    for number, (row, line) in enumerate(zip(rows, lines, strict=True), start=1):
        row_id = row[id_index].strip()
        where = f"{_where(party, source, column=id_column, row=number)} (line {line})"
        if not row_id:
            raise DataError(
                f"{where}: the id is empty; every row needs an id to be aligned with the "
                f"other parties, so fill it in or drop the row"
            )
        if row_id in first_row:
            raise DataError(
                f"{where}: id '{row_id}' already appears in data row {first_row[row_id]}; "
                f"ids must be unique, so remove or merge the duplicate rows"
            )
        first_row[row_id] = number
    return tuple(first_row)


def _parse_numeric(
    rows: list[list[str]],
    lines: list[int],
    indices: list[int],
    header: list[str],
    source: str,
    party: str,
) -> np.ndarray:
    """Parse the cells of columns ``indices`` into a float64 matrix of finite numbers.

    The whole block is converted at once; only when that fails are the cells walked row
    by row to name the first bad one, so the common case stays fast.
    """
    block = [[row[i] for i in indices] for row in rows]
    try:
        values = np.array(block, dtype=np.float64).reshape(len(rows), len(indices))
    except ValueError:
        _raise_first_unparsable(block, lines, indices, header, source, party)
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        r, c = (int(v) for v in bad[0])
        raise DataError(
            f"{_where(party, source, column=header[indices[c]], row=r + 1)} (line {lines[r]}): "
            f"the cell is {block[r][c].strip()!r}, which is not a finite number; replace "
            f"missing or infinite values before loading (lianmo does not impute)"
        )
    return values


def _raise_first_unparsable(
    block: list[list[str]],
    lines: list[int],
    indices: list[int],
    header: list[str],
    source: str,
    party: str,
) -> t.NoReturn:
    """Raise a DataError naming the first cell of ``block`` that is not a number."""
    for r, cells in enumerate(block):
        for c, cell in enumerate(cells):
            try:
                float(cell)
            except ValueError:
                where = _where(party, source, column=header[indices[c]], row=r + 1)
                what = "the cell is empty" if not cell.strip() else f"the cell is {cell!r}"
                raise DataError(
                    f"{where} (line {lines[r]}): {what} but a number was expected; fix the "
                    f"cell, or drop the row or the column"
                ) from None
    raise DataError(f"{_where(party, source)}: numeric columns could not be parsed")
