"""The consent register: validity rules, file formats and the errors for bad registers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lianmo.config import PartyConfig
from lianmo.data.consent import parse_time, read_register
from lianmo.errors import ConfigError, DataError

HEADER = "id,purpose,granted_at,expires_at,revoked_at\n"
AT = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _register(tmp_path: Path, body: str, name: str = "consent.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def _valid(path: Path, purpose: str = "credit", at: datetime = AT) -> set[str]:
    return {v.decode() for v in read_register(str(path), "broker").valid_ids(purpose, at)}


def test_validity_follows_grant_expiry_revocation_and_purpose(tmp_path: Path) -> None:
    path = _register(
        tmp_path,
        "a,credit,2026-01-01,,\n"  # valid, no end
        "b,credit,2026-01-01,2026-06-01T12:00:00+00:00,\n"  # expires exactly at AT: invalid
        "c,credit,2026-01-01,,2026-05-31\n"  # revoked before AT
        "d,credit,2026-06-02,,\n"  # granted after AT
        "e,marketing,2026-01-01,,\n"  # another purpose
        "f,credit,2026-01-01,,2026-02-01\n"  # revoked, then given again
        "f,credit,2026-03-01,2027-01-01,\n"
        "g,credit,2026-06-01T20:00:00+08:00,,\n",  # 12:00 UTC: valid from AT on
    )
    assert _valid(path) == {"a", "f", "g"}
    assert _valid(path, "marketing") == {"e"}
    assert _valid(path, at=datetime(2026, 5, 1, tzinfo=UTC)) == {"a", "b", "c", "f"}


def test_parquet_registers_with_timestamp_columns(tmp_path: Path) -> None:
    path = tmp_path / "consent.parquet"
    table = pa.table(
        {
            "id": ["a", "b"],
            "purpose": ["credit", "credit"],
            "granted_at": pa.array([datetime(2026, 1, 1), datetime(2026, 1, 1)]),
            "expires_at": pa.array([None, datetime(2026, 2, 1)], type=pa.timestamp("us")),
            "revoked_at": pa.array([None, None], type=pa.timestamp("us")),
        }
    )
    pq.write_table(table, path)
    assert _valid(path) == {"a"}


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            "a,credit,yesterday,,\n",
            "column 'granted_at', data row 1: consent register: is not an ISO",
        ),
        ("a,credit,,,\n", "granted_at is empty"),
        ("a,credit,2026-02-01,2026-01-01,\n", "expires_at is before granted_at"),
        ("a,credit,2026-01-01,,\n,credit,2026-01-01,,\n", "column 'id', data row 2"),
    ],
)
def test_bad_records_are_named(tmp_path: Path, body: str, said: str) -> None:
    path = _register(tmp_path, body)
    with pytest.raises(DataError) as info:
        _valid(path)
    assert said in str(info.value) and "party 'broker'" in str(info.value)


def test_a_file_without_the_register_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "consent.csv"
    path.write_text("id,purpose,granted\na,credit,2026-01-01\n")
    with pytest.raises(DataError, match="is not a consent register: it has no column"):
        read_register(str(path), "broker")
    with pytest.raises(DataError, match="file not found"):
        read_register(str(tmp_path / "missing.csv"), "broker")


def test_times_without_a_zone_are_utc() -> None:
    assert parse_time("2026-01-31") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_time("2026-01-31T08:00:00+08:00") == datetime(2026, 1, 31, 0, tzinfo=UTC)


def _config(tmp_path: Path, entry: dict[str, object]) -> PartyConfig:
    base = {"path": "d.csv", "id_column": "id", "label_column": "y"}
    return PartyConfig.from_dict(
        {
            "name": "broker",
            "listen": "x",
            "state_dir": "s",
            "tls": {"cert": "c", "key": "k", "ca": "a"},
            "datasets": {"credit": {**base, **entry}},
        },
        base=tmp_path,
    )


def test_catalogue_purposes_are_checked(tmp_path: Path) -> None:
    entry = _config(tmp_path, {"purposes": {"credit": ["a"], "any": "*"}, "consent": "c.csv"})
    found = entry.datasets["credit"]
    assert found.purposes == {"credit": ("a",), "any": None}
    assert found.consent == tmp_path / "c.csv"
    with pytest.raises(ConfigError, match="names column 'b', which the data set's columns"):
        _config(tmp_path, {"columns": ["a"], "purposes": {"credit": ["b"]}})
    with pytest.raises(ConfigError, match="the id or label column"):
        _config(tmp_path, {"purposes": {"credit": ["y"]}})
    with pytest.raises(ConfigError, match="datasets.credit.purposes.credit"):
        _config(tmp_path, {"purposes": {"credit": "all"}})
    with pytest.raises(ConfigError, match="a table mapping purposes"):
        _config(tmp_path, {"purposes": ["credit"]})


def test_ids_and_purposes_are_read_as_the_table_reads_ids_without_surrounding_spaces(
    tmp_path: Path,
) -> None:
    """The table's ids are stripped of surrounding spaces; a register's must be too, or a
    customer who consented is left out (and told 'no_consent')."""
    path = _register(tmp_path, " c-1 ,credit , 2026-01-01 ,,\nc-2,credit,2026-01-01,,\n")
    assert _valid(path) == {"c-1", "c-2"}
