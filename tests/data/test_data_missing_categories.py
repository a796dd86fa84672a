"""Missing cells and categorical columns (issue 19): the raw credit files, Parquet, known
vocabularies, later passes of a scan, and the two CSV readers agreeing."""

from __future__ import annotations

import csv
import gzip
import re
import typing as t
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lianmo.config import DatasetEntry
from lianmo.crypto.drbg import Drbg
from lianmo.data import csv_reader, load, reader
from lianmo.data.coding import MAX_CATEGORIES
from lianmo.data.table import Table, load_table, scan_checked
from lianmo.errors import DataError
from lianmo.node import job_data
from lianmo.node.data_use import JobDataset
from lianmo.protocols.context import RoleContext

BROKER_CATEGORIES = ("sex", "education", "marriage")
PAY = tuple(f"pay_{i}" for i in range(1, 7))


def job_dataset(entry: DatasetEntry) -> JobDataset:
    """``entry`` as a job without purpose or consent register uses it."""
    return JobDataset.open(
        "broker", entry, None, as_of=datetime.now(UTC), rng=Drbg(bytes(32)), folder=Path(".")
    )


def _csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _parquet(tmp_path: Path, columns: dict[str, t.Any], name: str = "t.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(pa.table(columns), path, row_group_size=3)
    return path


def _column_texts(path: Path, name: str) -> list[str]:
    """A column's cells, stripped, read independently of lianmo with Python's csv."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [row[name].strip() for row in csv.DictReader(handle)]


def _decoded(table: Table, name: str) -> list[str]:
    """A categorical column of ``table`` back to its texts ('' where missing)."""
    codes = table.X[:, table.feature_names.index(name)]
    words = table.categories[name]
    return ["" if np.isnan(c) else words[int(c)] for c in codes]


@pytest.fixture
def python_reader_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pass reads CSV with the Python reader (the error reporter) alone."""
    monkeypatch.setattr(load, "checked_pass", lambda source, run: run(False))


@pytest.fixture
def pyarrow_reader_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any pass that would fall back to the Python reader fails the test instead."""

    def refuse(*args: object) -> t.NoReturn:
        raise AssertionError("the pass fell back to the Python reader")

    monkeypatch.setattr(reader, "csv_chunks", refuse)


# ---- the raw credit files -----------------------------------------------------------


@pytest.mark.usefixtures("pyarrow_reader_only")
def test_raw_broker_file_loads_with_its_categories_and_missing_cells(shared_data: Path) -> None:
    path = shared_data / "credit_broker_raw.csv"
    table = load_table(
        path,
        id_column="client_id",
        label_column="default_next_month",
        categorical=BROKER_CATEGORIES,
        party="broker",
    )
    assert len(table) == 27_000
    assert table.feature_names == ("limit_bal", "sex", "education", "marriage", "age")
    assert dict(table.categories) == {
        "sex": ("female", "male"),
        "education": ("graduate school", "high school", "others", "university"),
        "marriage": ("married", "others", "single"),
    }
    missing = dict(zip(table.feature_names, np.isnan(table.X).sum(axis=0).tolist(), strict=True))
    assert missing == {"limit_bal": 827, "sex": 0, "education": 308, "marriage": 49, "age": 0}
    for name in BROKER_CATEGORIES:  # every code stands for its own cell's text
        assert _decoded(table, name) == _column_texts(path, name)
    numeric = load_table(
        shared_data / "credit_broker.csv", id_column="client_id", label_column="default_next_month"
    )
    by_id = numeric.index_of()
    rows = np.array([by_id[i] for i in table.ids])
    age = table.feature_names.index("age")
    np.testing.assert_array_equal(table.X[:, age], numeric.X[rows, age])
    assert table.y is not None and numeric.y is not None
    np.testing.assert_array_equal(table.y, numeric.y[rows])


@pytest.mark.usefixtures("pyarrow_reader_only")
def test_raw_platform_file_loads_its_repayment_statuses_as_categories(shared_data: Path) -> None:
    path = shared_data / "credit_platform_raw.csv"
    table = load_table(path, id_column="client_id", categorical=PAY, party="platform")
    assert (len(table), len(table.feature_names)) == (28_000, 18)
    assert set(table.categories) == set(PAY)
    assert table.categories["pay_1"] == (
        *(f"late -{k}m" for k in (3, 4)),
        *(f"late {k}m" for k in range(1, 7)),
        "no use",
        "paid in full",
        "revolving",
    )
    share = np.isnan(table.X).mean(axis=0)
    older = [n for n in table.feature_names if n[-1] in "456"]
    assert len(older) == 9
    for name, value in zip(table.feature_names, share, strict=True):
        assert value == (pytest.approx(2796 / 28_000) if name in older else 0.0), name
    for name in PAY:
        assert _decoded(table, name) == _column_texts(path, name)


def test_both_csv_readers_give_identical_tables(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shared_data / "credit_platform_raw.csv"
    fast = load_table(path, id_column="client_id", categorical=PAY)
    monkeypatch.setattr(load, "checked_pass", lambda source, run: run(False))
    monkeypatch.setattr(reader, "CHUNK_CELLS", 5000)  # many chunks, categories met late
    slow = load_table(path, id_column="client_id", categorical=PAY)
    assert fast.ids == slow.ids and fast.categories == slow.categories
    np.testing.assert_array_equal(fast.X, slow.X)


def test_the_pyarrow_reader_codes_categories_met_in_later_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = ["delta", "alpha", "charlie", "bravo", "echo"]
    rows = [f"r{i},{words[min(i // 400, 4)]},{i % 7 or ''}" for i in range(2000)]
    path = _csv(tmp_path, "id,c,x\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(reader, "chunk_rows_for", lambda n: 20)  # blocks of 1 kB: many batches
    chunks = []
    original = csv_reader.ChunkPlan.chunk

    def count(self: t.Any, *args: t.Any) -> t.Any:
        chunks.append(args[0])
        return original(self, *args)

    monkeypatch.setattr(csv_reader.ChunkPlan, "chunk", count)
    monkeypatch.setattr(reader, "csv_chunks", None)  # no fallback
    table = load_table(path, id_column="id", categorical=["c"])
    assert len(chunks) > 10
    assert table.categories["c"] == tuple(sorted(words))
    assert _decoded(table, "c") == [words[min(i // 400, 4)] for i in range(2000)]
    assert np.isnan(table.X[:, 1]).sum() == len(range(0, 2000, 7))


# ---- missing tokens -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (None, [1.0, np.nan, np.nan, np.nan, np.nan, 5.0]),
        (["?"], "data row 2 (line 3): the cell is empty but a number was expected"),
        (["", "?", "NA", "null"], [1.0, np.nan, np.nan, np.nan, "NaN", 5.0]),
    ],
    ids=["default", "question-mark-only", "narrowed"],
)
def test_missing_tokens_are_the_data_sets_own(
    tmp_path: Path, tokens: list[str] | None, expected: list[object] | str
) -> None:
    path = _csv(tmp_path, "id,x\na,1\nb,\nc, NA \nd,null\ne,NaN\nf,5\n")
    options: dict[str, t.Any] = {} if tokens is None else {"missing_values": tokens}
    if isinstance(expected, str):
        with pytest.raises(DataError, match=re.escape(expected)):
            load_table(path, id_column="id", **options)
        return
    if "NaN" in expected:  # "NaN" is missing only when it is one of the tokens
        with pytest.raises(DataError, match=r"data row 5 \(line 6\): the cell is 'NaN', which"):
            load_table(path, id_column="id", **options)
        return
    table = load_table(path, id_column="id", **options)
    np.testing.assert_array_equal(table.X[:, 0], np.array(expected, dtype=float))


def test_labels_and_ids_are_never_missing(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,x,y\na,,1\nb,2,NA\n")
    with pytest.raises(DataError, match=r"column 'y', data row 2 \(line 3\): the cell is 'NA'"):
        load_table(path, id_column="id", label_column="y", party="broker")
    path = _csv(tmp_path, "id,x,y\na,,1\n,2,0\n")
    with pytest.raises(DataError, match=r"column 'id', data row 2 \(line 3\): the id is empty"):
        load_table(path, id_column="id", label_column="y", party="broker")


def test_text_in_a_column_not_declared_categorical_says_how_to_declare_it(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,sex,y\na,1,0\nb,female,1\n")
    with pytest.raises(DataError) as info:
        load_table(path, id_column="id", label_column="y", party="broker")
    fix = (
        "but a number was expected; if the column holds categories, declare it: categorical = "
        '["sex"] under [datasets.NAME] in the party config (or, if the text means unknown, add '
        "it to missing_values there); otherwise fix the cell, or drop the row or the column"
    )
    assert str(info.value) == (
        f"party 'broker', file '{path}', column 'sex', data row 2 (line 3): the cell is "
        f"'female' {fix}"
    )
    assert info.value.public_text("kyc") == (
        f"party 'broker', data set 'kyc', column 'sex', data row 2: the cell holds text {fix}"
    )


def test_infinity_stays_an_error_in_a_feature(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,x\na,\nb,inf\n")
    with pytest.raises(DataError) as info:
        load_table(path, id_column="id", party="p")
    assert str(info.value) == (
        f"party 'p', file '{path}', column 'x', data row 2 (line 3): the cell is 'inf', which is "
        "not a finite number; replace infinite values; write a missing value as an empty cell "
        "or one of the data set's missing_values"
    )


@pytest.mark.usefixtures("python_reader_only")
def test_the_category_limit_is_named_at_its_row_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "chunk_rows_for", lambda n: 7)
    rows = "".join(f"{i},v{i // 2}\n" for i in range(2 * MAX_CATEGORIES + 10))
    path = _csv(tmp_path, "id,x\n" + rows)
    with pytest.raises(DataError) as info:
        scan_checked(path, id_column="id", categorical=["x"], party="platform")
    row = 2 * MAX_CATEGORIES + 1  # the first row of the 1001st value
    assert info.value.row == row and info.value.column == "x"
    assert f"data row {row} (line {row + 1}): the column has more than {MAX_CATEGORIES}" in str(
        info.value
    )
    public = info.value.public_text("kyc")
    assert public is not None and "v1000" not in public and "drop the column, or bucket" in public


# ---- known vocabularies and later passes ----------------------------------------------


def test_known_categories_keep_their_codes_and_new_texts_are_appended_sorted(
    tmp_path: Path,
) -> None:
    path = _csv(tmp_path, "id,c,d\na,b,1\nb,z,2\nc,zz,3\nd,a,\ne,,5\n")
    table = load_table(path, id_column="id", categories={"c": ("z", "b")})
    assert table.categories == {"c": ("z", "b", "a", "zz")}
    np.testing.assert_array_equal(table.X[:, 0], [1, 0, 3, 2, np.nan])
    # the trained vocabulary says what is unseen: code >= its length
    assert (table.X[:, 0] >= 2).tolist() == [False, False, True, True, False]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_scans_later_passes_code_cells_as_the_first(tmp_path: Path, kind: str) -> None:
    columns = {
        "id": [f"r{i}" for i in range(8)],
        "c": ["m", "k", None, "m", "q", "k", "m", "NA"],
        "x": [1.5, None, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    }
    if kind == "csv":
        lines = [
            f"{i},{'' if c is None else c},{'' if x is None else x}"
            for i, c, x in zip(columns["id"], columns["c"], columns["x"], strict=True)
        ]
        path = _csv(tmp_path, "id,c,x\n" + "\n".join(lines) + "\n")
    else:
        path = _parquet(tmp_path, columns)
    scan = scan_checked(path, id_column="id", categorical=["c"], missing_values=["", "NA"])
    whole = load_table(path, id_column="id", categorical=["c"], missing_values=["", "NA"])
    assert scan.categories == whole.categories == {"c": ("k", "m", "q")}
    rows = np.array([7, 1, 4, 2])
    picked = scan.read_rows(rows)
    np.testing.assert_array_equal(picked.X, whole.X[rows])
    np.testing.assert_array_equal(picked.X, [[np.nan, 8], [0, np.nan], [2, 5], [np.nan, 3]])
    assert picked.categories == scan.categories
    np.testing.assert_array_equal(scan.spill_rows(rows, tmp_path / "s.f64"), whole.X[rows])
    np.testing.assert_array_equal(scan.map_rows(rows, lambda X: X[:, 0]), whole.X[rows, 0])


def test_a_category_the_first_pass_did_not_see_means_the_file_changed(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,c\na,x\nb,y\n")
    scan = scan_checked(path, id_column="id", categorical=["c"])
    path.write_text("id,c\na,x\nb,w\n", encoding="utf-8")
    with pytest.raises(DataError, match="the file changed while the job was reading it"):
        scan.read_rows(np.array([0]))


# ---- Parquet ------------------------------------------------------------------------


def test_parquet_nulls_are_missing_and_declared_columns_are_categories(tmp_path: Path) -> None:
    path = _parquet(
        tmp_path,
        {
            "id": ["a", "b", "c", "d"],
            "x": [1.0, None, float("nan"), 4.0],
            "city": pa.array(["rome", None, "oslo", "rome"]).dictionary_encode(),
            "grade": pa.array([2, 10, None, 1], pa.int64()),
            "score": [1.0, 2.5, 1.0, None],
            "y": [0, 1, 0, 1],
        },
    )
    table = load_table(
        path, id_column="id", label_column="y", categorical=["city", "grade", "score"]
    )
    assert dict(table.categories) == {
        "city": ("oslo", "rome"),
        "grade": ("1", "10", "2"),  # the values' texts, sorted as texts
        "score": ("1", "2.5"),  # 1.0 reads as "1"
    }
    np.testing.assert_array_equal(
        table.X,
        [[1, 1, 2, 0], [np.nan, np.nan, 1, 1], [np.nan, 0, np.nan, 0], [4, 1, 0, np.nan]],
    )


def test_a_parquet_string_column_not_declared_categorical_says_how_to_declare_it(
    tmp_path: Path,
) -> None:
    path = _parquet(tmp_path, {"id": ["a"], "city": pa.array(["rome"]).dictionary_encode()})
    with pytest.raises(DataError) as info:
        scan_checked(path, id_column="id", party="platform")
    assert info.value.public_text("kyc") == (
        "party 'platform', data set 'kyc', column 'city': the column has type "
        "dictionary<values=string, indices=int32, ordered=0>, but features and labels must be "
        'numbers; if it holds categories, declare it: categorical = ["city"] under '
        "[datasets.NAME] in the party config; otherwise convert or drop the column"
    )


def test_parquet_nulls_with_no_missing_tokens_are_refused(tmp_path: Path) -> None:
    path = _parquet(tmp_path, {"id": ["a", "b"], "c": ["u", None]})
    with pytest.raises(DataError, match=r"column 'c', data row 2: the cell is empty \(null\)"):
        scan_checked(path, id_column="id", categorical=["c"], missing_values=[])


# ---- the node passes the catalogue entry's options ------------------------------------


def test_the_node_reads_with_the_catalogue_entrys_options(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,c,x,y\na,u,?,0\nb,v,2,1\n")
    entry = DatasetEntry("d", path, "id", "y", categorical=("c",), missing_values=("?",))
    ctx = t.cast(RoleContext, type("Ctx", (), {"party": "broker"})())
    scan = job_data.load(ctx, "guest", job_dataset(entry), training=True)
    assert scan.categories == {"c": ("u", "v")}
    np.testing.assert_array_equal(scan.read_rows(np.array([0, 1])).X, [[0, np.nan], [1, 2]])
    known = job_data.load(
        ctx, "guest", job_dataset(entry), training=False, categories={"c": ("v",)}
    )
    np.testing.assert_array_equal(known.read_rows(np.array([0, 1])).X[:, 0], [1, 0])
    plain = DatasetEntry("d", path, "id", "y", missing_values=("?",))
    with pytest.raises(DataError, match=r'categorical = \["c"\]'):
        job_data.load(ctx, "guest", job_dataset(plain), training=True)


# ---- the pyarrow reader reads what the Python reader reads -----------------------------


@pytest.mark.usefixtures("pyarrow_reader_only")
@pytest.mark.parametrize(
    ("name", "raw", "ids", "X"),
    [
        ("bom.csv", "\ufeff\n id , x \n a , 1 \n\n b ,2\n\n".encode(), ("a", "b"), [[1], [2]]),
        ("quoted.csv", b'id,x\n"a,1",3\n"b",NA\n', ("a,1", "b"), [[3], [np.nan]]),
        ("packed.csv.gz", gzip.compress(b"id,x\nc1,0.5\nc2,\n"), ("c1", "c2"), [[0.5], [np.nan]]),
    ],
)
def test_the_pyarrow_reader_takes_bom_blank_lines_quotes_and_gzip(
    tmp_path: Path, name: str, raw: bytes, ids: tuple[str, ...], X: list[list[float]]
) -> None:
    path = tmp_path / name
    path.write_bytes(raw)
    table = load_table(path, id_column="id")
    assert table.ids == ids and table.feature_names == ("x",)
    np.testing.assert_array_equal(table.X, X)
