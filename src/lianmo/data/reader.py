"""Read a party's table file in chunks of rows: CSV (gzip if ``.gz``) or Parquet.

Nothing here holds a whole file: :func:`iter_chunks` yields a bounded number of rows at a
time, each chunk checked cell by cell (widths, empty ids, numbers that are finite,
missing cells, categories: :mod:`~lianmo.data.convert`), so a table larger than memory
can be scanned. CSV is read by pyarrow's streaming reader; a pass that meets any problem
is run again over Python's :mod:`csv` reader (:func:`checked_pass`), whose errors name
the row and line. Errors name the party, the file, the column
and the 1-based data row (and, for CSV, the line); their public form (what a coordinator
may read, :meth:`lianmo.errors.DataError.public_text`) names the column and row only,
never the file, an id or a cell's value.

A file whose name ends in ``.parquet`` or ``.pq`` is read with pyarrow; any other name is
read as CSV. The formats' specifics are in :mod:`~lianmo.data.csv_reader` and
:mod:`~lianmo.data.parquet_reader`, the checks on cells in :mod:`~lianmo.data.convert`
and the errors that name them in :mod:`~lianmo.data.cells`.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable, Iterator, Sequence

from lianmo.data.cells import Chunk, check_header, data_error, where
from lianmo.data.convert import ChunkPlan, ColumnRead
from lianmo.data.csv_reader import FastPathFailed, csv_chunks, csv_header, fast_csv_chunks
from lianmo.data.parquet_reader import parquet_chunks, parquet_file
from lianmo.errors import DataError

T = t.TypeVar("T")

__all__ = [
    "Chunk",
    "PARQUET_SUFFIXES",
    "checked_pass",
    "chunk_rows_for",
    "data_error",
    "iter_chunks",
    "read_header",
    "where",
]

PARQUET_SUFFIXES = (".parquet", ".pq")
#: cells held per chunk (about 50 MB of CSV cell strings); rows per chunk follow from it
CHUNK_CELLS = 1 << 20


def chunk_rows_for(n_columns: int) -> int:
    """Rows per chunk for a table of ``n_columns`` columns."""
    return max(256, CHUNK_CELLS // max(1, n_columns))


def read_header(source: str, party: str) -> list[str]:
    """The file's column names, stripped, checked to be non-empty and distinct."""
    if _is_parquet(source):
        header = list(parquet_file(source, party).schema_arrow.names)
    else:
        header = csv_header(source, party)
    header = [name.strip() for name in header]
    check_header(header, source, party)
    return header


def iter_chunks(
    source: str,
    header: Sequence[str],
    *,
    id_index: int,
    numeric: Sequence[int],
    party: str,
    chunk_rows: int | None = None,
    reads: Sequence[ColumnRead] | None = None,
    missing_values: Sequence[str] = (),
    fast: bool = False,
) -> Iterator[Chunk]:
    """Yield the file's data rows in chunks: ids, and the ``numeric`` columns as float64.

    Parameters
    ----------
    source : str
        The file (see the module docstring for the formats).
    header : sequence of str
        Its columns, as :func:`read_header` returned them.
    id_index : int
        Position of the id column.
    numeric : sequence of int
        Positions of the columns to read, in the order wanted.
    party : str
        Party name, for error messages.
    chunk_rows : int, optional
        Rows per chunk (default: :func:`chunk_rows_for` the header's width); with
        ``fast``, pyarrow's blocks hold about as many.
    reads : sequence of ColumnRead, optional
        How each of the ``numeric`` columns is read (default: a number, never missing).
    missing_values : sequence of str, optional
        Cell texts read as missing in feature columns (default: none).
    fast : bool, optional
        Read CSV with pyarrow (rows then carry no line, and a problem may raise
        :class:`~lianmo.data.csv_reader.FastPathFailed`): see :func:`checked_pass`.

    Raises
    ------
    DataError
        If the file cannot be read, has no data rows, or a row or cell is unusable.
    """
    rows = chunk_rows or chunk_rows_for(len(header))
    plan = ChunkPlan(
        header[id_index],
        tuple(reads) if reads is not None else tuple(ColumnRead(header[i]) for i in numeric),
        tuple(missing_values),
    )
    read = parquet_chunks if _is_parquet(source) else fast_csv_chunks if fast else csv_chunks
    empty = True
    for chunk in read(source, header, id_index, numeric, plan, party, rows):
        empty = False
        yield chunk
    if empty:
        raise data_error(
            party, source, "the file has a header but no data rows; add the party's rows"
        )


def checked_pass(source: str, run: Callable[[bool], T]) -> T:
    """``run(fast)``: a whole pass over ``source``, fast first for CSV.

    A CSV pass runs first on pyarrow's reader (``fast=True``); if it raises a DataError
    or :class:`~lianmo.data.csv_reader.FastPathFailed`, it runs again on Python's
    reader, which raises the same error naming the row and line (or, where pyarrow
    merely reads differently, returns the result). ``run`` must start afresh each time.
    """
    if _is_parquet(source):
        return run(False)
    try:
        return run(True)
    except (DataError, FastPathFailed):
        return run(False)


def _is_parquet(source: str) -> bool:
    return source.lower().endswith(PARQUET_SUFFIXES)
