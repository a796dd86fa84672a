"""Load a party's table: the one checked pass over a file, for a whole table or a scan.

:func:`scan_checked` checks a file of any size in chunks and keeps only ids and labels
(a :class:`~lianmo.data.scan.TableScan`, which reads chosen rows' features later);
:func:`load_table` runs the same pass and keeps the features too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from lianmo.data.columns import find_columns
from lianmo.data.reader import iter_chunks, read_header
from lianmo.data.rows import Table, read_only
from lianmo.data.scan import TableScan
from lianmo.data.validate import check_labels, check_unique_ids

__all__ = ["load_table", "scan_checked"]


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
    scan, features = _checked_pass(
        os.fspath(path), id_column, label_column, party, feature_columns, keep_features=True
    )
    return scan.take(np.arange(len(scan)), np.concatenate(features))


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
        One of :data:`~lianmo.data.validate.TASKS`. When given and the table has a label
        column, the labels are checked with :func:`~lianmo.data.validate.check_labels`;
        when None (prediction, or a party without labels) only the cells are checked.

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
        If ``task`` is not one of :data:`~lianmo.data.validate.TASKS`.
    """
    scan, _ = _checked_pass(
        os.fspath(path), id_column, label_column, party, feature_columns, keep_features=False
    )
    if task is not None and scan.y is not None:
        check_labels(scan, task, party=party)
    return scan


def _checked_pass(
    source: str,
    id_column: str,
    label_column: str | None,
    party: str,
    feature_columns: Sequence[str] | None,
    *,
    keep_features: bool,
) -> tuple[TableScan, list[np.ndarray]]:
    """Check every cell of ``source`` chunk by chunk; keep ids, labels and maybe features.

    Returns the scan and, if ``keep_features``, each chunk's features (else no blocks).
    """
    header = read_header(source, party)
    columns = find_columns(header, id_column, label_column, feature_columns, source, party)
    n_features = len(columns.features)
    ids: list[np.ndarray] = []
    lines: list[np.ndarray] = []
    X: list[np.ndarray] = []
    y: list[np.ndarray] = []
    chunks = iter_chunks(source, header, id_index=columns.id, numeric=columns.numeric, party=party)
    for chunk in chunks:
        ids.append(np.array([v.encode("utf-8") for v in chunk.ids], dtype=np.bytes_))
        if chunk.lines is not None:
            lines.append(chunk.lines)
        if keep_features:
            X.append(chunk.values[:, :n_features])
        if columns.label is not None:
            y.append(chunk.values[:, n_features].copy())
    all_ids = np.concatenate(ids)
    check_unique_ids(all_ids, np.concatenate(lines) if lines else None, id_column, source, party)
    scan = TableScan(
        source=source,
        party=party,
        id_column=id_column,
        label_name=label_column,
        feature_names=tuple(header[i] for i in columns.features),
        ids=read_only(all_ids),
        y=read_only(np.concatenate(y)) if y else None,
    )
    return scan, X
