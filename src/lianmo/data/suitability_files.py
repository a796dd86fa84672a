"""The suitability step's files at the guest: class probabilities, products, holdings, matches.

Inputs (CSV with a header row, UTF-8, optionally gzipped as ``.csv.gz``):

- class probabilities: ``id,p_0,..,p_K-1[,class]`` as a multi-class scoring job writes
  them (``scores.csv`` in the guest's job folder); ``p_k`` is the probability of level
  ``C(k+1)``;
- products: ``product_id,risk_level`` with levels ``R1``..``R5``; ids unique;
- holdings: ``customer_id,product_id``, one line per product a customer holds; every
  product must be in the product table.

Output: ``customer_id,level,confidence,eligible,flagged``, the product lists joined by
``;`` (so a product id may not contain ``;``).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from lianmo.errors import DataError
from lianmo.fileio import write_atomic
from lianmo.models.suitability import MAX_LEVEL, Match, Product

LIST_SEPARATOR = ";"


def _table(
    path: Path, expected: Sequence[str], what: str
) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header (which must start with ``expected``) and (line number, cells) of each
    data line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} file ({exc.strerror})") from exc
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: the {what} file is not UTF-8 text; save it as UTF-8") from exc
    reader = csv.reader(io.StringIO(text))
    header = [c.strip() for c in next(reader, [])]
    if header[: len(expected)] != list(expected):
        raise DataError(
            f"{path}: the {what} file's header is {','.join(header) or '(empty)'}; "
            f"expected it to start with {','.join(expected)}"
        )

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, cells in enumerate(reader, start=2):
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise DataError(
                    f"{path} line {number}: {len(cells)} cells, the header has "
                    f"{len(header)}; fix the line's commas"
                )
            yield number, [c.strip() for c in cells]

    return header, rows()


def _product_id(path: Path, line: int, text: str, column: str) -> str:
    if not text or LIST_SEPARATOR in text:
        problem = "is empty" if not text else f"contains '{LIST_SEPARATOR}'"
        raise DataError(f"{path} line {line}: the {column} {problem}; give every product an id")
    return text


def read_products(path: Path) -> list[Product]:
    """The product table, in file order.

    Raises
    ------
    DataError
        Naming the file and line: a bad header, an empty or repeated product id, or a
        risk level that is not R1..R5.
    """
    products: dict[str, Product] = {}
    for line, cells in _table(path, ("product_id", "risk_level"), "product")[1]:
        pid = _product_id(path, line, cells[0], "product_id")
        level = cells[1].upper()
        if len(level) != 2 or level[0] != "R" or not "1" <= level[1] <= str(MAX_LEVEL):
            raise DataError(
                f"{path} line {line}: risk level '{cells[1]}' of product '{pid}' is not one of "
                f"R1..R{MAX_LEVEL}; write the product's risk level as R1 to R{MAX_LEVEL}"
            )
        if pid in products:
            raise DataError(
                f"{path} line {line}: product '{pid}' appears twice; keep one line per product"
            )
        products[pid] = Product(pid, int(level[1]))
    if not products:
        raise DataError(f"{path}: the product table has no products")
    return list(products.values())


def read_holdings(path: Path, products: Sequence[Product]) -> dict[str, list[str]]:
    """customer id -> the product ids it holds (a repeated line counts once).

    Raises
    ------
    DataError
        Naming the file and line: a bad header, an empty customer or product id, or a
        product that is not in the product table.
    """
    known = {p.product_id for p in products}
    held: dict[str, list[str]] = {}
    for line, cells in _table(path, ("customer_id", "product_id"), "holdings")[1]:
        customer, pid = cells[0], _product_id(path, line, cells[1], "product_id")
        if not customer:
            raise DataError(
                f"{path} line {line}: the customer_id is empty; every holding needs one"
            )
        if pid not in known:
            raise DataError(
                f"{path} line {line}: product '{pid}' is not in the product table; add it "
                "there with its risk level, or remove the holding"
            )
        if pid not in held.setdefault(customer, []):
            held[customer].append(pid)
    return held


def read_probabilities(path: Path) -> tuple[list[str], np.ndarray]:
    """Customer ids and their class probabilities (``n x K``) from a scoring job's file.

    Raises
    ------
    DataError
        Naming the file and line: no ``p_0..`` columns, more than five classes, a cell that
        is not a probability, or a repeated id.
    """
    header, lines = _table(path, ("id", "p_0"), "class probabilities")
    columns = _probability_columns(path, header)
    ids: list[str] = []
    rows: list[list[float]] = []
    seen: set[str] = set()
    for line, cells in lines:
        try:
            values = [float(c) for c in cells[1 : 1 + columns]]
        except ValueError:
            values = []
        if len(values) != columns or not all(0.0 <= v <= 1.0 for v in values):
            raise DataError(
                f"{path} line {line}: expected {columns} probabilities between 0 and 1 after "
                "the id; use the scores.csv a multi-class scoring job wrote"
            )
        if cells[0] in seen:
            raise DataError(f"{path} line {line}: the id appears twice; keep one line per id")
        seen.add(cells[0])
        ids.append(cells[0])
        rows.append(values)
    return ids, np.array(rows, dtype=np.float64).reshape(len(rows), columns)


def _probability_columns(path: Path, header: Sequence[str]) -> int:
    count = 0
    while count + 1 < len(header) and header[count + 1] == f"p_{count}":
        count += 1
    if count > MAX_LEVEL:
        raise DataError(
            f"{path}: {count} classes, but customer levels run C1..C{MAX_LEVEL}; "
            "train the model with at most five classes"
        )
    return count


def write_matches(path: Path, matches: Sequence[Match]) -> None:
    """``customer_id,level,confidence,eligible,flagged`` per customer (atomic)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["customer_id", "level", "confidence", "eligible", "flagged"])
    for m in matches:
        writer.writerow(
            [
                m.customer_id,
                f"C{m.level}",
                f"{m.confidence:.6f}",
                LIST_SEPARATOR.join(m.eligible),
                LIST_SEPARATOR.join(m.flagged),
            ]
        )
    write_atomic(path, out.getvalue().encode("utf-8"))
