"""Tests for lianmo.data.table: loading, every DataError path, and the real breast data."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lianmo.data.coding import MAX_CATEGORIES
from lianmo.data.table import Table, check_binary_labels, load_table
from lianmo.errors import DataError

SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"

GOOD = "id,age,y,income\na,30,0,1.5\nb,41,1,2.5\nc,52,0,-3e2\n"


def _write(tmp_path: Path, text: str, name: str = "party.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_table_reads_ids_features_in_file_order_and_labels(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, GOOD)

    # Execute
    table = load_table(path, id_column="id", label_column="y", party="guest")

    # Assert
    assert table.ids == ("a", "b", "c")
    assert table.feature_names == ("age", "income")
    np.testing.assert_array_equal(table.X, [[30, 1.5], [41, 2.5], [52, -300]])
    assert table.X.dtype == np.float64
    assert table.y is not None
    np.testing.assert_array_equal(table.y, [0, 1, 0])
    assert table.source == str(path)
    assert len(table) == 3


def test_load_table_without_label_makes_every_other_column_a_feature(tmp_path: Path) -> None:
    table = load_table(_write(tmp_path, GOOD), id_column="id")
    assert table.y is None
    assert table.feature_names == ("age", "y", "income")


def test_load_table_strips_spaces_skips_blank_lines_and_a_bom(tmp_path: Path) -> None:
    text = "\ufeff\n id , x \n a , 1 \n\n b ,2\n\n"
    table = load_table(_write(tmp_path, text), id_column="id")
    assert table.ids == ("a", "b")
    assert table.feature_names == ("x",)
    np.testing.assert_array_equal(table.X, [[1], [2]])


def test_load_table_quoted_cells_may_contain_commas(tmp_path: Path) -> None:
    table = load_table(_write(tmp_path, 'id,x\n"a,1",3\n'), id_column="id")
    assert table.ids == ("a,1",)


def test_load_table_reads_gzip_by_suffix(tmp_path: Path) -> None:
    path = tmp_path / "party.csv.gz"
    path.write_bytes(gzip.compress(GOOD.encode("utf-8")))
    plain = load_table(_write(tmp_path, GOOD), id_column="id", label_column="y")
    packed = load_table(path, id_column="id", label_column="y")
    assert packed.ids == plain.ids
    np.testing.assert_array_equal(packed.X, plain.X)


def test_feature_columns_fix_the_order_and_ignore_extra_columns(tmp_path: Path) -> None:
    table = load_table(_write(tmp_path, GOOD), id_column="id", feature_columns=["income", "age"])
    assert table.feature_names == ("income", "age")
    np.testing.assert_array_equal(table.X[:, 0], [1.5, 2.5, -300])


def test_table_arrays_are_read_only(tmp_path: Path) -> None:
    table = load_table(_write(tmp_path, GOOD), id_column="id", label_column="y")
    with pytest.raises(ValueError, match="read-only"):
        table.X[0, 0] = 1.0


def test_select_keeps_the_given_order_and_index_of_maps_ids(tmp_path: Path) -> None:
    table = load_table(_write(tmp_path, GOOD), id_column="id", label_column="y")
    picked = table.select(np.array([2, 0]))
    assert picked.ids == ("c", "a")
    np.testing.assert_array_equal(picked.X, table.X[[2, 0]])
    assert picked.y is not None
    np.testing.assert_array_equal(picked.y, [0, 0])
    assert table.select(np.array([False, True, True])).ids == ("b", "c")
    assert table.index_of() == {"a": 0, "b": 1, "c": 2}


def test_table_rejects_inconsistent_shapes() -> None:
    with pytest.raises(DataError, match=r"X has shape \(2, 1\) but there are 3 ids"):
        Table(ids=("a", "b", "c"), X=np.zeros((2, 1)), feature_names=("x",), y=None, source="m")
    with pytest.raises(DataError, match=r"y has shape \(2,\) but there are 1 ids"):
        Table(ids=("a",), X=np.zeros((1, 1)), feature_names=("x",), y=np.zeros(2), source="m")


TEXT_ERRORS: list[tuple[str, str, dict[str, Any], str]] = [
    ("empty", "", {}, r"the file is empty; expected a header"),
    ("header_only", "id,x\n", {}, r"header but no data rows"),
    ("blank_only", "id,x\n\n\n", {}, r"header but no data rows"),
    ("blank_lines_only", "\n\n", {}, r"the file is empty"),
    ("id_is_label", "id,x\n1,2\n", {"label_column": "id"}, r"column 'id': named as both the id"),
    (
        "id_missing",
        "client_ID,x\n1,2\n",
        {"id_column": "client_id"},
        r"column 'client_id': id column not found; the file has columns client_ID, x\. "
        r"Did you mean 'client_ID'\?",
    ),
    ("id_missing_no_hint", "a,b\n1,2\n", {}, r"column 'id': id column not found; .*a, b\. Set"),
    (
        "label_missing",
        "id,x,label\n1,2,0\n",
        {"label_column": "y"},
        r"column 'y': label column not found",
    ),
    (
        "duplicate_id",
        "id,x\n7,1\n8,2\n7,3\n",
        {},
        r"column 'id', data row 3 \(line 4\): id '7' "
        r"already appears in data row 1; ids must be unique",
    ),
    (
        "duplicate_id_spaces",
        "id,x\n7,1\n 7 ,3\n",
        {},
        r"data row 2 .*already appears in data row 1",
    ),
    ("empty_id", "id,x\n1,1\n ,2\n", {}, r"column 'id', data row 2 \(line 3\): the id is empty"),
    (
        "short_row",
        "id,x,z\n1,1,1\n2,2\n",
        {},
        r"data row 2 \(line 3\): the row has 2 cells but "
        r"the header has 3 columns",
    ),
    ("long_row", "id,x\n1,1,9\n", {}, r"data row 1 \(line 2\): the row has 3 cells"),
    (
        "text_cell",
        "id,x\n1,1\n2,abc\n",
        {},
        r"column 'x', data row 2 \(line 3\): the cell is "
        r"'abc' but a number was expected",
    ),
    (
        "empty_cell",
        "id,x,z\n1,1,\n",
        {"missing_values": []},
        r"column 'z', data row 1 \(line 2\): the cell is empty",
    ),
    (
        "nan_cell",
        "id,x\n1,1\n2,NaN\n",
        {"missing_values": [""]},
        r"column 'x', data row 2 \(line 3\): the cell is "
        r"'NaN', which is not a finite number",
    ),
    (
        "na_not_a_token",
        "id,x\n1,1\n2,NA\n",
        {"missing_values": [""]},
        r"column 'x', data row 2 \(line 3\): the cell is 'NA' but a number was expected; if "
        r"the column holds categories, declare it: categorical = \[\"x\"\]",
    ),
    (
        "empty_label",
        "id,x,y\n1,,0\n2,2,\n",
        {"label_column": "y"},
        r"column 'y', data row 2 \(line 3\): the cell is empty but a number was expected",
    ),
    (
        "na_label",
        "id,x,y\n1,NA,NA\n",
        {"label_column": "y"},
        r"column 'y', data row 1 \(line 2\): the cell is 'NA' but a number was expected; fix",
    ),
    (
        "empty_category",
        "id,x\n1,a\n2,\n",
        {"categorical": ["x"], "missing_values": ["NA"]},
        r"column 'x', data row 2 \(line 3\): the cell is empty but a category was expected",
    ),
    (
        "categorical_absent",
        "id,x\n1,a\n",
        {"categorical": ["sex"]},
        r"column 'sex': declared categorical, but the file has no such column \(it has id, x\)",
    ),
    (
        "categorical_id",
        "id,x\n1,a\n",
        {"categorical": ["id"]},
        r"column 'id': the id or label column cannot be categorical",
    ),
    (
        "categorical_label",
        "id,x,y\n1,a,0\n",
        {"categorical": ["y"], "label_column": "y"},
        r"column 'y': the id or label column cannot be categorical",
    ),
    (
        "too_many_categories",
        "id,x,z\n" + "".join(f"{i},{i % 3},c{i}\n" for i in range(MAX_CATEGORIES + 5)),
        {"categorical": ["x", "z"]},
        rf"column 'z', data row {MAX_CATEGORIES + 1} \(line {MAX_CATEGORIES + 2}\): the column "
        rf"has more than {MAX_CATEGORIES} distinct values by this row \(its value .c1000. is "
        rf"the {MAX_CATEGORIES + 1}th\), so it looks like an id "
        r"or free text",
    ),
    ("inf_cell", "id,x\n1,-inf\n", {}, r"column 'x', data row 1 .*'-inf', which is not a finite"),
    ("bad_label", "id,x,y\n1,1,yes\n", {"label_column": "y"}, r"column 'y', data row 1 .*'yes'"),
    ("nan_label", "id,x,y\n1,1,0\n2,2,nan\n", {"label_column": "y"}, r"column 'y', data row 2"),
    ("first_bad_row_wins", "id,x,z\n1,1,q\n2,w,2\n", {}, r"column 'z', data row 1"),
    (
        "feature_missing",
        "id,x\n1,1\n",
        {"feature_columns": ["x", "x9"]},
        r"column 'x9': feature column required by the model is missing; the file has columns "
        r"id, x\. Provide a file with the training columns \(x, x9\)",
    ),
    ("feature_repeated", "id,x\n1,1\n", {"feature_columns": ["x", "x"]}, r"repeat a name"),
    ("feature_is_id", "id,x\n1,1\n", {"feature_columns": ["id"]}, r"column 'id': the id or label"),
    (
        "header_repeated",
        "id,x,x\n1,1,2\n",
        {},
        r"column 'x': the header names this column twice "
        r"\(columns 2 and 3\)",
    ),
    ("header_unnamed", "id,,x\n1,1,2\n", {}, r"header column 2 has no name"),
]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [case[1:] for case in TEXT_ERRORS],
    ids=[case[0] for case in TEXT_ERRORS],
)
def test_load_table_rejects_bad_files(
    tmp_path: Path, text: str, kwargs: dict[str, Any], message: str
) -> None:
    # Prepare
    path = _write(tmp_path, text)
    options: dict[str, Any] = {"id_column": "id", "party": "guest", **kwargs}

    # Execute
    with pytest.raises(DataError, match=message) as caught:
        load_table(path, **options)

    # Assert: every message starts by naming the party and the file.
    assert str(caught.value).startswith(f"party 'guest', file '{path}'")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, r"file not found; check the path"),
        ("folder.csv", "dir", r"cannot read the file"),
        ("plain.csv.gz", b"id,x\n1,2\n", r"cannot read the file .*gzip-compressed"),
        ("latin1.csv", "id,x\nJos\xe9,1\n".encode("latin-1"), r"cannot read the file .*UTF-8"),
    ],
)
def test_load_table_reports_unreadable_files(
    tmp_path: Path, name: str, content: bytes | str | None, message: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^party 'host', file '{path}': {message}"):
        load_table(path, id_column="id", party="host")


def test_messages_without_a_party_start_with_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    with pytest.raises(DataError, match=rf"^file '{path}': the file is empty"):
        load_table(path, id_column="id")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("0,1,2", r"data row 3 \(id 'c'\): label is 2 but binary classification expects 0 or 1"),
        ("0.5,1,0", r"data row 1 \(id 'a'\): label is 0.5"),
        ("0,0,0", r"every one of the 3 labels is 0; a binary model needs rows of both classes"),
        ("1,1,1", r"every one of the 3 labels is 1"),
    ],
)
def test_check_binary_labels_rejects_bad_labels(tmp_path: Path, labels: str, message: str) -> None:
    cells = zip("abc", labels.split(","), strict=True)
    rows = "".join(f"{row_id},{n},{value}\n" for n, (row_id, value) in enumerate(cells))
    table = load_table(_write(tmp_path, "id,x,y\n" + rows), id_column="id", label_column="y")
    with pytest.raises(DataError, match=rf"^party 'guest', file '.*party.csv'.*{message}"):
        check_binary_labels(table, party="guest")


def test_check_binary_labels_needs_labels_and_accepts_good_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    check_binary_labels(load_table(path, id_column="id", label_column="y"))
    with pytest.raises(DataError, match=r"no label column was loaded"):
        check_binary_labels(load_table(path, id_column="id"))


@pytest.mark.skipif(
    not (SHARED_DATA / "breast_hetero_guest.csv").is_file(),
    reason=f"shared data folder {SHARED_DATA} is not present in this checkout",
)
def test_load_real_breast_guest_file() -> None:
    table = load_table(
        SHARED_DATA / "breast_hetero_guest.csv", id_column="id", label_column="y", party="guest"
    )
    assert len(table) == 569
    assert table.feature_names == tuple(f"x{i}" for i in range(10))
    assert table.X.shape == (569, 10)
    check_binary_labels(table, party="guest")
