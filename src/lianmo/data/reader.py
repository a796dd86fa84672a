"""Read a party's table file in chunks of rows: CSV (gzip if ``.gz``) or Parquet.

Nothing here holds a whole file: :func:`iter_chunks` yields a bounded number of rows at a
time, each chunk checked cell by cell (widths, empty ids, numbers that are finite), so
a table larger than memory can be scanned. Errors name the party, the file, the column
and the 1-based data row (and, for CSV, the line); their public form (what a coordinator
may read, :meth:`lianmo.errors.DataError.public_text`) names the column and row only,
never the file, an id or a cell's value.

A file whose name ends in ``.parquet`` or ``.pq`` is read with pyarrow; any other name is
read as CSV. In Parquet, ids may be strings or integers; features and labels must be
numeric (integer, floating point or boolean) columns without nulls. The formats'
specifics are in :mod:`~lianmo.data.csv_reader` and :mod:`~lianmo.data.parquet_reader`,
the checks on cells and the errors that name them in :mod:`~lianmo.data.cells`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from lianmo.data.cells import Chunk, check_header, data_error, where
from lianmo.data.csv_reader import csv_chunks, csv_header
from lianmo.data.parquet_reader import parquet_chunks, parquet_file

__all__ = [
    "Chunk",
    "PARQUET_SUFFIXES",
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
) -> Iterator[Chunk]:
    """Yield the file's data rows in chunks: ids and the ``numeric`` columns as float64.

    Parameters
    ----------
    source : str
        The file (see the module docstring for the formats).
    header : sequence of str
        Its columns, as :func:`read_header` returned them.
    id_index : int
        Position of the id column.
    numeric : sequence of int
        Positions of the columns to parse as numbers, in the order wanted.
    party : str
        Party name, for error messages.
    chunk_rows : int, optional
        Rows per chunk (default: :func:`chunk_rows_for` the header's width).

    Raises
    ------
    DataError
        If the file cannot be read, has no data rows, or a row or cell is unusable.
    """
    rows = chunk_rows or chunk_rows_for(len(header))
    chunks = (
        parquet_chunks(source, header, id_index, numeric, party, rows)
        if _is_parquet(source)
        else csv_chunks(source, header, id_index, numeric, party, rows)
    )
    empty = True
    for chunk in chunks:
        empty = False
        yield chunk
    if empty:
        raise data_error(
            party, source, "the file has a header but no data rows; add the party's rows"
        )


def _is_parquet(source: str) -> bool:
    return source.lower().endswith(PARQUET_SUFFIXES)
