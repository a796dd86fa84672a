"""The suitability step's files: good ones read back, bad ones name file, line and fix."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from lianmo.data.suitability_files import (
    read_holdings,
    read_probabilities,
    read_products,
    write_matches,
)
from lianmo.errors import DataError
from lianmo.models.suitability import Match, Product


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_good_files_read_back(tmp_path: Path) -> None:
    products = read_products(_write(tmp_path / "p.csv", "product_id,risk_level\nA,R1\nB, r4 \n"))
    assert products == [Product("A", 1), Product("B", 4)]
    held = read_holdings(
        _write(tmp_path / "h.csv", "customer_id,product_id\n7,B\n7,A\n7,B\n\n8,A\n"), products
    )
    assert held == {"7": ["B", "A"], "8": ["A"]}
    raw = b"id,p_0,p_1,p_2,class\n1,0.1,0.2,0.7,2\n2,0.5,0.5,0,0\n"
    (tmp_path / "s.csv.gz").write_bytes(gzip.compress(raw))
    ids, p = read_probabilities(tmp_path / "s.csv.gz")
    assert ids == ["1", "2"]
    np.testing.assert_array_equal(p, [[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,level\nA,R1\n", r"p\.csv: the product file's header is id,level; expected"),
        ("product_id,risk_level\nA,R6\n", r"line 2: risk level 'R6' of product 'A' is not one"),
        ("product_id,risk_level\nA,3\n", r"line 2: risk level '3' .* write the product's risk"),
        ("product_id,risk_level\nA,R1\nA,R2\n", r"line 3: product 'A' appears twice"),
        ("product_id,risk_level\n,R1\n", r"line 2: the product_id is empty"),
        ("product_id,risk_level\nA;B,R1\n", r"line 2: the product_id contains ';'"),
        ("product_id,risk_level\nA,R1,x\n", r"line 2: 3 cells, the header has 2"),
        ("product_id,risk_level\n", r"the product table has no products"),
    ],
)
def test_bad_product_tables_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_products(_write(tmp_path / "p.csv", text))


def test_bad_holdings_and_probabilities_are_refused(tmp_path: Path) -> None:
    products = [Product("A", 1)]
    with pytest.raises(DataError, match=r"h\.csv line 3: product 'Z' is not in the product table"):
        read_holdings(_write(tmp_path / "h.csv", "customer_id,product_id\n1,A\n2,Z\n"), products)
    with pytest.raises(DataError, match=r"line 2: the customer_id is empty"):
        read_holdings(_write(tmp_path / "h.csv", "customer_id,product_id\n,A\n"), products)
    with pytest.raises(DataError, match=r"line 2: expected 2 probabilities between 0 and 1"):
        read_probabilities(_write(tmp_path / "s.csv", "id,p_0,p_1\n1,0.5,abc\n"))
    with pytest.raises(DataError, match=r"line 3: the id appears twice"):
        read_probabilities(_write(tmp_path / "s.csv", "id,p_0,p_1\n1,0.5,0.5\n1,0.5,0.5\n"))
    six = "id," + ",".join(f"p_{k}" for k in range(6)) + "\n"
    with pytest.raises(DataError, match="6 classes, but customer levels run C1..C5"):
        read_probabilities(_write(tmp_path / "s.csv", six))
    with pytest.raises(DataError, match="cannot read the holdings file"):
        read_holdings(tmp_path / "missing.csv", products)


def test_matches_are_written_one_line_per_customer(tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    write_matches(out, [Match("1", 3, 0.8123456, ("A", "B"), ("C",)), Match("2", 1, 1.0, (), ())])
    assert out.read_text().splitlines() == [
        "customer_id,level,confidence,eligible,flagged",
        "1,C3,0.812346,A;B,C",
        "2,C1,1.000000,,",
    ]
