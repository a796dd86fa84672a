"""The per-column profile `lianmo data check` prints: counts, ranges and flags, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lianmo.data.profile import ALMOST_ALL_MISSING, MIN_ROWS_UNIQUE, Profiler, profile
from lianmo.data.table import Table

NAN = np.nan
N = 40  # rows: at least MIN_ROWS_UNIQUE, so unique columns are judged


def _table(columns: dict[str, list[float]], categories: dict[str, tuple[str, ...]]) -> Table:
    X = np.column_stack([np.asarray(v, dtype=np.float64) for v in columns.values()])
    ids = [f"r{i}" for i in range(len(X))]
    return Table(ids, X, tuple(columns), None, "crafted.csv", categories=categories)


def _crafted() -> Table:
    rng = np.random.default_rng(0)
    mostly_missing = [NAN] * N
    mostly_missing[:2] = [1.0, 3.0]  # 38 of 40 missing: 95%
    some_missing = [float(i % 7) for i in range(N)]
    some_missing[5] = some_missing[9] = NAN
    columns = {
        "amount": list(rng.normal(100, 10, N)),  # unique per row, but not whole numbers
        "customer_no": [float(1000 + 3 * i) for i in range(N)],  # an id in disguise
        "flat": [2.5] * N,
        "gone": [NAN] * N,
        "mostly_missing": mostly_missing,
        "months": some_missing,
        "sex": [float(i % 2) for i in range(N)],  # category codes
        "branch": [0.0] * N,  # a category with one value
        "account": [float(i) for i in range(N)],  # a category per row: an id in disguise
        "region": [NAN if i % 4 == 0 else float(i % 3) for i in range(N)],
    }
    categories = {
        "sex": ("F", "M"),
        "branch": ("Shanghai",),
        "account": tuple(f"acc-{i:03d}" for i in range(N)),
        "region": ("east", "north", "west"),
    }
    return _table(columns, categories)


def test_each_flag_on_a_crafted_table() -> None:
    flags = {p.name: p.flags for p in profile(_crafted())}
    assert flags == {
        "amount": (),
        "customer_no": ("unique per row",),
        "flat": ("constant",),
        "gone": ("constant", "almost all missing"),
        "mostly_missing": ("almost all missing",),
        "months": (),
        "sex": (),
        "branch": ("constant",),
        "account": ("unique per row",),
        "region": (),
    }
    assert ALMOST_ALL_MISSING == 0.95


def test_numbers_and_categories_are_described_by_hand_computed_counts() -> None:
    by_name = {p.name: p for p in profile(_crafted())}
    months = by_name["months"]
    present = [float(i % 7) for i in range(N) if i not in (5, 9)]
    assert (months.kind, months.rows, months.missing, months.distinct) == ("number", N, 2, None)
    assert months.missing_share == pytest.approx(2 / N)
    assert (months.minimum, months.maximum) == (0.0, 6.0)
    assert months.mean == pytest.approx(sum(present) / len(present))
    region = by_name["region"]
    assert (region.kind, region.missing, region.distinct) == ("category", 10, 3)
    assert (region.minimum, region.maximum, region.mean) == (None, None, None)
    assert by_name["gone"].mean is None and by_name["gone"].missing_share == 1.0
    assert by_name["account"].distinct == N


def test_no_category_value_is_in_a_profile() -> None:
    table = _crafted()
    text = repr(profile(table)) + repr([p.to_json() for p in profile(table)])
    for names in table.categories.values():
        assert not any(name in text for name in names)


def test_a_constant_column_with_missing_cells_is_not_constant() -> None:
    # missingness alone may carry signal (a tree learns where missing goes)
    values = [NAN if i % 2 else 4.0 for i in range(N)]
    (column,) = profile(_table({"x": values}, {}))
    assert column.flags == ()


def test_a_repeat_in_a_later_block_is_no_longer_unique() -> None:
    whole = np.arange(N, dtype=np.float64).reshape(-1, 1)
    repeated = whole.copy()
    repeated[-1, 0] = 3.0  # the value of row 3, in another block
    for X, flags in ((whole, ("unique per row",)), (repeated, ())):
        profiler = Profiler(["n"], {})
        for block in np.array_split(X, 4):
            profiler.add(block)
        assert profiler.result()[0].flags == flags


def test_small_tables_are_not_judged_for_uniqueness() -> None:
    values = [float(i) for i in range(MIN_ROWS_UNIQUE - 1)]
    (column,) = profile(_table({"n": values}, {}))
    assert column.flags == ()
    (column,) = profile(_table({"n": [*values, 99.0]}, {}))
    assert column.flags == ("unique per row",)


def test_blocks_give_the_same_profile_as_the_whole_table() -> None:
    table = _crafted()
    profiler = Profiler(table.feature_names, table.categories)
    for block in np.array_split(np.asarray(table.X), 7):
        profiler.add(block)
    assert profiler.result() == profile(table)
