"""Read a party's table file in chunks of rows: CSV (gzip if ``.gz``) or Parquet.

Nothing here holds a whole file: :func:`iter_chunks` yields a bounded number of rows at a
time, each chunk checked cell by cell (widths, empty ids, numbers that are finite), so
a table larger than memory can be scanned. Errors name the party, the file, the column
and the 1-based data row (and, for CSV, the line); their public form (what a coordinator
may read, :meth:`lianmo.errors.DataError.public_text`) names the column and row only,
never the file, an id or a cell's value.

A file whose name ends in ``.parquet`` or ``.pq`` is read with pyarrow; any other name is
read as CSV. In Parquet, ids may be strings or integers; features and labels must be
numeric (integer, floating point or boolean) columns without nulls.
"""

from __future__ import annotations

import csv
import gzip
import typing as t
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from lianmo.errors import DataError

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


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive data rows of a file.

    Attributes
    ----------
    start : int
        0-based position of the chunk's first row among the file's data rows.
    ids : list of str
        The id of each row, stripped of surrounding spaces, non-empty.
    values : numpy.ndarray
        Float64 of shape ``(rows, len(numeric))``: the requested numeric columns, finite.
    lines : numpy.ndarray or None
        The CSV line number of each row (int64), or None for Parquet.
    """

    start: int
    ids: list[str]
    values: np.ndarray
    lines: np.ndarray | None


def where(party: str, source: str, column: str | None = None, row: int | None = None) -> str:
    """Build the location prefix of an error message."""
    parts = [f"party '{party}'"] if party else []
    parts.append(f"file '{source}'")
    if column is not None:
        parts.append(f"column '{column}'")
    if row is not None:
        parts.append(f"data row {row}")
    return ", ".join(parts)


def data_error(
    party: str,
    source: str,
    problem: str,
    *,
    column: str | None = None,
    row: int | None = None,
    line: int | None = None,
    private: str | None = None,
) -> DataError:
    """A DataError about ``source``: the full message and its public form.

    Parameters
    ----------
    party, source, column, row
        Where the problem is (``row``: 1-based data row).
    problem : str
        What is wrong and what to do, without ids, cell values or paths.
    line : int, optional
        The CSV line, named in the full message only.
    private : str, optional
        The problem as the party itself reads it, quoting the id or value (default:
        ``problem``).
    """
    at = where(party, source, column=column, row=row)
    if line is not None:
        at += f" (line {line})"
    return DataError(
        f"{at}: {private or problem}", party=party, column=column, row=row, problem=problem
    )


def chunk_rows_for(n_columns: int) -> int:
    """Rows per chunk for a table of ``n_columns`` columns."""
    return max(256, CHUNK_CELLS // max(1, n_columns))


def read_header(source: str, party: str) -> list[str]:
    """The file's column names, stripped, checked to be non-empty and distinct."""
    if _is_parquet(source):
        header = list(_parquet_file(source, party).schema_arrow.names)
    else:
        header = _csv_header(source, party)
    header = [name.strip() for name in header]
    _check_header(header, source, party)
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
        _parquet_chunks(source, header, id_index, numeric, party, rows)
        if _is_parquet(source)
        else _csv_chunks(source, header, id_index, numeric, party, rows)
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


def _check_header(header: list[str], source: str, party: str) -> None:
    """Reject empty or repeated column names."""
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if not name:
            raise data_error(
                party,
                source,
                f"header column {position} has no name; name every column in the first line",
            )
        if name in seen:
            raise data_error(
                party,
                source,
                f"the header names this column twice (columns {seen[name]} and {position}); "
                "rename or drop one of them",
                column=name,
            )
        seen[name] = position


def _check_ids(
    ids: list[str], start: int, lines: np.ndarray | None, column: str, source: str, party: str
) -> None:
    """Refuse an empty id, or one holding a NUL character (ids are kept as UTF-8 bytes)."""
    for offset, row_id in enumerate(ids):
        if not row_id or "\x00" in row_id:
            problem = (
                "the id is empty; every row needs an id to be aligned with the other "
                "parties, so fill it in or drop the row"
                if not row_id
                else "the id holds a NUL character; remove it from the id"
            )
            raise data_error(
                party,
                source,
                problem,
                column=column,
                row=start + offset + 1,
                line=None if lines is None else int(lines[offset]),
            )


def _check_finite(
    values: np.ndarray,
    start: int,
    lines: np.ndarray | None,
    names: list[str],
    cell: t.Callable[[int, int], str] | None,
    source: str,
    party: str,
) -> None:
    """Refuse NaN and infinite cells; ``cell(r, c)`` is the cell's text (default: the value)."""
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        r, c = (int(v) for v in bad[0])
        text = str(values[r, c]) if cell is None else cell(r, c)
        fix = "replace missing or infinite values before loading (lianmo does not impute)"
        raise data_error(
            party,
            source,
            f"the cell is not a finite number (NaN or infinite); {fix}",
            column=names[c],
            row=start + r + 1,
            line=None if lines is None else int(lines[r]),
            private=f"the cell is {text!r}, which is not a finite number; {fix}",
        )


# --- CSV --------------------------------------------------------------------------------


def _open_text(source: str) -> t.TextIO:
    """Open ``source`` as UTF-8 text, through gzip when the name ends in ``.gz``."""
    if source.endswith(".gz"):
        return gzip.open(source, "rt", encoding="utf-8-sig", newline="")
    return open(source, encoding="utf-8-sig", newline="")


def _csv_errors(source: str, party: str) -> t.Callable[[BaseException], DataError]:
    def convert(exc: BaseException) -> DataError:
        if isinstance(exc, FileNotFoundError):
            return data_error(party, source, "file not found; check the path in the party config")
        expected = (
            "expected a UTF-8 CSV file, gzip-compressed if its name ends in .gz, or a "
            "Parquet file ending in .parquet"
        )
        return data_error(
            party,
            source,
            f"cannot read the file ({type(exc).__name__}); {expected}",
            private=f"cannot read the file ({exc}); {expected}",
        )

    return convert


_READ_ERRORS = (OSError, UnicodeDecodeError, EOFError, csv.Error)


def _csv_header(source: str, party: str) -> list[str]:
    try:
        with _open_text(source) as handle:
            header = next((row for row in csv.reader(handle) if row), None)
    except _READ_ERRORS as exc:
        raise _csv_errors(source, party)(exc) from None
    if not header:
        raise data_error(
            party, source, "the file is empty; expected a header line naming the columns"
        )
    return header


def _csv_chunks(
    source: str,
    header: Sequence[str],
    id_index: int,
    numeric: Sequence[int],
    party: str,
    chunk_rows: int,
) -> Iterator[Chunk]:
    convert = _csv_errors(source, party)
    try:
        handle = _open_text(source)
    except _READ_ERRORS as exc:
        raise convert(exc) from None
    with handle:
        reader = csv.reader(handle)
        rows: list[list[str]] = []
        lines: list[int] = []
        start = 0
        seen_header = False
        while True:
            try:
                row = next(reader, None)
            except _READ_ERRORS as exc:
                raise convert(exc) from None
            if row is not None and not row:
                continue  # blank line
            if row is not None and not seen_header:
                seen_header = True
                continue
            if row is not None:
                rows.append(row)
                lines.append(reader.line_num)
            if rows and (row is None or len(rows) >= chunk_rows):
                yield _csv_chunk(source, header, id_index, numeric, party, start, rows, lines)
                start += len(rows)
                rows, lines = [], []
            if row is None:
                return


def _csv_chunk(
    source: str,
    header: Sequence[str],
    id_index: int,
    numeric: Sequence[int],
    party: str,
    start: int,
    rows: list[list[str]],
    line_list: list[int],
) -> Chunk:
    lines = np.array(line_list, dtype=np.int64)
    for offset, row in enumerate(rows):
        if len(row) != len(header):
            raise data_error(
                party,
                source,
                f"the row has {len(row)} cells but the header has {len(header)} columns; "
                f"look for a missing value or a stray comma (quote cells that contain commas)",
                row=start + offset + 1,
                line=line_list[offset],
            )
    ids = [row[id_index].strip() for row in rows]
    _check_ids(ids, start, lines, header[id_index], source, party)
    block = [[row[i] for i in numeric] for row in rows]
    names = [header[i] for i in numeric]
    try:
        values = np.array(block, dtype=np.float64).reshape(len(rows), len(numeric))
    except ValueError:
        _raise_first_unparsable(block, start, line_list, names, source, party)
    _check_finite(values, start, lines, names, lambda r, c: block[r][c].strip(), source, party)
    return Chunk(start=start, ids=ids, values=values, lines=lines)


def _raise_first_unparsable(
    block: list[list[str]],
    start: int,
    lines: list[int],
    names: list[str],
    source: str,
    party: str,
) -> t.NoReturn:
    """Raise a DataError naming the first cell of ``block`` that is not a number."""
    for r, cells in enumerate(block):
        for c, cell in enumerate(cells):
            try:
                float(cell)
            except ValueError:
                empty = not cell.strip()
                fix = "but a number was expected; fix the cell, or drop the row or the column"
                raise data_error(
                    party,
                    source,
                    f"the cell {'is empty' if empty else 'holds text'} {fix}",
                    column=names[c],
                    row=start + r + 1,
                    line=lines[r],
                    private=f"the cell is {'empty' if empty else repr(cell)} {fix}",
                ) from None
    raise data_error(party, source, "numeric columns could not be parsed")


# --- Parquet ----------------------------------------------------------------------------


def _parquet_file(source: str, party: str) -> t.Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source)
    except FileNotFoundError:
        raise data_error(
            party, source, "file not found; check the path in the party config"
        ) from None
    except (OSError, pa.ArrowException) as exc:
        fix = (
            "write it with pyarrow, pandas or Spark, or name a CSV file without the .parquet suffix"
        )
        raise data_error(
            party,
            source,
            f"cannot read the Parquet file ({type(exc).__name__}); {fix}",
            private=f"cannot read the Parquet file ({exc}); {fix}",
        ) from None


def _parquet_chunks(
    source: str,
    header: Sequence[str],
    id_index: int,
    numeric: Sequence[int],
    party: str,
    chunk_rows: int,
) -> Iterator[Chunk]:
    import pyarrow as pa

    names = [header[i] for i in numeric]
    wanted = list(dict.fromkeys([header[id_index], *names]))
    file = _parquet_file(source, party)
    schema = file.schema_arrow
    for name in names:
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)) and not (
            pa.types.is_boolean(kind)
        ):
            raise data_error(
                party,
                source,
                f"the column has type {kind}, but features and labels must be numbers; "
                "convert or drop the column",
                column=name,
            )
    start = 0
    try:
        for batch in file.iter_batches(batch_size=chunk_rows, columns=wanted):
            if batch.num_rows == 0:
                continue
            id_name = header[id_index]
            ids = _parquet_ids(batch.column(id_name), start, id_name, source, party)
            values = np.empty((batch.num_rows, len(names)), dtype=np.float64)
            for c, name in enumerate(names):
                column = batch.column(name)
                if column.null_count:
                    r = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
                    raise data_error(
                        party,
                        source,
                        "the cell is empty (null) but a number was expected; fill it in, or "
                        "drop the row or the column",
                        column=name,
                        row=start + r + 1,
                    )
                values[:, c] = column.to_numpy(zero_copy_only=False)
            _check_finite(values, start, None, names, None, source, party)
            yield Chunk(start=start, ids=ids, values=values, lines=None)
            start += batch.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise data_error(
            party,
            source,
            f"cannot read the Parquet file after data row {start} ({type(exc).__name__}); "
            "the file may be truncated or corrupt",
            private=f"cannot read the Parquet file after data row {start} ({exc}); the file "
            "may be truncated or corrupt",
        ) from None


def _parquet_ids(column: t.Any, start: int, name: str, source: str, party: str) -> list[str]:
    import pyarrow as pa

    kind = column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and not (
        pa.types.is_integer(kind)
    ):
        raise data_error(
            party,
            source,
            f"the id column has type {kind}; store ids as strings or integers",
            column=name,
        )
    values = column.to_pylist()
    ids = ["" if v is None else str(v).strip() for v in values]
    _check_ids(ids, start, None, name, source, party)
    return ids
