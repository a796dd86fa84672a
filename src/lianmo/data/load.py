"""Load a party's table: the one checked pass over a file, for a whole table or a scan.

:func:`scan_checked` checks a file of any size in chunks and keeps only ids and labels
(a :class:`~lianmo.data.scan.TableScan`, which reads chosen rows' features later);
:func:`load_table` runs the same pass and keeps the features too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from lianmo.config.party import DEFAULT_MISSING_VALUES
from lianmo.data.coding import CellRules, Coder
from lianmo.data.columns import check_categorical, find_columns
from lianmo.data.convert import ColumnRead
from lianmo.data.reader import checked_pass, iter_chunks, read_header
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
    categorical: Sequence[str] = (),
    missing_values: Sequence[str] = DEFAULT_MISSING_VALUES,
    categories: Mapping[str, Sequence[str]] | None = None,
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
    categorical : sequence of str, optional
        Feature columns read as categories: column ``j`` of ``X`` then holds codes ``k``
        for ``categories[name][k]``, the sorted distinct texts (stripped) of the column,
        at most :data:`~lianmo.data.coding.MAX_CATEGORIES`.
    missing_values : sequence of str, optional
        Cell texts (stripped) read as missing (NaN) in feature columns; default
        :data:`~lianmo.config.party.DEFAULT_MISSING_VALUES`; empty: a missing cell is an
        error. Ids and labels are never missing.
    categories : mapping of str to sequence of str, optional
        Known vocabularies (a model share's, for scoring): their texts keep their codes
        and new texts are appended after them, sorted; their columns are categorical.

    Returns
    -------
    Table
        The parsed table, rows in file order.

    Raises
    ------
    DataError
        If the file cannot be read, is empty or has no data rows; a named column is
        missing; an id is empty or repeated; a row has the wrong number of cells; a label
        cell is empty, not a number, NaN or infinite; a feature cell is text in a column
        not declared categorical, infinite, or missing where missing cells are refused;
        or a categorical column has too many distinct values. The message names the
        party, the file, the column and the 1-based data row.
    """
    rules = CellRules.of(categorical, missing_values, categories)
    source = os.fspath(path)
    scan, X = checked_pass(
        source,
        lambda fast: _checked_pass(
            source, id_column, label_column, party, feature_columns, rules, True, fast
        ),
    )
    return scan.take(np.arange(len(scan)), X)


def scan_checked(
    path: str | os.PathLike[str],
    *,
    id_column: str,
    label_column: str | None = None,
    task: str | None = None,
    party: str = "",
    feature_columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    missing_values: Sequence[str] = DEFAULT_MISSING_VALUES,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> TableScan:
    """Check every cell of a party's table in one pass, keeping only ids and labels.

    The one validation: a party node calls this when a job loads its data set and
    ``lianmo data check`` calls it on a file before any job, so both accept and refuse
    the same tables with the same messages. The file is read in chunks, so its size is
    not bounded by memory; what is kept is about ``id length + 8`` bytes per row.

    Parameters
    ----------
    path, id_column, label_column, party, feature_columns, categorical, missing_values, categories
        As for :func:`load_table`. The scan keeps these read options and the
        vocabularies it found, so its later passes code every cell the same way.
    task : str, optional
        One of :data:`~lianmo.data.validate.TASKS`. When given and the table has a label
        column, the labels are checked with :func:`~lianmo.data.validate.check_labels`;
        when None (prediction, or a party without labels) only the cells are checked.

    Returns
    -------
    TableScan
        Ids, labels and categorical vocabularies (``categories``) in file order;
        :meth:`TableScan.read_rows` reads features later.

    Raises
    ------
    DataError
        If a cell, column or id is unusable (see :func:`load_table`) or a label does not
        suit ``task``; the message names the party, file, column and data row.
    ConfigError
        If ``task`` is not one of :data:`~lianmo.data.validate.TASKS`.
    """
    rules = CellRules.of(categorical, missing_values, categories)
    source = os.fspath(path)
    scan, _ = checked_pass(
        source,
        lambda fast: _checked_pass(
            source, id_column, label_column, party, feature_columns, rules, False, fast
        ),
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
    rules: CellRules,
    keep_features: bool,
    fast: bool,
) -> tuple[TableScan, np.ndarray]:
    """Check every cell of ``source`` chunk by chunk; keep ids, labels and maybe features.

    Returns the scan and, if ``keep_features``, the features, categorical columns in
    their final codes (else no rows of features).
    """
    header = read_header(source, party)
    columns = find_columns(header, id_column, label_column, feature_columns, source, party)
    check_categorical(header, columns, rules.categorical, source, party)
    names = [header[i] for i in columns.features]
    coders = {
        name: Coder(name, rules.categories.get(name, ()))
        for name in names
        if rules.is_categorical(name)
    }
    reads = [ColumnRead(name, coder=coders.get(name)) for name in names]
    if label_column is not None:
        reads.append(ColumnRead(label_column, label=True))
    n_features = len(names)
    ids: list[np.ndarray] = []
    lines: list[np.ndarray] = []
    X: list[np.ndarray] = []
    y: list[np.ndarray] = []
    chunks = iter_chunks(
        source,
        header,
        id_index=columns.id,
        numeric=columns.numeric,
        party=party,
        reads=reads,
        missing_values=rules.missing_values,
        fast=fast,
    )
    for chunk in chunks:
        ids.append(chunk.ids)
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
        feature_names=tuple(names),
        ids=read_only(all_ids),
        y=read_only(np.concatenate(y)) if y else None,
        categories={name: coder.categories() for name, coder in coders.items()},
        missing_values=rules.missing_values,
    )
    if not keep_features:
        return scan, np.empty((0, n_features))
    features = np.concatenate(X)
    for j, name in enumerate(names):
        if name in coders:
            codes = features[:, j]
            known = ~np.isnan(codes)
            codes[known] = coders[name].final_codes()[codes[known].astype(np.intp)]
    return scan, features
