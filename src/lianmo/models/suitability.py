"""Suitability matching: customers' risk-level probabilities to eligible products and flags.

Plaintext and local to the guest (the broker): it takes the class probabilities a
multi-class model gave each customer and the broker's own product table and holdings.

Levels: class ``k`` (0-based) of the model is customer risk tolerance level ``C(k+1)``;
products carry risk levels ``R1..R5``. A product of level ``Rn`` fits a customer of
level ``Cn`` and above (R1 fits everyone, R5 only C5).

The rule (default confidence 0.8): a customer's estimated level is the highest ``L``
with ``P(level >= L) >= confidence``, so we are at least ``confidence`` sure the customer
tolerates ``L``; a low confidence estimate therefore falls to a lower, safer level, and
``C1`` always qualifies (``P(level >= 1) = 1``). A product is eligible when its level is
at most the estimated level; a product the customer holds above it is flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MAX_LEVEL = 5  # C1..C5, R1..R5
DEFAULT_CONFIDENCE = 0.8


@dataclass(frozen=True, slots=True)
class Product:
    """A product the broker sells: its id and risk level ``R1..R5`` (as 1..5)."""

    product_id: str
    level: int


@dataclass(frozen=True, slots=True)
class Match:
    """One customer's result: estimated level (``C<level>``), ``P(level >= it)``, the
    products eligible for it and the held products above it (product ids, in the
    product table's order)."""

    customer_id: str
    level: int
    confidence: float
    eligible: tuple[str, ...]
    flagged: tuple[str, ...]


def estimate_levels(
    probabilities: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of class probabilities (``n x K``, class ``k`` = level ``k+1``): the
    estimated level (1..K) and ``P(level >= estimated level)``.

    Raises
    ------
    ValueError
        If ``confidence`` is not in (0, 1], or ``probabilities`` is not ``n x K`` with
        ``1 <= K <= 5`` and non-negative entries.
    """
    if not 0.0 < confidence <= 1.0:
        raise ValueError(f"confidence must be in (0, 1], got {confidence}")
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or not 1 <= p.shape[1] <= MAX_LEVEL:
        raise ValueError(f"expected one column per level C1..C{MAX_LEVEL}, got shape {p.shape}")
    if (p < 0).any() or not np.isfinite(p).all():
        raise ValueError("class probabilities must be finite and non-negative")
    # at_least[:, j] = P(level >= j + 1); P(level >= 1) is 1 by definition (rounding aside)
    at_least = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]
    at_least[:, 0] = 1.0
    # at_least falls with the level, so the levels that qualify are a prefix
    levels = (at_least >= confidence).sum(axis=1)
    return levels, at_least[np.arange(len(p)), levels - 1]


def eligible_products(level: int, products: Sequence[Product]) -> tuple[str, ...]:
    """Products whose level is at most ``level`` (Rn fits Cn and above)."""
    return tuple(p.product_id for p in products if p.level <= level)


def flagged_holdings(
    level: int, held: Iterable[str], products: Mapping[str, Product]
) -> tuple[str, ...]:
    """Held products whose level is above ``level``, in product-table order."""
    held_set = set(held)
    return tuple(pid for pid, p in products.items() if pid in held_set and p.level > level)


def match(
    customers: Sequence[str],
    probabilities: np.ndarray,
    products: Sequence[Product],
    holdings: Mapping[str, Iterable[str]] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> list[Match]:
    """:class:`Match` per customer (row of ``probabilities``), by the module's rule."""
    levels, sure = estimate_levels(probabilities, confidence)
    by_id = {p.product_id: p for p in products}
    holdings = holdings or {}
    return [
        Match(
            customer_id=cid,
            level=int(level),
            confidence=float(p),
            eligible=eligible_products(int(level), products),
            flagged=flagged_holdings(int(level), holdings.get(cid, ()), by_id),
        )
        for cid, level, p in zip(customers, levels, sure, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class MatchSummary:
    """Counts over a matching: customers, customers per estimated level, eligible
    products per customer (mean, min, max), customers with holdings and flags."""

    customers: int
    per_level: Mapping[int, int]
    eligible_mean: float
    eligible_min: int
    eligible_max: int
    with_holdings: int
    flagged_customers: int
    flagged_holdings: int


def summarise(matches: Sequence[Match], holdings: Mapping[str, Iterable[str]]) -> MatchSummary:
    counts = np.array([len(m.eligible) for m in matches], dtype=np.int64)
    levels = [m.level for m in matches]
    return MatchSummary(
        customers=len(matches),
        per_level={lv: levels.count(lv) for lv in sorted(set(levels))},
        eligible_mean=float(counts.mean()) if len(counts) else 0.0,
        eligible_min=int(counts.min()) if len(counts) else 0,
        eligible_max=int(counts.max()) if len(counts) else 0,
        with_holdings=sum(1 for m in matches if m.customer_id in holdings),
        flagged_customers=sum(1 for m in matches if m.flagged),
        flagged_holdings=sum(len(m.flagged) for m in matches),
    )
