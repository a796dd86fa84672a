"""Checks on a table's ids and labels: unique ids, labels that suit the task.

The cells themselves (present, numeric, finite) are checked as the file is read
(:mod:`lianmo.data.reader`); these checks need every row's id or label at once.
"""

from __future__ import annotations

import numpy as np

from lianmo.config import BOOST_OBJECTIVES
from lianmo.data.cells import data_error, where
from lianmo.data.rows import Rows
from lianmo.errors import ConfigError, DataError

__all__ = ["MAX_CLASSES", "TASKS", "check_binary_labels", "check_labels", "check_unique_ids"]

#: what a label column is for: SecureBoost's objectives (logistic regression is binary)
TASKS = BOOST_OBJECTIVES

#: multi-class labels are the integers ``0 .. MAX_CLASSES - 1``; the same bound as
#: ``lianmo.models.objectives.Objective.for_labels``, which checks the aligned rows again
MAX_CLASSES = 256

_NO_LABELS = "no label column was loaded; load the label holder's file with label_column set"


def check_unique_ids(
    ids: np.ndarray, lines: np.ndarray | None, column: str, source: str, party: str
) -> None:
    """Refuse a repeated id, naming its first repetition in file order and the original.

    Parameters
    ----------
    ids : numpy.ndarray
        Every row's id as UTF-8 bytes (numpy ``S`` dtype), in file order.
    lines : numpy.ndarray or None
        The file line of each row (CSV), or None (Parquet).
    column, source, party : str
        The id column, the file and the party, for the message.

    Raises
    ------
    DataError
        If an id repeats; the public form names the rows, not the id.
    """
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


def check_labels(table: Rows, task: str, *, party: str = "") -> None:
    """Check that the table's labels suit ``task``.

    - ``binary``: exactly 0 or 1, both present (:func:`check_binary_labels`).
    - ``multiclass``: the integers ``0 .. K-1`` with ``K <= MAX_CLASSES``, at least two
      distinct classes present.
    - ``regression``: any finite number (:func:`~lianmo.data.load.load_table` already
      refuses empty, NaN and infinite cells).

    Parameters
    ----------
    table : Table or TableScan
        Rows loaded with a label column.
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


def check_binary_labels(table: Rows, party: str = "") -> None:
    """Check that the labels are exactly 0 or 1 and that both classes occur.

    Parameters
    ----------
    table : Table or TableScan
        Rows loaded with a label column.
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


def _check_multiclass_labels(table: Rows, y: np.ndarray, party: str) -> None:
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


def _bad_label(table: Rows, party: str, row: int, value: str, expected: str) -> DataError:
    """A label that does not suit the task: the full message quotes its id and value."""
    at = where(party, table.source, column=table.label_name, row=row + 1)
    return DataError(
        f"{at} (id '{table.id_at(row)}'): {value} {expected}",
        party=party,
        column=table.label_name,
        row=row + 1,
        problem=f"the label does not suit the task: {expected}",
    )
