"""Merge plans from counts: minimum bin share, monotonic WOE, checks a host applies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lianmo.errors import ConfigError
from lianmo.models.bin_merge import MergePlan, best_trend, min_share_plan, monotonic_plan
from lianmo.models.binning import QuantileBins
from lianmo.models.woe import WoeTable, bin_counts, woe_transform
from tests.models.test_models_woe import column_of

counts_lists = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=14)


def split(counts: list[tuple[int, int]], missing: tuple[int, int] | None) -> tuple[np.ndarray, ...]:
    rows = counts + ([missing] if missing else [])
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


@settings(max_examples=150, deadline=None)
@given(
    counts_lists,
    st.none() | st.tuples(st.integers(0, 30), st.integers(0, 30)),
    st.floats(0, 0.4),
    st.booleans(),
)
def test_min_share_plan_keeps_every_value_bin_big_enough(
    counts: list[tuple[int, int]],
    missing: tuple[int, int] | None,
    min_share: float,
    categorical: bool,
) -> None:
    ev, nev = split(counts, missing)
    n_value = len(counts)
    plan = min_share_plan(ev, nev, n_value, min_share, categorical=categorical)
    plan.check(n_value, len(ev), categorical)
    merged = plan.apply(ev) + plan.apply(nev)
    value_groups = len(plan.groups) - (missing is not None)
    assert merged.sum() == ev.sum() + nev.sum()
    if value_groups > 1:
        assert np.all(merged[:value_groups] >= min_share * merged.sum())
    if missing is not None:  # the missing bin is never merged
        assert plan.groups[-1] == (n_value,)
    # nothing merged that did not have to be
    if np.all((ev + nev)[:n_value] >= min_share * (ev.sum() + nev.sum())):
        assert plan == MergePlan.identity(len(ev))


@settings(max_examples=150, deadline=None)
@given(counts_lists, st.none() | st.tuples(st.integers(0, 30), st.integers(1, 30)))
def test_monotonic_plan_makes_woe_strictly_monotonic(
    counts: list[tuple[int, int]], missing: tuple[int, int] | None
) -> None:
    ev, nev = split(counts, missing)
    n_value = len(counts)
    if ev.sum() == 0 or nev.sum() == 0:
        return
    for trend in ("ascending", "descending", "auto"):
        plan = monotonic_plan(ev, nev, n_value, trend)  # type: ignore[arg-type]
        plan.check(n_value, len(ev), categorical=False)
        table = WoeTable.from_counts("x", plan.apply(ev), plan.apply(nev))
        value_groups = len(plan.groups) - (missing is not None)
        woe = table.woe[:value_groups]
        if value_groups > 1:
            assert table.informative[:value_groups].all()
            steps = np.diff(woe)
            want = trend if trend != "auto" else best_trend(ev, nev, n_value)
            assert np.all(steps < 0) if want == "ascending" else np.all(steps > 0)


def test_pav_pools_only_violators() -> None:
    # event rates .1 .3 .2 .4: ascending pools bins 1 and 2 only
    ev, nev = np.array([10, 30, 20, 40]), np.array([90, 70, 80, 60])
    assert monotonic_plan(ev, nev, 4, "ascending").groups == ((0,), (1, 2), (3,))
    assert best_trend(ev, nev, 4) == "ascending"
    assert monotonic_plan(ev[::-1], nev[::-1], 4).groups == ((0,), (1, 2), (3,))
    assert best_trend(ev[::-1], nev[::-1], 4) == "descending"


def test_min_share_merges_with_the_closer_neighbour() -> None:
    # bin 1 is small; its rate (.2) is closer to bin 2's (.25) than to bin 0's (.5)
    ev, nev = np.array([50, 2, 25, 30]), np.array([50, 8, 75, 70])
    assert min_share_plan(ev, nev, 4, 0.05).groups == ((0,), (1, 2), (3,))
    # categorical: into the group of closest rate anywhere (bin 3 at .3 is not adjacent)
    ev, nev = np.array([50, 25, 3, 30]), np.array([50, 75, 7, 70])
    assert min_share_plan(ev, nev, 4, 0.05, categorical=True).groups == ((0,), (1,), (2, 3))


def test_plans_on_limit_bal_and_transform_of_merged_bins() -> None:
    x, y = column_of("limit_bal")
    bins = QuantileBins.fit(x[:, None], 40)
    binned = bins.transform(x[:, None])[:, 0]
    ev, nev = bin_counts(binned, y, bins.n_cells(0))
    n_value = bins.n_bins(0)
    before = WoeTable.from_counts("limit_bal", ev, nev).woe[:n_value]
    assert not (np.all(np.diff(before) > 0) or np.all(np.diff(before) < 0))
    share = min_share_plan(ev, nev, n_value, 0.05)
    shape = monotonic_plan(share.apply(ev), share.apply(nev), len(share.groups) - 1)
    plan = share.then(shape)
    plan.check(n_value, bins.n_cells(0), categorical=False)
    table = WoeTable.from_counts(
        "limit_bal", plan.apply(ev), plan.apply(nev), missing_bin=len(plan.groups) - 1
    )
    woe = table.woe[:-1]
    assert len(woe) >= 4 and np.all(np.diff(woe) > 0)  # more credit, lower risk
    assert np.all(table.counts[:-1] >= 0.05 * len(y))
    # rows re-binned by the plan's mapping: WOE equals a direct computation on them
    merged_rows = plan.mapping()[binned]
    got = woe_transform(merged_rows, table)
    for g in range(len(plan.groups)):
        rows = merged_rows == g
        want = np.log(
            ((y[rows] == 0).sum() / (y == 0).sum()) / ((y[rows] == 1).sum() / (y == 1).sum())
        )
        np.testing.assert_allclose(got[rows], want, rtol=0, atol=1e-12)
    assert MergePlan.from_data(plan.to_data()) == plan


@pytest.mark.parametrize(
    ("groups", "problem"),
    [
        ([[0], [1, 2]], "do not cover"),
        ([[0, 1], [1, 2], [3]], "do not cover"),
        ([[0, 1, 3], [2]], "missing bin 3 is not a group of its own"),
        ([[0, 2], [1], [3]], "not a run of adjacent bins"),
        ([[2], [0, 1], [3]], "not in bin order"),
    ],
)
def test_a_host_refuses_a_bad_plan(groups: list[list[int]], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        MergePlan.from_data(groups).check(3, 4, categorical=False)


def test_categorical_plans_may_group_any_bins_and_bad_settings_are_refused() -> None:
    MergePlan.from_data([[0, 2], [1], [3]]).check(3, 4, categorical=True)
    with pytest.raises(ConfigError, match="min_share"):
        min_share_plan(np.array([1, 2]), np.array([2, 1]), 2, 1.5)
    with pytest.raises(ConfigError, match="at most one missing bin"):
        min_share_plan(np.array([1, 2, 3]), np.array([2, 1, 1]), 1, 0.1)
    with pytest.raises(ConfigError, match="trend"):
        monotonic_plan(np.array([1, 2]), np.array([2, 1]), 2, "up")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cannot chain"):
        MergePlan.identity(3).then(MergePlan.identity(2))
