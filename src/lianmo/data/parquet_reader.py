"""The Parquet side of :mod:`lianmo.data.reader`: record batches read with pyarrow.

Ids may be strings or integers. Labels must be numeric (integer, floating point or
boolean) columns without nulls; features too, where a null is a missing cell (and NaN
one if a missing token spells NaN, in any case), unless declared categorical: then a string or
dictionary column's texts, or a number column's value texts (``"1"``, not ``"1.0"``),
are its categories.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterator, Sequence

from lianmo.data.cells import Chunk, data_error
from lianmo.data.convert import ChunkPlan, ColumnRead

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
    positions: Sequence[int],
    plan: ChunkPlan,
    party: str,
    chunk_rows: int,
) -> Iterator[Chunk]:
    """Yield ``source``'s rows in chunks of about ``chunk_rows`` (record batches)."""
    import pyarrow as pa

    names = [header[i] for i in positions]
    id_name = header[id_index]
    wanted = list(dict.fromkeys([id_name, *names]))
    file = parquet_file(source, party)
    _check_types(file.schema_arrow, plan.reads, source, party)
    start = 0
    try:
        for batch in file.iter_batches(batch_size=chunk_rows, columns=wanted):
            if batch.num_rows == 0:
                continue
            _check_id_type(batch.column(id_name).type, id_name, source, party)
            columns = [batch.column(name) for name in names]
            yield plan.chunk(start, batch.column(id_name), columns, None, source, party)
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


def _check_types(schema: t.Any, reads: Sequence[ColumnRead], source: str, party: str) -> None:
    """Refuse a column whose Parquet type its role cannot read.

    Labels and numeric features: numbers (or booleans); categorical features: those, or
    strings (also dictionary-encoded).
    """
    import pyarrow as pa

    for read in reads:
        kind = schema.field(read.name).type
        value = kind.value_type if pa.types.is_dictionary(kind) else kind
        number = pa.types.is_integer(value) or pa.types.is_floating(value)
        number = number or pa.types.is_boolean(value)
        text = pa.types.is_string(value) or pa.types.is_large_string(value)
        if number or (text and read.coder is not None):
            continue
        fix = "convert or drop the column"
        if text and not read.label:
            fix = (
                f'if it holds categories, declare it: categorical = ["{read.name}"] under '
                "[datasets.NAME] in the party config; otherwise convert or drop the column"
            )
        raise data_error(
            party,
            source,
            f"the column has type {kind}, but features and labels must be numbers; {fix}",
            column=read.name,
        )


def _check_id_type(kind: t.Any, name: str, source: str, party: str) -> None:
    """Ids are strings or integers."""
    import pyarrow as pa

    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and not (
        pa.types.is_integer(kind)
    ):
        raise data_error(
            party,
            source,
            f"the id column has type {kind}; store ids as strings or integers",
            column=name,
        )
