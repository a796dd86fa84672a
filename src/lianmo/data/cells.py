"""Chunks of a table's rows, the checks on their cells, and the errors that name a cell.

Shared by the CSV and Parquet readers (:mod:`lianmo.data.csv_reader`,
:mod:`lianmo.data.parquet_reader`). :func:`data_error` builds every DataError about a
file: the full message names the party, the file, the column and the 1-based data row
(and, for CSV, the line); its public form names the column and row only.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import numpy as np

from lianmo.errors import DataError

__all__ = ["Chunk", "check_finite", "check_header", "check_ids", "data_error", "where"]


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


def check_header(header: list[str], source: str, party: str) -> None:
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


def check_ids(
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


def check_finite(
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
