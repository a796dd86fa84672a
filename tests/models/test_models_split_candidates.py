"""Split candidates of one feature at a node: the scan order and the missing side."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lianmo.models.split_candidates import (
    normalised,
    numeric_candidates,
    partition_candidates,
)


def _partition(count: np.ndarray, missing: int, b: int, missing_left: bool) -> tuple[int, int]:
    left = int(count[: b + 1].sum()) + (missing if missing_left else 0)
    return left, int(count.sum()) + missing - left


def test_missing_right_then_missing_left_each_by_bin() -> None:
    found = numeric_candidates(np.array([3, 0, 2, 4]), missing=5, n_cells=6)
    # right: b=0, 2 (bin 1 is empty: it would repeat b=0), 3 ("all values left")
    # left: b=0, 2 (b=3 would leave nothing on the right; "only missing left" repeats b=3)
    assert [found.prefix_end(i, 4) for i in range(len(found))] == [0, 2, 3, 0, 2]
    assert found.left[:, 4].tolist() == [False, False, False, True, True]
    assert not found.left[:, 5].any()
    hist = np.array([[1, 10], [0, 0], [2, 20], [3, 30], [100, 1000], [0, 0]])
    np.testing.assert_array_equal(
        found.left_sums(hist), [[1, 10], [3, 30], [6, 60], [101, 1010], [103, 1030]]
    )


def test_without_missing_rows_only_missing_right_as_before() -> None:
    found = numeric_candidates(np.array([0, 3, 0, 2]), missing=0, n_cells=4)
    assert found.left.tolist() == [[True, True, False, False]]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=8), st.integers(0, 3))
def test_every_distinct_partition_appears_once_with_both_sides_filled(
    count_list: list[int], missing: int
) -> None:
    count = np.array(count_list)
    found = numeric_candidates(count, missing, len(count) + 1)
    seen = set()
    for i in range(len(found)):
        b, ml = found.prefix_end(i, len(count)), bool(found.left[i, len(count)])
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


def test_categories_are_ordered_by_gradient_ratio_and_partitions_normalised() -> None:
    # cells 0..3 categories (2 absent from the node), 4 missing
    g = np.array([3.0, -2.0, 0.0, 1.0, 5.0])
    h = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    present = np.array([True, True, False, True, True])
    found = partition_candidates(g, h, present, 4, l2=1.0)
    # order by g / (h + 1): cell 1 (-1), cell 3 (0.5), cell 0 (1.5)
    want = [[1], [1, 3], [4], [1, 4], [1, 3, 4]]
    assert [np.flatnonzero(row).tolist() for row in found.left] == want
    categories = np.array([True, True, True, True, False])
    # {1, 3} left holds no cell 0: turned so that left is {0} (+ missing, which was right)
    turned = normalised(found.left[1], present, categories)
    assert np.flatnonzero(turned).tolist() == [0, 4]
    only_missing = normalised(found.left[2], present, categories)
    assert np.flatnonzero(only_missing).tolist() == [0, 1, 3]
    without_missing = partition_candidates(g, h, present & categories, 4, l2=1.0)
    assert len(without_missing) == 2  # prefixes of 1 and 2 of the 3 categories
