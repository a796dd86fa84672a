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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from lianmo.data.cells import data_error
from lianmo.data.csv_reader import csv_header
from lianmo.errors import DataError

if t.TYPE_CHECKING:
    import pyarrow as pa

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


#: microseconds since the Unix epoch of a record's times; "never" for an empty end
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NEVER = np.iinfo(np.int64).max


def _microseconds(when: datetime) -> int:
    return (when - _EPOCH) // _MICROSECOND


@dataclass(frozen=True)
class TimeColumn:
    """A column of time texts, dictionary-encoded: row ``i`` holds ``texts[codes[i]]``."""

    codes: np.ndarray  # int64 per record
    texts: tuple[str, ...]  # the distinct texts ('' for an empty cell)


@dataclass(frozen=True)
class ConsentRegister:
    """The records of one register file (``ids`` and ``purposes`` as UTF-8 bytes).

    The times of a purpose's records are parsed once, on the first :meth:`valid_ids` for
    that purpose, each distinct text once; later calls (a serving node re-checks expiry
    every ``consent_refresh_s``) compare integers only.
    """

    source: str
    party: str
    ids: np.ndarray
    purposes: np.ndarray
    granted: TimeColumn
    expires: TimeColumn
    revoked: TimeColumn
    _times: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

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
        if purpose not in self._times:
            self._times[purpose] = self._parse(purpose)
        rows, granted, expires, revoked = self._times[purpose]
        now = _microseconds(at)
        valid = (granted <= now) & (now < expires) & (now < revoked)
        picked = self.ids[rows[valid]]  # sorted: rows are in id order
        first = np.ones(len(picked), dtype=bool)
        first[1:] = picked[1:] != picked[:-1]
        return np.asarray(picked[first])

    def _parse(self, purpose: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The rows of ``purpose``'s records, in id order, and their times in microseconds."""
        rows = np.flatnonzero(self.purposes == purpose.encode())
        rows = rows[np.argsort(self.ids[rows], kind="stable")]
        granted = self._column("granted_at", self.granted, rows)
        if (granted == _NEVER).any():
            raise _error(
                self.party,
                self.source,
                "granted_at is empty; every consent record needs the time it was given",
                column="granted_at",
                row=int(rows[granted == _NEVER].min()) + 1,
            )
        ends = {name: self._column(name, cells, rows) for name, cells in (
            ("expires_at", self.expires), ("revoked_at", self.revoked)
        )}  # fmt: skip
        for name, end in ends.items():
            early = (end != _NEVER) & (end < granted)
            if early.any():
                raise _error(
                    self.party,
                    self.source,
                    f"{name} is before granted_at; fix the record",
                    column=name,
                    row=int(rows[early].min()) + 1,
                )
        return rows, granted, ends["expires_at"], ends["revoked_at"]

    def _column(self, column: str, cells: TimeColumn, rows: np.ndarray) -> np.ndarray:
        """``column``'s times at ``rows`` in microseconds (empty: :data:`_NEVER`); each
        distinct text parsed once."""
        codes = cells.codes[rows]
        used = np.unique(codes)
        values = np.zeros(len(cells.texts), dtype=np.int64)
        for code in used.tolist():
            text = cells.texts[code].strip()
            if not text:
                values[code] = _NEVER
                continue
            try:
                values[code] = _microseconds(parse_time(text))
            except ValueError:
                raise _error(
                    self.party,
                    self.source,
                    "is not an ISO 8601 date or date-time (e.g. 2026-01-31 or "
                    "2026-01-31T09:00:00+08:00); fix the record",
                    column=column,
                    row=int(rows[codes == code].min()) + 1,
                ) from None
        return np.asarray(values[codes], dtype=np.int64)


def read_register(source: str, party: str) -> ConsentRegister:
    """Read a consent register file (CSV, gzip CSV or Parquet), every cell as text.

    Raises
    ------
    DataError
        If the file cannot be read, lacks one of :data:`COLUMNS`, or has a record without
        an id or purpose (file, column and data row named).
    """
    import pyarrow.compute as pc

    table = _read_text_table(source, party)
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise _error(
            party,
            source,
            f"is not a consent register: it has no column {missing}; a register has the "
            f"columns {list(COLUMNS)}",
        )
    # stripped, as a table's ids are (:class:`lianmo.data.cells.Chunk`)
    keys = {c: pc.utf8_trim_whitespace(table.column(c)) for c in ("id", "purpose")}
    for column, cells in keys.items():
        empty = pc.equal(pc.utf8_length(cells), 0)
        if pc.any(empty).as_py():
            raise _error(
                party,
                source,
                f"is empty; every consent record names its customer {column}",
                column=column,
                row=pc.index(empty, True).as_py() + 1,
            )

    def utf8(name: str) -> np.ndarray:
        values = keys[name].to_numpy(zero_copy_only=False)
        return np.array([v.encode() for v in values], dtype=np.bytes_)

    def times(name: str) -> TimeColumn:
        encoded = table.column(name).combine_chunks().dictionary_encode()
        return TimeColumn(
            np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64),
            tuple(encoded.dictionary.to_pylist()),
        )

    return ConsentRegister(
        source=source,
        party=party,
        ids=utf8("id"),
        purposes=utf8("purpose"),
        granted=times("granted_at"),
        expires=times("expires_at"),
        revoked=times("revoked_at"),
    )


def _read_text_table(source: str, party: str) -> pa.Table:
    """Every column of ``source`` as text (a missing cell is '')."""
    import pyarrow as pa
    import pyarrow.compute as pc
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
    columns = [pc.fill_null(table.column(n).cast(pa.string()), "") for n in table.column_names]
    return pa.table(columns, names=table.column_names)


__all__ = ["COLUMNS", "ConsentRegister", "parse_time", "read_register"]
