"""Split candidates of one feature at a node: the scan order and the missing side."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lianmo.models.split_candidates import numeric_candidates, numeric_left_cells


def _partition(count: np.ndarray, missing: int, b: int, missing_left: bool) -> tuple[int, int]:
    left = int(count[: b + 1].sum()) + (missing if missing_left else 0)
    return left, int(count.sum()) + missing - left


def test_missing_right_then_missing_left_each_by_bin() -> None:
    found = numeric_candidates(np.array([3, 0, 2, 4]), missing=5)
    # right: b=0, 2 (bin 1 is empty: it would repeat b=0), 3 ("all values left")
    # left: b=0, 2 (b=3 would leave nothing on the right; "only missing left" repeats b=3)
    assert found.bins.tolist() == [0, 2, 3, 0, 2]
    assert found.missing_left.tolist() == [False, False, False, True, True]
    hist = np.array([[1, 10], [0, 0], [2, 20], [3, 30], [100, 1000]])
    np.testing.assert_array_equal(
        found.left_sums(hist, 4), [[1, 10], [3, 30], [6, 60], [101, 1010], [103, 1030]]
    )
    cells = numeric_left_cells(2, True, 4, 6)
    assert cells.tolist() == [True, True, True, False, True, False]


def test_without_missing_rows_only_missing_right_as_before() -> None:
    found = numeric_candidates(np.array([0, 3, 0, 2]), missing=0)
    assert found.bins.tolist() == [1] and not found.missing_left.any()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=8), st.integers(0, 3))
def test_every_distinct_partition_appears_once_with_both_sides_filled(
    count_list: list[int], missing: int
) -> None:
    count = np.array(count_list)
    found = numeric_candidates(count, missing)
    seen = set()
    for b, ml in zip(found.bins, found.missing_left, strict=True):
        left, right = _partition(count, missing, int(b), bool(ml))
        assert left > 0 and right > 0
        key = (int(count[: b + 1].sum()), bool(ml and missing))
        assert key not in seen
        seen.add(key)
    # every partition "values up to b (+ missing) | the rest" with both sides filled is
    # among them; "only missing left" as its mirror "all values left, missing right"
    total = int(count.sum())
    for b in range(-1, len(count)):
        for ml in (False, True) if missing else (False,):
            left, right = _partition(count, missing, b, ml)
            key = (int(count[: b + 1].sum()), ml)
            if left > 0 and right > 0:
                assert key in seen or (key == (0, True) and (total, False) in seen)
