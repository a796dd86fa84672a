"""A party's consent register: which customers consented to which purpose, and when.

A register is a CSV (gzip if ``.gz``) or Parquet file with one consent record per row::

    id,purpose,granted_at,expires_at,revoked_at
    c-0001,credit_scoring,2026-01-05,2027-01-05,
    c-0001,suitability,2026-03-01T09:30:00+08:00,,2026-06-30

``id`` is the customer's id as the party's table writes it; ``purpose`` the purpose the
consent covers (a job spec's ``purpose``); ``granted_at`` when it was given; ``expires_at``
and ``revoked_at`` when it ends, if it does (empty: it does not). Times are ISO 8601 dates
or date-times; one without a time zone is UTC.

A record is valid at time ``T`` for purpose ``P`` if its purpose is ``P``,
``granted_at <= T``, and ``T`` is before ``expires_at`` and before ``revoked_at`` (where
given). A customer may have several records (a consent given again after a revocation is
a new record); the customer's consent is valid if any record is.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from lianmo.data.cells import data_error
from lianmo.data.csv_reader import csv_header
from lianmo.errors import DataError

#: the register's columns, in any order; other columns are ignored
COLUMNS = ("id", "purpose", "granted_at", "expires_at", "revoked_at")
_PARQUET = (".parquet", ".pq")


def _error(party: str, source: str, problem: str, **where: t.Any) -> DataError:
    """A DataError about the register (its public form says it is the consent register)."""
    return data_error(party, source, f"consent register: {problem}", **where)


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or date-time as an aware datetime (UTC when it names no zone).

    Raises
    ------
    ValueError
        If ``text`` is not ISO 8601.
    """
    when = datetime.fromisoformat(text.strip())
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ConsentRegister:
    """The records of one register file, as columns of text (``ids`` as UTF-8 bytes)."""

    source: str
    party: str
    ids: np.ndarray
    purposes: np.ndarray
    granted: tuple[str, ...]
    expires: tuple[str, ...]
    revoked: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def valid_ids(self, purpose: str, at: datetime) -> np.ndarray:
        """The distinct ids (UTF-8 bytes, sorted) with a consent valid for ``purpose`` at ``at``.

        Raises
        ------
        DataError
            If a time of a record for ``purpose`` is not ISO 8601, or a record ends
            before it was granted (file and data row named).
        """
        valid = []
        for row in np.flatnonzero(self.purposes == purpose.encode()):
            granted = self._time("granted_at", self.granted[row], int(row))
            if granted is None:
                raise _error(
                    self.party,
                    self.source,
                    "granted_at is empty; every consent record needs the time it was given",
                    column="granted_at",
                    row=int(row) + 1,
                )
            ends = [
                self._time(name, cells[row], int(row))
                for name, cells in (("expires_at", self.expires), ("revoked_at", self.revoked))
            ]
            for name, end in zip(("expires_at", "revoked_at"), ends, strict=True):
                if end is not None and end < granted:
                    raise _error(
                        self.party,
                        self.source,
                        f"{name} is before granted_at; fix the record",
                        column=name,
                        row=int(row) + 1,
                    )
            if granted <= at and all(end is None or at < end for end in ends):
                valid.append(row)
        return np.unique(self.ids[np.array(valid, dtype=np.intp)])

    def _time(self, column: str, text: str, row: int) -> datetime | None:
        if not text.strip():
            return None
        try:
            return parse_time(text)
        except ValueError:
            raise _error(
                self.party,
                self.source,
                "is not an ISO 8601 date or date-time (e.g. 2026-01-31 or "
                "2026-01-31T09:00:00+08:00); fix the record",
                column=column,
                row=row + 1,
            ) from None


def read_register(source: str, party: str) -> ConsentRegister:
    """Read a consent register file (CSV, gzip CSV or Parquet), every cell as text.

    Raises
    ------
    DataError
        If the file cannot be read, lacks one of :data:`COLUMNS`, or has a record without
        an id or purpose (file, column and data row named).
    """
    table = _read_text_table(source, party)
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise _error(
            party,
            source,
            f"is not a consent register: it has no column {missing}; a register has the "
            f"columns {list(COLUMNS)}",
        )
    for column in ("id", "purpose"):
        empty = [i for i, v in enumerate(table[column]) if not v.strip()]
        if empty:
            raise _error(
                party,
                source,
                f"is empty; every consent record names its customer {column}",
                column=column,
                row=empty[0] + 1,
            )
    return ConsentRegister(
        source=source,
        party=party,
        # stripped, as a table's ids are (:class:`lianmo.data.cells.Chunk`)
        ids=np.array([v.strip().encode() for v in table["id"]], dtype=np.bytes_),
        purposes=np.array([v.strip().encode() for v in table["purpose"]], dtype=np.bytes_),
        granted=tuple(table["granted_at"]),
        expires=tuple(table["expires_at"]),
        revoked=tuple(table["revoked_at"]),
    )


def _read_text_table(source: str, party: str) -> dict[str, list[str]]:
    """Every column of ``source`` as a list of texts (a missing cell is '')."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if source.endswith(_PARQUET):
            table = pq.read_table(source)
        else:
            header = csv_header(source, party)
            table = pacsv.read_csv(
                source,
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in header},
                    strings_can_be_null=False,
                ),
            )
    except FileNotFoundError:
        raise _error(
            party, source, "file not found; check the consent path in the party config"
        ) from None
    except (OSError, pa.ArrowException) as exc:
        raise _error(
            party,
            source,
            f"cannot read the consent register ({type(exc).__name__}); expected a UTF-8 CSV "
            "file (gzip if its name ends in .gz) or a Parquet file",
            private=f"cannot read the consent register ({exc})",
        ) from None
    out: dict[str, list[str]] = {}
    for name in table.column_names:
        column = table.column(name).cast(pa.string())
        out[name] = ["" if v is None else str(v) for v in column.to_pylist()]
    return out


__all__ = ["COLUMNS", "ConsentRegister", "parse_time", "read_register"]
