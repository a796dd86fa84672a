"""Tests for lianmo.models.scorecard: optbinning's pdo/odds points, split scores, reason codes."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from optbinning import BinningProcess, Scorecard  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from lianmo.errors import ConfigError
from lianmo.models.scorecard import (
    PartyReasons,
    PointsTable,
    Scaling,
    merge_reasons,
    total_scores,
)
from tests.raw_credit import read_raw

SCALINGS = [Scaling(), Scaling(pdo=40.0, odds=20.0, points=500.0), Scaling(13.0, 1.5, 250.0)]


def _credit_like(seed: int, n: int = 3000) -> tuple[pd.DataFrame, np.ndarray]:
    """Two numeric columns (one with missing cells) and a categorical one."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.exponential(size=n)
    b[rng.random(n) < 0.1] = np.nan
    c = rng.integers(0, 4, size=n).astype(str)
    logit = -1.0 + 0.8 * a - 0.5 * np.nan_to_num(b, nan=2.0) + 0.7 * (c == "1")
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({"a": a, "b": b, "c": c}), y


def _optbinning_scorecard(seed: int, scaling: Scaling) -> tuple[Scorecard, pd.DataFrame]:
    X, y = _credit_like(seed)
    card = Scorecard(
        BinningProcess(["a", "b", "c"], categorical_variables=["c"]),
        LogisticRegression(),
        scaling_method="pdo_odds",
        scaling_method_params={
            "pdo": scaling.pdo,
            "odds": scaling.odds,
            "scorecard_points": scaling.points,
        },
    )
    with warnings.catch_warnings():
        # optbinning 0.21 sets columns in a way pandas deprecates (Pandas4Warning)
        warnings.simplefilter("ignore", DeprecationWarning)
        card.fit(X, y, metric_missing="empirical", metric_special="empirical")
    return card, X


def _tables(card: Scorecard) -> tuple[list[str], list[float], list[np.ndarray], list[np.ndarray]]:
    table = card.table(style="detailed")
    names = list(dict.fromkeys(table["Variable"]))
    rows = [table[table["Variable"] == v] for v in names]
    coefs = [float(r["Coefficient"].iloc[0]) for r in rows]
    woe = [r["WoE"].to_numpy(dtype=np.float64) for r in rows]
    points = [r["Points"].to_numpy(dtype=np.float64) for r in rows]
    return names, coefs, woe, points


@pytest.mark.parametrize("scaling", SCALINGS, ids=["20-50-600", "40-20-500", "13-1.5-250"])
@pytest.mark.parametrize("seed", [0, 1])
def test_points_per_bin_equal_optbinning_scorecard(seed: int, scaling: Scaling) -> None:
    card, _ = _optbinning_scorecard(seed, scaling)
    names, coefs, woe, expected = _tables(card)
    intercept = float(card.estimator_.intercept_[0])
    ours = PointsTable.build(names, coefs, woe, scaling, intercept=intercept)
    assert ours.base is not None
    spread = ours.with_base_spread(ours.base / len(names))
    for char, want in zip(spread.characteristics, expected, strict=True):
        np.testing.assert_allclose(char.points, want, rtol=0, atol=1e-9)
    # without the spread: optbinning's points minus the base share, base held apart
    for char, want in zip(ours.characteristics, expected, strict=True):
        np.testing.assert_allclose(char.points, want - ours.base / len(names), rtol=0, atol=1e-9)


@pytest.mark.parametrize("scaling", SCALINGS[:2], ids=["20-50-600", "40-20-500"])
def test_base_plus_parties_points_equal_optbinning_score(scaling: Scaling) -> None:
    card, X = _optbinning_scorecard(3, scaling)
    names, coefs, woe, _ = _tables(card)
    intercept = float(card.estimator_.intercept_[0])
    codes = card.binning_process_.transform(
        X, metric="indices", metric_missing="empirical", metric_special="empirical"
    )[names].to_numpy()
    guest = PointsTable.build(names[:1], coefs[:1], woe[:1], scaling, intercept=intercept)
    host = PointsTable.build(names[1:], coefs[1:], woe[1:], scaling)
    assert host.base is None
    score = total_scores([guest.partial_scores(codes[:, :1]), host.partial_scores(codes[:, 1:])])
    np.testing.assert_allclose(score, card.score(X), rtol=0, atol=1e-9)
    # and the score is the pdo/odds transform of the LR's event probability
    p_event = card.predict_proba(X)[:, 1]
    odds_good = (1.0 - p_event) / p_event
    np.testing.assert_allclose(
        score, scaling.offset + scaling.factor * np.log(odds_good), atol=1e-8
    )


def _texts(column: np.ndarray, vocabulary: tuple[str, ...] | None) -> np.ndarray:
    """A categorical column's codes back to its texts (None where missing)."""
    if vocabulary is None:
        return column
    out = np.full(column.size, None, dtype=object)
    present = ~np.isnan(column)
    out[present] = np.array(vocabulary, dtype=object)[column[present].astype(np.int64)]
    return out


def test_points_equal_optbinning_on_the_raw_credit_guest_columns(shared_data: Path) -> None:
    raw = read_raw(shared_data / "credit_broker_raw.csv", "client_id", "default_next_month")
    assert raw.y is not None
    frame = pd.DataFrame(
        {n: _texts(raw.X[:, j], raw.categories.get(n)) for j, n in enumerate(raw.names)}
    )
    card = Scorecard(
        BinningProcess(list(raw.names), categorical_variables=sorted(raw.categories)),
        LogisticRegression(),
        scaling_method="pdo_odds",
        scaling_method_params={"pdo": 20, "odds": 50, "scorecard_points": 600},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        card.fit(
            frame, raw.y.astype(np.int64), metric_missing="empirical", metric_special="empirical"
        )
    names, coefs, woe, expected = _tables(card)
    assert names == list(raw.names)  # 27,000 rows; missing cells in 3 columns, 3 categorical
    ours = PointsTable.build(
        names, coefs, woe, Scaling(), intercept=float(card.estimator_.intercept_[0])
    )
    assert ours.base is not None
    spread = ours.with_base_spread(ours.base / len(names))
    for char, want in zip(spread.characteristics, expected, strict=True):
        np.testing.assert_allclose(char.points, want, rtol=0, atol=1e-9)
    codes = card.binning_process_.transform(
        frame, metric="indices", metric_missing="empirical", metric_special="empirical"
    )[names].to_numpy()
    np.testing.assert_allclose(ours.partial_scores(codes), card.score(frame), rtol=0, atol=1e-9)


def test_scaling_anchors_points_at_odds_and_pdo_doubles_them() -> None:
    s = Scaling(pdo=20.0, odds=50.0, points=600.0)
    assert s.factor == pytest.approx(20.0 / math.log(2.0), abs=1e-12)
    # a row at good:bad odds 50 (log-odds of the event -ln 50) scores exactly 600
    assert s.base_points(-math.log(50.0)) == pytest.approx(600.0, abs=1e-9)
    assert s.base_points(-math.log(100.0)) == pytest.approx(620.0, abs=1e-9)


@pytest.mark.parametrize("field", ["pdo", "odds", "points"])
@pytest.mark.parametrize("value", [0.0, -5.0, float("nan"), float("inf")])
def test_scaling_refuses_non_positive_or_non_finite(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be a positive number"):
        Scaling(**{field: value})


def _crafted() -> tuple[PointsTable, PointsTable, np.ndarray, np.ndarray]:
    """factor = 1 (pdo = ln 2), coefficient -1: points equal the WOE values."""
    s = Scaling(pdo=math.log(2.0), odds=1.0, points=100.0)
    guest = PointsTable.build(
        ["income", "age"],
        [-1.0, -1.0],
        [np.array([10.0, 20.0, 30.0]), np.array([5.0, 25.0])],
        s,
        intercept=0.0,
    )
    host = PointsTable.build(
        ["bureau", "util"], [-1.0, -1.0], [np.array([0.0, 40.0]), np.array([8.0, 12.0])], s
    )
    guest_codes = np.array([[0, 0], [2, 1], [1, 0]])
    host_codes = np.array([[1, 0], [0, 1], [1, 1]])
    return guest, host, guest_codes, host_codes


def test_reason_codes_on_a_crafted_example() -> None:
    guest, host, gc, hc = _crafted()
    # gaps: income 20/0/10, age 20/0/20, bureau 0/40/0, util 4/0/0
    g = guest.reasons(gc, k=2)
    np.testing.assert_array_equal(g.gaps, [[20.0, 20.0], [0.0, 0.0], [20.0, 10.0]])
    assert g.names.tolist() == [["income", "age"], ["income", "age"], ["age", "income"]]
    h = host.reasons(hc, k=2)
    np.testing.assert_array_equal(h.gaps, [[4.0, 0.0], [40.0, 0.0], [0.0, 0.0]])
    merged = merge_reasons({"guest": g, "bank": h}, k=2)
    assert merged.names.tolist() == [["income", "age"], ["bureau", "income"], ["age", "income"]]
    assert merged.parties.tolist() == [["guest", "guest"], ["bank", "guest"], ["guest", "guest"]]
    np.testing.assert_array_equal(merged.gaps, [[20.0, 20.0], [40.0, 0.0], [20.0, 10.0]])
    assert merged.to_records()[2] == {
        "row": 1,
        "rank": 1,
        "party": "bank",
        "characteristic": "bureau",
        "gap": 40.0,
    }
    # scores: base 100 + points
    np.testing.assert_array_equal(
        total_scores([guest.partial_scores(gc), host.partial_scores(hc)]),
        [100 + 10 + 5 + 40 + 8, 100 + 30 + 25 + 0 + 12, 100 + 20 + 5 + 40 + 12],
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 7])
def test_merged_reasons_equal_top_k_of_the_pooled_gaps(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    s = Scaling()
    parts: dict[str, tuple[PointsTable, np.ndarray]] = {}
    for party, p in (("guest", 3), ("host1", 2), ("host2", 4)):
        bins = [int(rng.integers(2, 6)) for _ in range(p)]
        woe = [np.round(rng.normal(size=b), 1) for b in bins]  # rounding: tied gaps
        table = PointsTable.build([f"{party}.x{j}" for j in range(p)], rng.normal(size=p), woe, s)
        codes = np.stack([rng.integers(0, b, size=200) for b in bins], axis=1)
        parts[party] = (table, codes)
    merged = merge_reasons({n: t.reasons(c, k) for n, (t, c) in parts.items()}, k)
    pooled_gaps = np.concatenate(
        [
            np.array([ch.max_points for ch in t.characteristics])[None, :] - t._points_of(c)
            for t, c in parts.values()
        ],
        axis=1,
    )
    pooled_names = [ch.name for t, _ in parts.values() for ch in t.characteristics]
    for i in range(200):
        order = sorted(range(len(pooled_names)), key=lambda j: (-pooled_gaps[i, j], j))[:k]
        assert merged.names[i].tolist() == [pooled_names[j] for j in order]
        np.testing.assert_array_equal(merged.gaps[i], pooled_gaps[i, order])


def test_points_table_records() -> None:
    guest, _, _, _ = _crafted()
    records = guest.to_records()
    assert len(records) == 5
    assert records[1] == {
        "characteristic": "income",
        "bin": 1,
        "coefficient": -1.0,
        "woe": 20.0,
        "points": 20.0,
    }
    assert pd.DataFrame(records)["points"].sum() == pytest.approx(90.0)


def test_bad_codes_and_inputs_are_refused() -> None:
    guest, host, gc, hc = _crafted()
    with pytest.raises(ValueError, match="'income' has 3 bins but a bin code is outside 0..2"):
        guest.partial_scores(np.array([[3, 0]]))
    with pytest.raises(ValueError, match=r"expected \(rows, 2\)"):
        guest.partial_scores(gc[:, :1])
    with pytest.raises(ValueError, match="must be integers"):
        guest.partial_scores(gc.astype(np.float64))
    with pytest.raises(ValueError, match="at least 1"):
        guest.reasons(gc, k=0)
    with pytest.raises(ValueError, match="different row counts"):
        merge_reasons({"g": guest.reasons(gc, 1), "h": host.reasons(hc[:2], 1)}, 1)
    with pytest.raises(ValueError, match="2 names, 1 coefficients and 2 WOE arrays"):
        PointsTable.build(["a", "b"], [1.0], [np.zeros(2), np.zeros(2)], Scaling())
    with pytest.raises(ValueError, match="finite values"):
        PointsTable.build(["a"], [1.0], [np.array([np.inf])], Scaling())
    with pytest.raises(ValueError, match="same aligned rows"):
        total_scores([np.zeros(3), np.zeros(2)])
    assert isinstance(guest.reasons(gc, 5), PartyReasons)
    assert guest.reasons(gc, 5).gaps.shape == (3, 2)
