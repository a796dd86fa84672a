"""Tests for lianmo.demo_data: the shipped credit files and demo_file()."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from lianmo.data.table import check_binary_labels, load_table
from lianmo.demo_data import demo_file

SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"


@pytest.mark.parametrize(
    ("name", "label", "n_rows", "n_features"),
    [
        ("credit_broker.csv.gz", "default_next_month", 27_000, 5),
        ("credit_platform.csv.gz", None, 28_000, 18),
    ],
)
def test_demo_files_load(name: str, label: str | None, n_rows: int, n_features: int) -> None:
    table = load_table(demo_file(name), id_column="client_id", label_column=label)
    assert table.X.shape == (n_rows, n_features)
    if label is not None:
        check_binary_labels(table)


@pytest.mark.parametrize("stem", ["credit_broker", "credit_platform"])
def test_demo_files_are_the_shared_csv_unchanged(stem: str) -> None:
    original = SHARED_DATA / f"{stem}.csv"
    if not original.is_file():
        pytest.skip(f"shared data folder {SHARED_DATA} is not present in this checkout")
    packed = demo_file(f"{stem}.csv.gz").read_bytes()
    assert gzip.decompress(packed) == original.read_bytes()
    # Reproducible bytes: compresslevel 9 and a zero timestamp in the gzip header.
    assert packed[4:8] == b"\x00\x00\x00\x00"


@pytest.mark.parametrize("name", ["credit.csv.gz", "../errors.py", "__init__.py/..", ""])
def test_demo_file_names_the_available_files_when_missing(name: str) -> None:
    with pytest.raises(FileNotFoundError, match=r"available: credit_broker.csv.gz, credit_pl"):
        demo_file(name)
