"""The consent register: validity rules, file formats and the errors for bad registers."""

from __future__ import annotations

import random
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


def test_the_first_bad_record_in_file_order_is_named_whatever_its_id(tmp_path: Path) -> None:
    path = _register(
        tmp_path,
        "z,credit,2026-01-01,,\n"
        "y,credit,2026-01-01,soon,\n"  # the first bad record: data row 2
        "a,credit,2026-01-01,later,\n"  # sorts first by id
        "b,credit,2026-03-01,2026-02-01,\n",
    )
    with pytest.raises(DataError, match="column 'expires_at', data row 2:"):
        _valid(path)
    path = _register(tmp_path, "z,credit,2026-03-01,,2026-02-01\na,credit,2026-03-01,,2026-02-01\n")
    with pytest.raises(DataError, match="column 'revoked_at', data row 1: .* before granted_at"):
        _valid(path)


def test_validity_equals_a_record_by_record_reading_at_many_times(tmp_path: Path) -> None:
    """Times parsed once per distinct text and compared as integers give exactly what
    reading each record on its own gives, call after call on one register."""
    rng = random.Random(7)
    days = [f"2026-{m:02d}-{d:02d}" for m in (1, 3, 6, 9) for d in (1, 15)]
    stamps = [*days, "2026-06-01T12:00:00+00:00", "2026-06-01T20:00:00+08:00", ""]
    records = []
    for _ in range(400):
        granted = rng.choice(days)
        ends = [rng.choice([e for e in stamps if not e or parse_time(e) >= parse_time(granted)])
                for _ in range(2)]  # fmt: skip
        purpose = rng.choice(["credit", "credit", "marketing"])
        records.append((f"c{rng.randrange(120)}", purpose, granted, *ends))
    path = _register(tmp_path, "".join(",".join(r) + "\n" for r in records))
    register = read_register(str(path), "broker")
    for at in [parse_time(d) for d in days] + [AT, datetime(2027, 1, 1, tzinfo=UTC)]:
        for purpose in ("credit", "marketing", "suitability"):
            want = {
                i
                for i, p, g, e, r in records
                if p == purpose
                and parse_time(g) <= at
                and all(not end or at < parse_time(end) for end in (e, r))
            }
            got = register.valid_ids(purpose, at)
            assert list(got) == sorted(got.tolist())  # sorted and distinct
            assert len(set(got.tolist())) == len(got)
            assert {v.decode() for v in got} == want, (purpose, at)


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
