"""The matching rule: estimated level, eligible products, flagged holdings."""

from __future__ import annotations

import numpy as np
import pytest

from lianmo.models.suitability import (
    Product,
    estimate_levels,
    match,
    summarise,
)

PRODUCTS = [Product("cash", 1), Product("bond", 2), Product("mixed", 3), Product("stock", 4)]
PRODUCTS += [Product("options", 5)]


@pytest.mark.parametrize(
    ("p", "confidence", "level", "sure"),
    [
        # P(>=2) = 0.9, P(>=3) = 0.8, P(>=4) = 0.5: C3 at 0.8, C2 at 0.85, C4 at 0.5
        ([0.1, 0.1, 0.3, 0.5], 0.8, 3, 0.8),
        ([0.1, 0.1, 0.3, 0.5], 0.85, 2, 0.9),
        ([0.1, 0.1, 0.3, 0.5], 0.5, 4, 0.5),
        # the most likely class is C4, but not surely: a conservative C1
        ([0.3, 0.0, 0.0, 0.7], 0.8, 1, 1.0),
        ([0.0, 0.0, 0.0, 1.0], 1.0, 4, 1.0),
        ([0.2, 0.2, 0.2, 0.2, 0.2], 0.4, 4, 0.4),
        ([1.0], 0.9, 1, 1.0),
    ],
)
def test_estimated_level_is_the_highest_level_surely_tolerated(
    p: list[float], confidence: float, level: int, sure: float
) -> None:
    levels, conf = estimate_levels(np.array([p]), confidence)
    assert levels.tolist() == [level]
    assert conf[0] == pytest.approx(sure)


def test_rounded_probabilities_still_give_c1_full_confidence() -> None:
    # 8-decimal rows as scores.csv holds them may sum to slightly under 1
    levels, conf = estimate_levels(np.array([[0.33333333, 0.33333333, 0.33333333]]), 1.0)
    assert levels.tolist() == [1] and conf.tolist() == [1.0]


def test_estimate_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="confidence must be in"):
        estimate_levels(np.array([[0.5, 0.5]]), 0.0)
    with pytest.raises(ValueError, match="one column per level"):
        estimate_levels(np.full((1, 6), 1 / 6), 0.8)
    with pytest.raises(ValueError, match="non-negative"):
        estimate_levels(np.array([[1.5, -0.5]]), 0.8)


def test_eligible_products_fit_the_level_and_held_ones_above_are_flagged() -> None:
    p = np.array([[0.0, 0.05, 0.9, 0.05], [0.9, 0.1, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    holdings = {"a": ["stock", "cash"], "b": ["bond"], "z": ["options"]}
    matches = match(["a", "b", "c"], p, PRODUCTS, holdings, 0.8)
    assert [(m.customer_id, m.level) for m in matches] == [("a", 3), ("b", 1), ("c", 4)]
    assert matches[0].eligible == ("cash", "bond", "mixed")
    assert matches[0].flagged == ("stock",)
    assert matches[1].eligible == ("cash",) and matches[1].flagged == ("bond",)
    # C4 is the top of a 4-class model: an R5 product is never eligible
    assert matches[2].eligible == ("cash", "bond", "mixed", "stock")
    assert matches[2].flagged == ()
    s = summarise(matches, holdings)
    assert s.customers == 3 and dict(s.per_level) == {1: 1, 3: 1, 4: 1}
    assert (s.eligible_min, s.eligible_max, s.eligible_mean) == (1, 4, pytest.approx(8 / 3))
    assert (s.with_holdings, s.flagged_customers, s.flagged_holdings) == (2, 2, 2)
