"""WOE/IV per bin against optbinning on the raw credit files; transform; plain data."""

from __future__ import annotations

import json
import warnings
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optbinning import OptimalBinning
from optbinning.binning.binning_statistics import BinningTable

from lianmo.data.load import load_table
from lianmo.data.rows import Table
from lianmo.errors import ConfigError, DataError
from lianmo.models.binning import QuantileBins
from lianmo.models.woe import WoeTable, bin_counts, bin_labels, scorecard_woe, woe_transform

DATA = "/work/shared/data"


@cache
def broker() -> Table:
    return load_table(
        f"{DATA}/credit_broker_raw.csv",
        id_column="client_id",
        label_column="default_next_month",
        categorical=["sex", "education", "marriage"],
    )


@cache
def platform_pay_1() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The platform's pay_1 codes and the broker's labels on the rows both hold."""
    guest = broker()
    host = load_table(
        f"{DATA}/credit_platform_raw.csv",
        id_column="client_id",
        feature_columns=["pay_1"],
        categorical=["pay_1"],
    )
    at = {k: i for i, k in enumerate(host.ids)}
    both = [i for i, k in enumerate(guest.ids) if k in at]
    rows = [at[guest.ids[i]] for i in both]
    column = host.feature_names.index("pay_1")
    return host.X[rows, column], np.asarray(guest.y)[both], host.categories["pay_1"]


def column_of(name: str) -> tuple[np.ndarray, np.ndarray]:
    table = broker()
    return table.X[:, table.feature_names.index(name)], np.asarray(table.y)


def our_table(x: np.ndarray, y: np.ndarray, kind: int | None, max_bins: int = 10) -> WoeTable:
    bins = QuantileBins.fit(x[:, None], max_bins, categories=[kind])
    events, non_events = bin_counts(bins.transform(x[:, None])[:, 0], y, bins.n_cells(0))
    return WoeTable.from_counts("x", events, non_events, missing_bin=bins.missing_bin(0))


def quiet_fit(binning: OptimalBinning, x: np.ndarray, y: np.ndarray) -> OptimalBinning:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return binning.fit(x, y)


@pytest.mark.parametrize("max_bins", [5, 10, 20])
def test_numeric_column_with_missing_cells_matches_optbinning(max_bins: int) -> None:
    x, y = column_of("limit_bal")
    assert np.isnan(x).sum() > 0
    bins = QuantileBins.fit(x[:, None], max_bins)
    ours = our_table(x, y, None, max_bins)
    # our bins are (e_{b-1}, e_b]; optbinning's [s_{i-1}, s_i): the same rows for
    # s = the next float above e
    splits = np.nextafter(bins.edges[0], np.inf)
    theirs = quiet_fit(
        OptimalBinning(
            "limit_bal",
            user_splits=splits,
            user_splits_fixed=[True] * len(splits),
            monotonic_trend=None,
            min_prebin_size=1e-9,
            max_n_prebins=1000,
        ),
        x,
        y,
    )
    np.testing.assert_array_equal(theirs.splits, splits)
    frame = theirs.binning_table.build(add_totals=False)
    keep = [i for i, label in enumerate(frame["Bin"]) if label != "Special"]
    np.testing.assert_array_equal(frame["Event"].to_numpy()[keep], ours.events)
    np.testing.assert_array_equal(frame["Non-event"].to_numpy()[keep], ours.non_events)
    np.testing.assert_allclose(ours.woe, frame["WoE"].to_numpy()[keep], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.iv_bins, frame["IV"].to_numpy()[keep], rtol=0, atol=1e-9)
    assert abs(ours.iv - theirs.binning_table.iv) < 1e-9
    assert ours.missing_bin == len(splits) + 1 and ours.woe[ours.missing_bin] != 0


@pytest.mark.parametrize("source", ["education", "pay_1"])
def test_categorical_column_matches_optbinning(source: str) -> None:
    """education: a missing bin; the platform's pay_1: rare categories share "other" and
    no missing cells (optbinning's missing bin is then empty, with WOE 0)."""
    if source == "pay_1":
        x, y, names = platform_pay_1()
    else:
        x, y = column_of(source)
        names = broker().categories[source]
    bins = QuantileBins.fit(x[:, None], 10, categories=[len(names)])
    ours = our_table(x, y, len(names))
    codes = bins.code_bins[0]
    members = [[n for k, n in enumerate(names) if codes[k] == b] for b in range(bins.n_bins(0))]
    groups = [g for g in members if g]  # an "other" bin without categories is always empty
    text = np.array([names[int(v)] if v == v else np.nan for v in x], dtype=object)
    theirs = quiet_fit(
        OptimalBinning(
            source,
            dtype="categorical",
            user_splits=groups,
            user_splits_fixed=[True] * len(groups),
            monotonic_trend=None,
            min_prebin_size=1e-9,
        ),
        text,
        y,
    )
    frame = theirs.binning_table.build(add_totals=False)
    by_label = {}
    for label, ev, nev, woe, iv in frame[["Bin", "Event", "Non-event", "WoE", "IV"]].itertuples(
        index=False
    ):
        absent = str(label) == "Missing" and bins.missing_bin(0) is None
        if str(label) == "Special" or absent:  # optbinning's empty special or missing bin
            assert ev == nev == 0 and woe == 0
            continue
        key = "missing" if str(label) == "Missing" else ", ".join(map(str, label))
        by_label[key] = (ev, nev, woe, iv)
    keys = [", ".join(g) for g in members] + ["missing"] * (bins.missing_bin(0) is not None)
    if not members[-1]:  # an "other" bin without categories: empty, WOE 0
        assert ours.counts[len(members) - 1] == 0 and ours.woe[len(members) - 1] == 0
    assert sorted(k for k in keys if k) == sorted(by_label)
    for b, key in enumerate(keys):
        if key:
            ev, nev, woe, iv = by_label[key]
            assert (ours.events[b], ours.non_events[b]) == (ev, nev), key
            assert abs(ours.woe[b] - woe) < 1e-9 and abs(ours.iv_bins[b] - iv) < 1e-9, key
    assert abs(ours.iv - theirs.binning_table.iv) < 1e-9


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=2, max_size=12))
def test_zero_count_bins_follow_optbinning(counts: list[tuple[int, int]]) -> None:
    events = np.array([c[0] for c in counts] + [1])
    non_events = np.array([c[1] for c in counts] + [1])
    ours = WoeTable.from_counts("x", events, non_events)
    splits = np.arange(len(events) - 3, dtype=np.float64)  # + its special and missing bins
    theirs = BinningTable("x", "numerical", None, splits, non_events, events)
    frame = theirs.build(add_totals=False)
    np.testing.assert_allclose(ours.woe, frame["WoE"].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.iv_bins, frame["IV"].to_numpy(), rtol=0, atol=1e-9)
    pure = (events == 0) | (non_events == 0)
    assert np.all(ours.woe[pure] == 0) and np.all(ours.iv_bins[pure] == 0)


def test_transform_equals_a_direct_computation() -> None:
    x, y = column_of("limit_bal")
    bins = QuantileBins.fit(x[:, None], 10)
    binned = bins.transform(x[:, None])[:, 0]
    table = our_table(x, y, None)
    got = woe_transform(binned, table)
    total_ev, total_nev = (y == 1).sum(), (y == 0).sum()
    for b in range(bins.n_cells(0)):
        rows = binned == b
        want = np.log(((y[rows] == 0).sum() / total_nev) / ((y[rows] == 1).sum() / total_ev))
        np.testing.assert_allclose(got[rows], want, rtol=0, atol=1e-12)
    # a host holds only the WOE values; a bin beyond the table (unseen) gets 0
    np.testing.assert_array_equal(woe_transform(binned, table.woe), got)
    np.testing.assert_array_equal(woe_transform(np.array([0, 99, -1]), table)[1:], [0.0, 0.0])


def test_unseen_category_gets_zero_as_in_optbinning() -> None:
    """optbinning gives an unknown category the WOE of the overall event rate: 0 (on a
    column without missing cells; with them it leaves the missing rows out of the rate)."""
    x, y = column_of("sex")
    assert not np.isnan(x).any()
    table = our_table(x, y, 2)
    theirs = quiet_fit(OptimalBinning("sex", dtype="categorical", monotonic_trend=None), x, y)
    assert abs(theirs.transform(np.array([99.0]), metric="woe")[0]) < 1e-12
    assert woe_transform(np.array([len(table.labels) + 3]), table)[0] == 0


def test_records_and_json_round_trip() -> None:
    x, y = column_of("education")
    bins = QuantileBins.fit(x[:, None], 10, categories=[4])
    events, non_events = bin_counts(bins.transform(x[:, None])[:, 0], y, bins.n_cells(0))
    labels = bin_labels(bins, 0, broker().categories["education"])
    table = WoeTable.from_counts("education", events, non_events, labels, bins.missing_bin(0))
    records = table.to_records()
    assert [r["label"] for r in records] == list(labels)
    assert labels[-2:] == ("other", "missing") and records[-1]["missing"]
    assert sum(r["count"] for r in records) == len(y)
    assert abs(sum(r["iv"] for r in records) - table.iv) < 1e-12
    back = WoeTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert back.labels == table.labels and back.missing_bin == table.missing_bin
    np.testing.assert_array_equal(back.woe, table.woe)


def test_numeric_labels_show_the_split_rule() -> None:
    bins = QuantileBins.fit(np.array([[1.0], [2.0], [3.0], [np.nan]]), 4)
    assert bin_labels(bins, 0) == ("(-inf, 1]", "(1, 2]", "(2, inf)", "missing")


def test_bad_tables_are_refused() -> None:
    with pytest.raises(DataError, match="no events"):
        WoeTable.from_counts("age", [0, 0], [3, 4])
    with pytest.raises(ConfigError, match="2 bin labels"):
        WoeTable.from_counts("age", [1, 2, 3], [3, 4, 5], labels=["a", "b"])
    with pytest.raises(ConfigError, match="not a WOE table"):
        WoeTable.from_dict({"column": "age"})
    with pytest.raises(DataError, match="0 \\(non-event\\) or 1"):
        bin_counts(np.array([0, 1]), np.array([0, 2]), 2)
    with pytest.raises(ConfigError, match="outside 0 .. 1"):
        bin_counts(np.array([0, 2]), np.array([0, 1]), 2)


def test_scorecard_woe_zeroes_a_missing_bin_under_the_minimum_share() -> None:
    events, nonevents = np.array([30, 50, 4]), np.array([470, 430, 16])  # missing: 20 rows
    table = WoeTable.from_counts("c", events, nonevents)
    woe, iv = scorecard_woe(events, nonevents, 2, 0.05)  # 20 of 1000 rows < 5%
    assert woe[2] == 0.0 and table.woe[2] != 0.0
    np.testing.assert_array_equal(woe[:2], table.woe[:2])
    assert iv == pytest.approx(table.iv - table.iv_bins[2], abs=1e-15)
    woe, iv = scorecard_woe(events, nonevents, 2, 0.02)  # 2%: it holds the share, kept
    np.testing.assert_array_equal(woe, table.woe)
    assert iv == table.iv
    woe, _ = scorecard_woe(events, nonevents, None, 0.05)  # no missing bin: a value bin
    np.testing.assert_array_equal(woe, table.woe)
