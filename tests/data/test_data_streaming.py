"""Chunked reading (CSV and Parquet) and TableScan: the same rows and errors as a whole read.

Chunks are made tiny here (a few rows) so every check crosses chunk boundaries; the
real data sets are read both ways and must give identical tables.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lianmo.data import reader
from lianmo.data.rows import Rows
from lianmo.data.table import load_table, scan_checked
from lianmo.errors import DataError

SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """3 rows per chunk for a 3-column table (chunk_rows_for's floor lowered to 1)."""
    monkeypatch.setattr(reader, "CHUNK_CELLS", 9)
    monkeypatch.setattr(reader, "chunk_rows_for", lambda n: max(1, 9 // max(1, n)))


def _csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _parquet(tmp_path: Path, columns: dict[str, list[object]], name: str = "t.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(pa.table(columns), path, row_group_size=4)
    return path


def _rows(n: int) -> dict[str, list[object]]:
    return {
        "id": [f"c{i:03d}" for i in range(n)],
        "x": [i / 4 for i in range(n)],
        "y": [i % 2 for i in range(n)],
    }


def _as_csv(tmp_path: Path, columns: dict[str, list[object]]) -> Path:
    names = list(columns)
    lines = [",".join(names)]
    lines += [",".join(str(columns[c][r]) for c in names) for r in range(len(columns["id"]))]
    return _csv(tmp_path, "\n".join(lines) + "\n")


@pytest.mark.usefixtures("tiny_chunks")
def test_parquet_and_chunked_csv_give_the_same_table(tmp_path: Path) -> None:
    columns = _rows(11)
    from_csv = load_table(_as_csv(tmp_path, columns), id_column="id", label_column="y")
    from_parquet = load_table(_parquet(tmp_path, columns), id_column="id", label_column="y")
    assert from_csv.ids == from_parquet.ids == tuple(columns["id"])
    np.testing.assert_array_equal(from_csv.X, from_parquet.X)
    np.testing.assert_array_equal(from_csv.X[:, 0], columns["x"])
    assert from_csv.y is not None and from_parquet.y is not None
    np.testing.assert_array_equal(from_csv.y, from_parquet.y)


def test_chunks_cover_every_row_once_in_order(tmp_path: Path) -> None:
    path = _as_csv(tmp_path, _rows(10))
    header = reader.read_header(str(path), "p")
    chunks = list(
        reader.iter_chunks(str(path), header, id_index=0, numeric=[1], party="p", chunk_rows=4)
    )
    assert [c.start for c in chunks] == [0, 4, 8]
    assert [len(c.ids) for c in chunks] == [4, 4, 2]
    assert chunks[1].lines is not None and chunks[1].lines.tolist() == [6, 7, 8, 9]


@pytest.mark.usefixtures("tiny_chunks")
def test_a_duplicate_id_in_another_chunk_is_named_with_both_rows(tmp_path: Path) -> None:
    text = "id,x,y\na,1,0\nb,2,1\nc,3,0\nd,4,1\nb,5,0\nb,6,1\n"
    path = _csv(tmp_path, text)
    with pytest.raises(DataError) as info:
        scan_checked(path, id_column="id", label_column="y", party="broker")
    assert str(info.value) == (
        f"party 'broker', file '{path}', column 'id', data row 5 (line 6): id 'b' already "
        "appears in data row 2; ids must be unique, so remove or merge the duplicate rows"
    )


@pytest.mark.usefixtures("tiny_chunks")
def test_a_bad_cell_in_a_later_chunk_names_its_row_and_line(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,x,y\na,1,0\nb,2,1\nc,3,0\n\nd,oops,1\n")
    with pytest.raises(DataError, match=r"column 'x', data row 4 \(line 6\): the cell is 'oops'"):
        scan_checked(path, id_column="id", label_column="y")


@pytest.mark.usefixtures("tiny_chunks")
def test_scan_keeps_ids_and_labels_and_reads_chosen_rows_later(tmp_path: Path) -> None:
    columns = _rows(10)
    for path in (_as_csv(tmp_path, columns), _parquet(tmp_path, columns)):
        whole = load_table(path, id_column="id", label_column="y")
        scan = scan_checked(path, id_column="id", label_column="y", task="binary")
        assert len(scan) == 10 and not hasattr(scan, "X")
        assert scan.ids.dtype.kind == "S" and scan.id_at(3) == "c003"
        rows = np.array([7, 0, 4, 9, 3])
        chosen = scan.read_rows(rows)
        picked = whole.select(rows)
        assert chosen.ids == picked.ids == scan.ids_at(rows) == whole.ids_at(rows)
        assert isinstance(scan, Rows) and isinstance(whole, Rows)
        assert scan.y is not None and not scan.y.flags.writeable
        np.testing.assert_array_equal(chosen.X, picked.X)
        assert chosen.y is not None and picked.y is not None
        np.testing.assert_array_equal(chosen.y, picked.y)
        doubled = scan.map_rows(rows, lambda X: 2 * X[:, 0])
        np.testing.assert_array_equal(doubled, 2 * picked.X[:, 0])
        spill = tmp_path / f"{path.suffix}.f64"
        spilled = scan.spill_rows(rows, spill)
        np.testing.assert_array_equal(spilled, picked.X)
        assert isinstance(spilled, np.memmap) and not spilled.flags.writeable
        assert spill.stat().st_mode & 0o777 == 0o600
        assert scan.spill_rows(rows[:0], tmp_path / "none.f64").shape == (0, 1)


@pytest.mark.usefixtures("tiny_chunks")
def test_reading_rows_of_a_file_that_changed_since_the_scan_fails(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,x\na,1\nb,2\nc,3\nd,4\n")
    scan = scan_checked(path, id_column="id")
    path.write_text("id,x\na,1\nb,2\nc,3\nz,4\n", encoding="utf-8")
    scan.read_rows(np.array([0, 2]))  # rows that did not change still read
    with pytest.raises(DataError, match="the file changed while the job was reading it"):
        scan.read_rows(np.array([3]))
    with pytest.raises(DataError, match="the file changed while the job was reading it"):
        scan.spill_rows(np.array([3, 0]), tmp_path / "spill.f64")
    assert not (tmp_path / "spill.f64").exists()
    path.write_text("id,x\na,1\nb,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="the file changed while the job was reading it"):
        scan.read_rows(np.array([0]))


def test_scan_checks_labels_for_the_task(tmp_path: Path) -> None:
    path = _parquet(tmp_path, {"id": ["a", "b"], "x": [1.0, 2.0], "y": [0, 2]})
    with pytest.raises(DataError, match=r"data row 2 \(id 'b'\): label is 2 but binary"):
        scan_checked(path, id_column="id", label_column="y", task="binary")


def test_parquet_integer_ids_become_their_decimal_strings(tmp_path: Path) -> None:
    path = _parquet(tmp_path, {"id": [10, 2, 33], "x": [1, 2, 3]})
    table = load_table(path, id_column="id")
    assert table.ids == ("10", "2", "33")
    np.testing.assert_array_equal(table.X[:, 0], [1, 2, 3])


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"id": ["a", "b"], "x": ["1", "2"]},
            "column 'x': the column has type string, but features and labels must be numbers",
        ),
        ({"id": [1.5, 2.5], "x": [1, 2]}, "column 'id': the id column has type double"),
        ({"id": ["a", None], "x": [1, 2]}, "column 'id', data row 2: the id is empty"),
        ({"id": ["a", " "], "x": [1, 2]}, "column 'id', data row 2: the id is empty"),
        (
            {"id": ["a", "b", "c"], "x": [1.0, None, 3.0]},
            "column 'x', data row 2: the cell is empty \\(null\\)",
        ),
        (
            {"id": ["a", "b"], "x": [1.0, float("nan")]},
            "column 'x', data row 2: the cell is 'nan', which is not a finite number",
        ),
        (
            {"id": ["a", "a"], "x": [1, 2]},
            "column 'id', data row 2: id 'a' already appears in data row 1",
        ),
    ],
)
def test_bad_parquet_files_name_party_file_column_and_row(
    tmp_path: Path, columns: dict[str, list[object]], message: str
) -> None:
    path = _parquet(tmp_path, columns)
    prefix = re.escape(f"party 'platform', file '{path}', ")
    with pytest.raises(DataError, match=f"^{prefix}{message}"):
        scan_checked(path, id_column="id", party="platform", missing_values=[])


def test_unreadable_parquet_files(tmp_path: Path) -> None:
    missing = tmp_path / "none.parquet"
    with pytest.raises(DataError, match="file not found; check the path in the party config"):
        scan_checked(missing, id_column="id")
    corrupt = tmp_path / "bad.parquet"
    corrupt.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(DataError, match="cannot read the Parquet file"):
        scan_checked(corrupt, id_column="id")
    empty = _parquet(tmp_path, {"id": pa.array([], pa.string()), "x": pa.array([], pa.float64())})
    with pytest.raises(DataError, match="the file has a header but no data rows"):
        scan_checked(empty, id_column="id")


def test_an_id_with_a_nul_character_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,x\na\x00,1\n")
    with pytest.raises(DataError, match="data row 1 \\(line 2\\): the id holds a NUL character"):
        scan_checked(path, id_column="id")


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_real_data_set_reads_the_same_whole_chunked_and_as_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = SHARED_DATA / "default_credit_hetero_guest.csv"
    whole = load_table(source, id_column="id", label_column="y")
    pq.write_table(
        pa.table(
            {
                "id": list(whole.ids),
                "y": whole.y,
                **{name: whole.X[:, j] for j, name in enumerate(whole.feature_names)},
            }
        ),
        tmp_path / "guest.parquet",
    )
    monkeypatch.setattr(reader, "CHUNK_CELLS", 1000)
    chunked = load_table(source, id_column="id", label_column="y")
    from_parquet = load_table(tmp_path / "guest.parquet", id_column="id", label_column="y")
    for other in (chunked, from_parquet):
        assert other.ids == whole.ids
        assert other.feature_names == whole.feature_names
        np.testing.assert_array_equal(other.X, whole.X)
        assert other.y is not None and whole.y is not None
        np.testing.assert_array_equal(other.y, whole.y)
