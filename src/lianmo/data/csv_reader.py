"""The CSV side of :mod:`lianmo.data.reader`: UTF-8 text (gzip if ``.gz``) in chunks of rows.

Two readers hand the same chunks to :class:`~lianmo.data.convert.ChunkPlan`:
:func:`fast_csv_chunks`, pyarrow's streaming CSV reader (C++, all columns as strings, no
type inference), and :func:`csv_chunks`, Python's :mod:`csv` module, which knows each
row's line. A pass reads with the first and, if it finds any problem, again with the
second, whose errors name the row and line (:func:`lianmo.data.reader.checked_pass`).
"""

from __future__ import annotations

import csv
import gzip
import typing as t
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from lianmo.data.cells import Chunk, data_error
from lianmo.data.convert import ChunkPlan
from lianmo.errors import DataError

__all__ = ["BYTES_PER_CELL", "FastPathFailed", "csv_chunks", "csv_header", "fast_csv_chunks"]

#: what a CSV cell takes on average, with its comma: sizes pyarrow's blocks to chunks
BYTES_PER_CELL = 8


class FastPathFailed(Exception):
    """pyarrow's CSV reader could not read the file as the Python reader would."""


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
    positions: Sequence[int],
    plan: ChunkPlan,
    party: str,
    chunk_rows: int,
) -> Iterator[Chunk]:
    """Yield ``source``'s data rows (blank lines skipped) in chunks of ``chunk_rows``.

    Reads with Python's :mod:`csv` module, so that an error names its line.
    """
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
                yield _csv_chunk(
                    source, header, id_index, positions, plan, party, start, rows, lines
                )
                start += len(rows)
                rows, lines = [], []
            if row is None:
                return


def _csv_chunk(
    source: str,
    header: Sequence[str],
    id_index: int,
    positions: Sequence[int],
    plan: ChunkPlan,
    party: str,
    start: int,
    rows: list[list[str]],
    line_list: list[int],
) -> Chunk:
    """Check the rows' widths, then their cells (:meth:`ChunkPlan.chunk`)."""
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
    ids = pa.array([row[id_index] for row in rows], pa.string())
    columns = [pa.array([row[i] for row in rows], pa.string()) for i in positions]
    lines = np.array(line_list, dtype=np.int64)
    return plan.chunk(start, ids, columns, lines, source, party)


def fast_csv_chunks(
    source: str,
    header: Sequence[str],
    id_index: int,
    positions: Sequence[int],
    plan: ChunkPlan,
    party: str,
    chunk_rows: int,
) -> Iterator[Chunk]:
    """Yield ``source``'s data rows in chunks of about ``chunk_rows``, read by pyarrow.

    Rows carry no line numbers. Raises :class:`FastPathFailed` where pyarrow cannot read
    the file (a ragged row, bad UTF-8, gzip, quoting), and DataError for a bad cell; the
    caller then reads the file again with :func:`csv_chunks` to name the row and line.
    """
    raw = csv_header(source, party)
    try:
        stream = pa.input_stream(source, compression="gzip" if source.endswith(".gz") else None)
    except (OSError, pa.ArrowException) as exc:
        raise FastPathFailed(str(exc)) from None
    block = max(1 << 10, chunk_rows * len(header) * BYTES_PER_CELL)
    with stream:
        try:
            reader = pa_csv.open_csv(
                stream,
                read_options=pa_csv.ReadOptions(block_size=block, use_threads=True),
                convert_options=pa_csv.ConvertOptions(
                    column_types={name: pa.string() for name in raw},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            if reader.schema.names != raw or len(raw) != len(header):
                raise FastPathFailed("pyarrow read another header")
            start = 0
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                columns = [batch.column(i) for i in positions]
                yield plan.chunk(start, batch.column(id_index), columns, None, source, party)
                start += batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise FastPathFailed(str(exc)) from None
