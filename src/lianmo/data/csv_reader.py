"""The CSV side of :mod:`lianmo.data.reader`: UTF-8 text (gzip if ``.gz``) in chunks of rows."""

from __future__ import annotations

import csv
import gzip
import typing as t
from collections.abc import Iterator, Sequence

import numpy as np

from lianmo.data.cells import Chunk, check_finite, check_ids, data_error
from lianmo.errors import DataError

__all__ = ["csv_chunks", "csv_header"]


def _open_text(source: str) -> t.TextIO:
    """Open ``source`` as UTF-8 text, through gzip when the name ends in ``.gz``."""
    if source.endswith(".gz"):
        return gzip.open(source, "rt", encoding="utf-8-sig", newline="")
    return open(source, encoding="utf-8-sig", newline="")


def _csv_errors(source: str, party: str) -> t.Callable[[BaseException], DataError]:
    """A converter from a read error of ``source`` to the DataError that explains it."""

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


def csv_header(source: str, party: str) -> list[str]:
    """The first non-blank row of ``source``: its column names as written."""
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


def csv_chunks(
    source: str,
    header: Sequence[str],
    id_index: int,
    numeric: Sequence[int],
    party: str,
    chunk_rows: int,
) -> Iterator[Chunk]:
    """Yield ``source``'s data rows (blank lines skipped) in chunks of ``chunk_rows``."""
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
    """Check the rows' widths, ids and numeric cells; return them as a Chunk."""
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
    check_ids(ids, start, lines, header[id_index], source, party)
    block = [[row[i] for i in numeric] for row in rows]
    names = [header[i] for i in numeric]
    try:
        values = np.array(block, dtype=np.float64).reshape(len(rows), len(numeric))
    except ValueError:
        _raise_first_unparsable(block, start, line_list, names, source, party)
    check_finite(values, start, lines, names, lambda r, c: block[r][c].strip(), source, party)
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
