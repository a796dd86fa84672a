"""The Parquet side of :mod:`lianmo.data.reader`: record batches read with pyarrow.

pyarrow is imported only when a Parquet file is read. Ids may be strings or integers;
features and labels must be numeric (integer, floating point or boolean) columns
without nulls.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterator, Sequence

import numpy as np

from lianmo.data.cells import Chunk, check_finite, check_ids, data_error

__all__ = ["parquet_chunks", "parquet_file"]


def parquet_file(source: str, party: str) -> t.Any:
    """Open ``source`` as a ``pyarrow.parquet.ParquetFile``, or raise a DataError."""
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


def parquet_chunks(
    source: str,
    header: Sequence[str],
    id_index: int,
    numeric: Sequence[int],
    party: str,
    chunk_rows: int,
) -> Iterator[Chunk]:
    """Yield ``source``'s rows in chunks of about ``chunk_rows`` (record batches)."""
    import pyarrow as pa

    names = [header[i] for i in numeric]
    wanted = list(dict.fromkeys([header[id_index], *names]))
    file = parquet_file(source, party)
    _check_numeric_types(file.schema_arrow, names, source, party)
    start = 0
    try:
        for batch in file.iter_batches(batch_size=chunk_rows, columns=wanted):
            if batch.num_rows == 0:
                continue
            id_name = header[id_index]
            ids = _parquet_ids(batch.column(id_name), start, id_name, source, party)
            values = _parquet_values(batch, names, start, source, party)
            check_finite(values, start, None, names, None, source, party)
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


def _check_numeric_types(schema: t.Any, names: Sequence[str], source: str, party: str) -> None:
    """Refuse a feature or label column whose Parquet type is not a number (or boolean)."""
    import pyarrow as pa

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


def _parquet_values(
    batch: t.Any, names: Sequence[str], start: int, source: str, party: str
) -> np.ndarray:
    """The batch's ``names`` columns as float64, refusing the first null cell."""
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
    return values


def _parquet_ids(column: t.Any, start: int, name: str, source: str, party: str) -> list[str]:
    """The id column of a batch as stripped strings, checked (strings or integers only)."""
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
    check_ids(ids, start, None, name, source, party)
    return ids
