"""Tests for lianmo.models.validation against direct computations, scikit-learn and by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

from lianmo.models.validation import (
    EMPTY_SHARE,
    calibration_table,
    csi,
    decile_edges,
    gini,
    lift_table,
    psi,
    psi_from_counts,
    score_bands,
)


def _data(seed: int, n: int = 1000, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    p = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 1.2 * y - 0.6)))
    return y, (np.round(p, 1) if ties else p)


def _deciles(order: np.ndarray) -> list[np.ndarray]:
    """Rows in score order cut by the documented rule: position r -> floor(10 r / n)."""
    position_group = (np.arange(order.size) * 10) // order.size
    return [order[position_group == g] for g in range(10)]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_gini_is_two_auc_minus_one_of_scikit_learn(seed: int, ties: bool) -> None:
    y, p = _data(seed, ties=ties)
    assert gini(y, p) == pytest.approx(2.0 * roc_auc_score(y, p) - 1.0, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_lift_table_equals_a_direct_computation_on_distinct_scores(seed: int) -> None:
    y, p = _data(seed, n=1003)
    table = lift_table(y, p)
    chunks = _deciles(np.argsort(-p))
    count = np.array([c.size for c in chunks])
    events = np.array([y[c].sum() for c in chunks])
    rate = events / count
    base = y.mean()
    np.testing.assert_array_equal(table.group, np.arange(1, 11))
    np.testing.assert_array_equal(table.count, count)
    np.testing.assert_array_equal(table.events, events)
    np.testing.assert_array_equal(table.max_score, [p[c].max() for c in chunks])
    records = pd.DataFrame(table.to_records())
    np.testing.assert_allclose(records["event_rate"], rate, atol=1e-12)
    np.testing.assert_allclose(records["lift"], rate / base, atol=1e-12)
    np.testing.assert_allclose(records["cumulative_capture"], np.cumsum(events) / y.sum())
    np.testing.assert_allclose(
        records["cumulative_lift"], np.cumsum(events) / np.cumsum(count) / base
    )
    assert records["cumulative_capture"].iloc[-1] == 1.0


def test_lift_keeps_ties_together_and_leaves_out_empty_groups() -> None:
    # 10 rows: a run of 5 tied top scores fills groups 1-5's places: groups 2-5 stay empty
    scores = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.4, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0])
    table = lift_table(y, scores)
    np.testing.assert_array_equal(table.group, [1, 6, 7, 8, 9, 10])
    np.testing.assert_array_equal(table.count, [5, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(table.events, [3, 1, 0, 0, 0, 0])
    first = table.to_records()[0]
    assert first["event_rate"] == pytest.approx(0.6)
    assert first["lift"] == pytest.approx(0.6 / 0.4)
    assert first["cumulative_capture"] == pytest.approx(0.75)
    # a decile holding one class only: event rate 0, lift 0, no error
    assert table.to_records()[-1]["lift"] == 0.0


@pytest.mark.parametrize("ties", [False, True])
def test_lift_groups_do_not_depend_on_row_order(ties: bool) -> None:
    y, p = _data(7, ties=ties)
    perm = np.random.default_rng(0).permutation(y.size)
    a, b = lift_table(y, p), lift_table(y[perm], p[perm])
    assert a.to_records() == b.to_records()


@pytest.mark.parametrize("seed", range(3))
def test_calibration_equals_a_direct_computation(seed: int) -> None:
    y, p = _data(seed, n=995)
    table = calibration_table(y, p)
    chunks = _deciles(np.argsort(p))
    np.testing.assert_array_equal(table.count, [c.size for c in chunks])
    np.testing.assert_allclose(table.mean_predicted, [p[c].mean() for c in chunks], atol=1e-12)
    observed = [r["observed_rate"] for r in table.to_records()]
    np.testing.assert_allclose(observed, [y[c].mean() for c in chunks], atol=1e-12)


def test_calibration_single_class_groups_and_refused_probabilities() -> None:
    p = np.linspace(0.05, 0.95, 20)
    y = (p > 0.5).astype(int)  # every decile holds one class only
    table = calibration_table(y, p)
    assert [r["observed_rate"] for r in table.to_records()] == [0.0] * 5 + [1.0] * 5
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        calibration_table(y, p + 0.5)


def test_score_bands_with_given_edges_and_an_empty_band() -> None:
    scores = np.array([450.0, 480.0, 500.0, 520.0, 520.0, 700.0])
    y = np.array([1, 1, 0, 1, 0, 0])
    table = score_bands(y, scores, edges=[500.0, 550.0, 600.0])
    records = table.to_records()
    assert [(r["lower"], r["upper"]) for r in records] == [
        (-math.inf, 500.0),
        (500.0, 550.0),
        (550.0, 600.0),
        (600.0, math.inf),
    ]
    np.testing.assert_array_equal(table.count, [2, 3, 0, 1])
    np.testing.assert_array_equal(table.events, [2, 1, 0, 0])
    assert [r["bad_rate"] for r in records] == [1.0, pytest.approx(1 / 3), None, 0.0]
    assert sum(r["share"] for r in records) == pytest.approx(1.0)


def test_score_bands_default_to_the_scores_deciles() -> None:
    y, p = _data(3)
    table = score_bands(y, p)
    np.testing.assert_array_equal(table.upper[:-1], np.quantile(p, np.arange(1, 10) / 10))
    # band i is [lower, upper): counted directly
    direct = [
        int(((p >= lo) & (p < hi)).sum()) for lo, hi in zip(table.lower, table.upper, strict=True)
    ]
    np.testing.assert_array_equal(table.count, direct)
    assert table.count.sum() == y.size


def test_psi_hand_computed() -> None:
    expected = np.array([10, 20, 30, 40])
    actual = np.array([20, 20, 20, 40])
    e, a = expected / 100, actual / 100
    by_hand = sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True))
    result = psi_from_counts(expected, actual)
    assert result.value == pytest.approx(by_hand, abs=1e-12)
    # 0.1 ln 2 + 0 + (-0.1) ln(2/3) + 0
    assert result.value == pytest.approx(0.1 * math.log(2) - 0.1 * math.log(2 / 3), abs=1e-12)
    assert psi_from_counts(expected, expected * 3).value == 0.0


def test_psi_empty_bin_uses_the_documented_epsilon() -> None:
    result = psi_from_counts(np.array([50, 50, 0]), np.array([40, 40, 20]))
    e = np.array([0.5, 0.5, EMPTY_SHARE])
    a = np.array([0.4, 0.4, 0.2])
    assert result.value == pytest.approx(float(np.sum((a - e) * np.log(a / e))), abs=1e-12)
    assert math.isfinite(result.value)
    assert result.to_records()[2] == {
        "bin": 2,
        "expected_count": 0,
        "actual_count": 20,
        "expected_share": 0.0,
        "actual_share": 0.2,
        "contribution": pytest.approx((0.2 - EMPTY_SHARE) * math.log(0.2 / EMPTY_SHARE)),
    }


def test_psi_of_scores_bins_on_the_training_deciles() -> None:
    rng = np.random.default_rng(5)
    train = rng.normal(size=5000)
    same = rng.normal(size=3000)
    shifted = rng.normal(loc=0.5, size=3000)
    stable, moved = psi(train, same), psi(train, shifted)
    assert stable.expected_count.tolist() == [500] * 10
    assert stable.value < 0.02 < 0.1 < moved.value
    edges = decile_edges(train)
    direct = np.bincount(np.searchsorted(edges, shifted, side="right"), minlength=10)
    np.testing.assert_array_equal(moved.actual_count, direct)
    assert moved.value == pytest.approx(psi_from_counts(moved.expected_count, direct).value)
    # later scores beyond the training range land in the open outer bins
    far = psi(train, np.full(10, 100.0))
    assert far.actual_count.tolist() == [0] * 9 + [10]


def test_csi_is_psi_of_bin_codes_and_checks_them() -> None:
    train = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    later = np.array([0, 1, 1, 1, 3, 3, 3, 3])
    result = csi(train, later, n_bins=4)
    np.testing.assert_array_equal(result.expected_count, [2, 3, 1, 2])
    np.testing.assert_array_equal(result.actual_count, [1, 3, 0, 4])
    e = np.array([2, 3, 1, 2]) / 8
    a = np.array([1 / 8, 3 / 8, EMPTY_SHARE, 4 / 8])
    assert result.value == pytest.approx(float(np.sum((a - e) * np.log(a / e))), abs=1e-12)
    with pytest.raises(ValueError, match=r"actual bin codes must lie in 0..3"):
        csi(train, np.array([4]), n_bins=4)


def test_bad_inputs_are_refused() -> None:
    y, p = _data(1, n=50)
    with pytest.raises(ValueError, match="no event"):
        lift_table(np.zeros(50, dtype=int), p)
    with pytest.raises(ValueError, match="NaN or infinite"):
        lift_table(y, np.r_[p[:-1], np.nan])
    with pytest.raises(ValueError, match="only 0 and 1"):
        score_bands(y + 1, p)
    with pytest.raises(ValueError, match="strictly increasing"):
        score_bands(y, p, edges=[0.5, 0.2])
    with pytest.raises(ValueError, match="at least 2"):
        lift_table(y, p, n_groups=1)
    with pytest.raises(ValueError, match="each sample must have rows"):
        psi_from_counts(np.array([1, 2]), np.array([0, 0]))
    with pytest.raises(ValueError, match="same"):
        psi_from_counts(np.array([1, 2]), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="only one class"):
        gini(np.ones(50, dtype=int), p)
