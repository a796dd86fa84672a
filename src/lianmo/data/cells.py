"""Chunks of a table's rows, the header check, and the errors that name a cell.

Shared by the CSV and Parquet readers (:mod:`lianmo.data.csv_reader`,
:mod:`lianmo.data.parquet_reader`) and the cell checks (:mod:`lianmo.data.convert`).
:func:`data_error` builds every DataError about a file: the full message names the
party, the file, the column and the 1-based data row (and, for CSV, the line); its public
form names the column and row only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lianmo.errors import DataError

__all__ = ["Chunk", "check_header", "data_error", "where"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive data rows of a file.

    Attributes
    ----------
    start : int
        0-based position of the chunk's first row among the file's data rows.
    ids : numpy.ndarray
        The id of each row as UTF-8 bytes (numpy ``S``), stripped of surrounding spaces,
        non-empty.
    values : numpy.ndarray
        Float64 of shape ``(rows, columns read)``: numbers (finite), category codes
        (provisional during a table's first pass) or NaN for a missing feature cell.
    lines : numpy.ndarray or None
        The CSV line number of each row (int64), or None for Parquet.
    """

    start: int
    ids: np.ndarray
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
