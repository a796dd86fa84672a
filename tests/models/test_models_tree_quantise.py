"""The (g, h) fixed point: the widest layout an honest label holder can announce."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lianmo.models.tree import SUM_BITS, honest_value_bits, quantise_gh

magnitudes = st.floats(2.0**-45, 2.0**20, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.one_of(st.integers(1, 70_000), st.sampled_from([1, 2, 3, 2**10, 2**14 + 1, 24_000])),
    top=st.one_of(magnitudes, st.sampled_from([1.0, 0.25, 2.0**-40, 0.999999999])),
    seed=st.integers(0, 2**32 - 1),
)
def test_quantise_gh_never_needs_more_than_honest_value_bits(
    rows: int, top: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    g = rng.uniform(-top, top, size=min(rows, 50))
    g[0] = top * rng.choice([-1.0, 1.0])  # the largest magnitude is present
    h = np.abs(rng.uniform(0, top, size=len(g)))
    q = quantise_gh(g, h, rows)
    assert q.value_bits <= honest_value_bits(rows)


@given(rows=st.integers(1, 10**6))
def test_honest_value_bits_is_reached_and_keeps_sums_exact(rows: int) -> None:
    """The ceiling is tight (the largest |g| of 1.0 reaches it) and n values stay exact."""
    q = quantise_gh(np.array([1.0]), np.array([0.0]), rows)
    assert q.value_bits == honest_value_bits(rows)
    assert rows * (2 ** honest_value_bits(rows) - 1) < 2 ** (SUM_BITS + 1)


def test_the_default_credit_ceiling() -> None:
    """24,000 rows: at most 37 bits per value, so 53-bit slots, 106 bits per candidate."""
    assert honest_value_bits(24_000) == 37
