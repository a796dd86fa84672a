"""Turn a chunk's columns (Arrow arrays) into ids and a float64 matrix, checking each cell.

Both CSV readers (pyarrow's streaming one and the pure-Python one that names lines) and
the Parquet reader hand their chunks here, so every format is checked by the same rules:
ids present; labels finite numbers; feature cells numbers, categories (coded by their
column's :class:`~lianmo.data.coding.Coder`) or missing (NaN). When several cells of a
chunk are unusable, the first in row order (then column order) is named.
"""

from __future__ import annotations

import math
import typing as t
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lianmo.data.cells import Chunk, data_error
from lianmo.data.coding import MAX_CATEGORIES, Coder
from lianmo.errors import DataError

__all__ = ["CHANGED", "ChunkPlan", "ColumnRead", "chunk_ids", "chunk_values"]

#: the problem when a later pass over a scanned file meets other rows or texts
CHANGED = (
    "the file changed while the job was reading it (its rows differ from the first pass); "
    "do not replace a data set's file while a job uses it, then run the job again"
)
_FIX = "fix the cell, or drop the row or the column"


@dataclass(frozen=True, slots=True)
class ColumnRead:
    """How one column is read: a label (a number, never missing) or a feature.

    ``coder`` is set for a categorical feature column.
    """

    name: str
    label: bool = False
    coder: Coder | None = None


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """What a pass reads of each chunk: the id column, the other columns, missing tokens."""

    id_column: str
    reads: tuple[ColumnRead, ...]
    missing_values: tuple[str, ...] = ()

    def chunk(
        self,
        start: int,
        ids: pa.Array,
        columns: Sequence[pa.Array],
        lines: np.ndarray | None,
        source: str,
        party: str,
    ) -> Chunk:
        """Check and convert one chunk's id array and column arrays (in ``reads`` order)."""
        checked = chunk_ids(ids, self.id_column, start, lines, source, party)
        values = chunk_values(
            columns,
            self.reads,
            self.missing_values,
            n_rows=len(ids),
            start=start,
            lines=lines,
            source=source,
            party=party,
        )
        return Chunk(start=start, ids=checked, values=values, lines=lines)


@dataclass(frozen=True, slots=True)
class _Where:
    """The chunk being converted: what an error names."""

    party: str
    source: str
    start: int
    lines: np.ndarray | None

    def error(self, column: str, r: int, problem: str, private: str | None = None) -> DataError:
        line = None if self.lines is None else int(self.lines[r])
        return data_error(
            self.party,
            self.source,
            problem,
            column=column,
            row=self.start + r + 1,
            line=line,
            private=private,
        )


#: a cell problem: its row in the chunk and the error naming it
_Problem = tuple[int, t.Callable[[], DataError]]


def chunk_ids(
    array: pa.Array, column: str, start: int, lines: np.ndarray | None, source: str, party: str
) -> np.ndarray:
    """The id column as stripped UTF-8 bytes (numpy ``S``); refuse an empty id or a NUL."""
    texts = pc.utf8_trim_whitespace(array.cast(pa.string()))
    empty = pc.fill_null(pc.equal(pc.utf8_length(texts), 0), True)
    nul = pc.fill_null(pc.match_substring(texts, "\x00"), False)
    bad = np.flatnonzero(pc.or_(empty, nul).to_numpy(zero_copy_only=False))
    if bad.size:
        r = int(bad[0])
        problem = (
            "the id is empty; every row needs an id to be aligned with the other parties, "
            "so fill it in or drop the row"
            if empty[r].as_py()
            else "the id holds a NUL character; remove it from the id"
        )
        raise _Where(party, source, start, lines).error(column, r, problem)
    return _fixed_width(texts.cast(pa.binary()))


def _fixed_width(array: pa.Array) -> np.ndarray:
    """A binary Arrow array (no nulls) as a numpy ``S`` array, without a Python loop."""
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    n = len(array)
    offsets_buffer, data_buffer = array.buffers()[1:3]
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[array.offset : array.offset + n + 1]
    lengths = np.diff(offsets)
    width = max(1, int(lengths.max(initial=0)))
    out = np.zeros((n, width), dtype=np.uint8)
    if n and offsets[-1] > offsets[0]:
        data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
        rows = np.repeat(np.arange(n), lengths)
        cols = np.arange(len(data)) - np.repeat(offsets[:-1] - offsets[0], lengths)
        out[rows, cols] = data
    return out.view(f"S{width}").ravel()


def chunk_values(
    columns: Sequence[pa.Array],
    reads: Sequence[ColumnRead],
    missing_values: Sequence[str],
    *,
    n_rows: int,
    start: int,
    lines: np.ndarray | None,
    source: str,
    party: str,
) -> np.ndarray:
    """The ``columns`` as float64 of shape ``(rows, len(reads))``: numbers, codes or NaN.

    Raises
    ------
    DataError
        Naming the first unusable cell (row, then column order); nothing of the chunk is
        then kept by the coders.
    """
    at = _Where(party, source, start, lines)
    tokens = pa.array(list(missing_values), pa.string())
    out = np.empty((n_rows, len(reads)), dtype=np.float64)
    problems: list[tuple[int, int, t.Callable[[], DataError]]] = []
    for c, (array, read) in enumerate(zip(columns, reads, strict=True)):
        values, problem = _column(array, read, tokens, at)
        out[:, c] = values
        if problem is not None:
            problems.append((problem[0], c, problem[1]))
    if problems:
        raise min(problems, key=lambda p: (p[0], p[1]))[2]()
    for read in reads:
        if read.coder is not None:
            read.coder.commit()
    return out


def _column(
    array: pa.Array, read: ColumnRead, tokens: pa.Array, at: _Where
) -> tuple[np.ndarray, _Problem | None]:
    """One column's values and its first problem, by the column's Arrow type."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if read.coder is not None:
        texts = array if _is_text(array.type) else pc.cast(array, pa.string())
        return _categories(_stripped(texts), read, tokens, at)
    if _is_text(array.type):
        plain = _plain_numbers(array, read, tokens)
        if plain is not None:
            return plain, None
        return _numbers_from_text(_stripped(array), read, tokens, at)
    return _numbers(array, read, tokens, at)


def _plain_numbers(array: pa.Array, read: ColumnRead, tokens: pa.Array) -> np.ndarray | None:
    """The common case, cheaply: every cell is a finite number or a missing token as
    written (no spaces around it). None if any cell is not, for :func:`_numbers_from_text`.
    """
    if array.null_count:
        return None
    missing = None if read.label or not len(tokens) else pc.is_in(array, value_set=tokens)
    if missing is not None and pc.any(missing).as_py():
        array = pc.if_else(missing, pa.scalar("0", pa.string()), array)
    else:
        missing = None
    try:
        values = np.array(pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False))
    except pa.ArrowInvalid:
        return None
    if not np.isfinite(values).all():
        return None
    if missing is not None:
        values[np.asarray(missing.to_numpy(zero_copy_only=False))] = np.nan
    return values


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _stripped(array: pa.Array) -> pa.Array:
    return pc.utf8_trim_whitespace(array.cast(pa.string()))


def _missing(texts: pa.Array, read: ColumnRead, tokens: pa.Array) -> np.ndarray:
    """Where a feature cell is missing: a missing token, or null (Parquet) if any token."""
    if read.label or len(tokens) == 0:
        return np.zeros(len(texts), dtype=bool)
    found = pc.or_kleene(pc.is_in(texts, value_set=tokens), pc.is_null(texts))
    return np.asarray(found.to_numpy(zero_copy_only=False))


def _categories(
    texts: pa.Array, read: ColumnRead, tokens: pa.Array, at: _Where
) -> tuple[np.ndarray, _Problem | None]:
    """A categorical column's codes (NaN where missing)."""
    coder = t.cast(Coder, read.coder)
    missing = _missing(texts, read, tokens)
    problems = [_null_problem(texts, missing, read, at), _empty_problem(texts, missing, read, at)]
    codes, refused = coder.code(pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), texts))
    if refused is not None and coder.fixed:
        problems.append((refused, lambda: data_error(at.party, at.source, CHANGED)))
    elif refused is not None:
        text = t.cast(str, texts[refused].as_py())
        problems.append((refused, lambda: _too_many(read, text, refused, at)))
    return codes, _first(problems)


def _first(problems: Sequence[_Problem | None]) -> _Problem | None:
    """The problem of the earliest row, if any."""
    found = [p for p in problems if p is not None]
    return min(found, key=lambda p: p[0]) if found else None


def _empty_problem(
    texts: pa.Array, missing: np.ndarray, read: ColumnRead, at: _Where
) -> _Problem | None:
    """An empty cell in a categorical column where the empty cell is not a missing token."""
    empty = np.asarray(
        pc.fill_null(pc.equal(pc.utf8_length(texts), 0), False).to_numpy(zero_copy_only=False)
    )
    empty &= ~missing
    if not empty.any():
        return None
    r = int(np.flatnonzero(empty)[0])
    return r, lambda: at.error(
        read.name,
        r,
        'the cell is empty but a category was expected; fill it in, or list "" in the '
        "data set's missing_values to read it as missing",
    )


def _too_many(read: ColumnRead, text: str, r: int, at: _Where) -> DataError:
    """A categorical column past :data:`MAX_CATEGORIES` distinct values at row ``r``."""
    fix = (
        "so it looks like an id or free text rather than categories; drop the column, or "
        f"bucket its values into at most {MAX_CATEGORIES} categories"
    )
    return at.error(
        read.name,
        r,
        f"the column has more than {MAX_CATEGORIES} distinct values by this row, {fix}",
        private=f"the column has more than {MAX_CATEGORIES} distinct values by this row "
        f"(its value {text!r} is the {MAX_CATEGORIES + 1}th), {fix}",
    )


def _null_problem(
    array: pa.Array, missing: np.ndarray, read: ColumnRead, at: _Where
) -> _Problem | None:
    """A null (Parquet) cell where missing cells are refused."""
    if not array.null_count:
        return None
    nulls = np.asarray(array.is_null().to_numpy(zero_copy_only=False)) & ~missing
    if not nulls.any():
        return None
    r = int(np.flatnonzero(nulls)[0])
    wanted = "a number" if read.coder is None else "a category"
    return r, lambda: at.error(
        read.name,
        r,
        f"the cell is empty (null) but {wanted} was expected; fill it in, or drop the row or "
        "the column",
    )


def _numbers(
    array: pa.Array, read: ColumnRead, tokens: pa.Array, at: _Where
) -> tuple[np.ndarray, _Problem | None]:
    """A numeric Arrow column (Parquet): nulls missing, NaN too if a token spells NaN."""
    values = np.array(pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False))
    nulls = np.asarray(array.is_null().to_numpy(zero_copy_only=False))
    missing = np.zeros(len(values), dtype=bool) if read.label or not len(tokens) else nulls
    if not read.label and any(token.lower() == "nan" for token in tokens.to_pylist()):
        missing = missing | (np.isnan(values) & ~nulls)
    problems = [_null_problem(array, missing, read, at)]
    values[missing] = np.nan
    bad = ~np.isfinite(values) & ~missing & ~nulls
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        problems.append((r, lambda: _not_finite(read, str(values[r]), r, at)))
    return values, _first(problems)


def _numbers_from_text(
    texts: pa.Array, read: ColumnRead, tokens: pa.Array, at: _Where
) -> tuple[np.ndarray, _Problem | None]:
    """A text column read as numbers (CSV): missing tokens NaN, the rest parsed."""
    missing = _missing(texts, read, tokens)
    parse = pc.if_else(pa.array(missing), pa.scalar("0", pa.string()), texts)
    try:
        values = np.asarray(pc.cast(parse, pa.float64()).to_numpy(zero_copy_only=False))
        unparsed = np.zeros(len(values), dtype=bool)
    except pa.ArrowInvalid:  # a text Arrow does not read: Python's float() decides
        values, unparsed = _python_floats(parse.to_pylist())
    values = values.astype(np.float64, copy=True)
    values[missing] = np.nan
    bad = unparsed | (~np.isfinite(values) & ~missing)
    if not bad.any():
        return values, None
    r = int(np.flatnonzero(bad)[0])
    cell = t.cast(str, texts[r].as_py())
    if unparsed[r]:
        return values, (r, lambda: _not_a_number(read, cell, r, at))
    return values, (r, lambda: _not_finite(read, cell, r, at))


def _python_floats(cells: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each cell as Python's ``float()`` reads it (NaN and a flag where it cannot)."""
    values = np.empty(len(cells), dtype=np.float64)
    unparsed = np.zeros(len(cells), dtype=bool)
    for i, cell in enumerate(cells):
        try:
            values[i] = float(cell)
        except ValueError:
            values[i], unparsed[i] = math.nan, True
    return values, unparsed


def _not_a_number(read: ColumnRead, cell: str, r: int, at: _Where) -> DataError:
    """Text (or an empty cell that is not missing) where a number was expected."""
    empty = not cell
    if empty or read.label:
        fix = f"but a number was expected; {_FIX}"
    else:
        fix = (
            "but a number was expected; if the column holds categories, declare it: "
            f'categorical = ["{read.name}"] under [datasets.NAME] in the party config (or, '
            f"if the text means unknown, add it to missing_values there); otherwise {_FIX}"
        )
    return at.error(
        read.name,
        r,
        f"the cell {'is empty' if empty else 'holds text'} {fix}",
        private=f"the cell is {'empty' if empty else repr(cell)} {fix}",
    )


def _not_finite(read: ColumnRead, cell: str, r: int, at: _Where) -> DataError:
    """NaN (when not a missing token) or an infinite number."""
    fix = (
        "every row needs a finite label; fix the cell, or drop the row"
        if read.label
        else "replace infinite values; write a missing value as an empty cell or one of the "
        "data set's missing_values"
    )
    return at.error(
        read.name,
        r,
        f"the cell is not a finite number (NaN or infinite); {fix}",
        private=f"the cell is {cell!r}, which is not a finite number; {fix}",
    )
