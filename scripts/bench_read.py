"""Time a party's table check: pyarrow's streaming CSV reader against the Python one.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/bench_read.py [--rows 1000000] [--keep FILE] [--json OUT.json]

Writes a CSV of ``--rows`` rows and 20 columns like a credit table (an id, a 0/1 label,
three text categories with some empty cells, 15 numbers with about 3% empty cells), then
times :func:`lianmo.data.table.scan_checked` on it (the node's one checked pass, with the
categories declared and the default missing tokens) two ways:

* ``pyarrow``: as shipped: pyarrow's streaming CSV reader (C++, all columns as strings);
* ``python``: the same pass forced onto Python's ``csv`` module, the reader that names
  the line of an error (the one every pass used before issue 19, and the one a pass
  falls back to when it finds a problem).

Both must give the same ids, labels and vocabularies. Prints seconds and the ratio.
The machine has two cores: do not run it next to another benchmark. Not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from lianmo.data import load
from lianmo.data.table import TableScan, scan_checked

CATEGORIES = {
    "sex": ["female", "male"],
    "education": ["graduate school", "high school", "others", "university"],
    "pay_1": ["late 1m", "late 2m", "no use", "paid in full", "revolving"],
}
N_NUMBERS = 15


def write_table(path: Path, rows: int, seed: int = 2026) -> None:
    """A credit-like CSV of ``rows`` rows: id, label, 3 categories, 15 numbers."""
    rng = np.random.default_rng(seed)
    names = ["client_id", "default", *CATEGORIES, *(f"x{j}" for j in range(N_NUMBERS))]
    with path.open("w", encoding="utf-8") as out:
        out.write(",".join(names) + "\n")
        block = 100_000
        for lo in range(0, rows, block):
            n = min(block, rows - lo)
            columns = [np.char.add("C", np.arange(lo, lo + n).astype(str))]
            columns.append((rng.random(n) < 0.22).astype(int).astype(str))
            for words in CATEGORIES.values():
                texts = np.array(words)[rng.integers(0, len(words), n)]
                columns.append(np.where(rng.random(n) < 0.01, "", texts))
            for j in range(N_NUMBERS):
                values = np.round(rng.normal(1000 * (j + 1), 300, n), 2).astype(str)
                columns.append(np.where(rng.random(n) < 0.03, "", values))
            lines = [",".join(cells) for cells in zip(*columns, strict=True)]
            out.write("\n".join(lines) + "\n")


def timed_scan(path: Path, python_reader: bool) -> tuple[float, TableScan]:
    """Seconds of one checked pass over ``path``, and its scan."""
    original = getattr(load, "checked_pass")  # noqa: B009
    if python_reader:
        setattr(load, "checked_pass", lambda source, run: run(False))  # noqa: B010
    try:
        start = time.perf_counter()
        scan = scan_checked(
            path,
            id_column="client_id",
            label_column="default",
            task="binary",
            categorical=list(CATEGORIES),
        )
        return time.perf_counter() - start, scan
    finally:
        setattr(load, "checked_pass", original)  # noqa: B010


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write the table here and keep it")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "table.csv"
        write_table(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        fast_s, fast = timed_scan(path, python_reader=False)
        slow_s, slow = timed_scan(path, python_reader=True)
    assert fast.y is not None and slow.y is not None
    if not (
        np.array_equal(fast.ids, slow.ids)
        and np.array_equal(fast.y, slow.y)
        and fast.categories == slow.categories
    ):
        raise SystemExit("the two readers disagree")
    print(f"table: {args.rows} rows x 20 columns, {size_mb:.0f} MB of CSV")
    print(f"pyarrow reader: {fast_s:.2f} s")
    print(f"python reader:  {slow_s:.2f} s")
    print(f"ratio: {slow_s / fast_s:.1f}x faster")
    if args.json:
        figures = {"rows": args.rows, "mb": size_mb, "pyarrow_s": fast_s, "python_s": slow_s}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
