"""Tests for lianmo.data.split: id-hashed validation split and the shared batch schedule."""

from __future__ import annotations

import numpy as np
import pytest

from lianmo.data.split import batch_count, batch_schedule, validation_mask
from lianmo.errors import ConfigError

IDS = [f"client-{i}" for i in range(10_000)]


def test_validation_mask_share_is_close_to_the_request() -> None:
    mask = validation_mask(IDS, 0.2, seed=42)
    assert mask.dtype == np.bool_
    assert mask.shape == (10_000,)
    assert abs(mask.mean() - 0.2) < 0.015


def test_validation_mask_is_deterministic_and_independent_of_row_order() -> None:
    # Prepare: the other party holds the same ids in another order.
    order = np.random.default_rng(0).permutation(len(IDS))
    shuffled = [IDS[i] for i in order]

    # Execute
    mine = validation_mask(IDS, 0.3, seed=7)
    theirs = validation_mask(shuffled, 0.3, seed=7)

    # Assert
    np.testing.assert_array_equal(validation_mask(IDS, 0.3, seed=7), mine)
    np.testing.assert_array_equal(theirs, mine[order])


def test_validation_mask_depends_on_the_seed_and_grows_with_the_share() -> None:
    assert (validation_mask(IDS, 0.2, seed=1) != validation_mask(IDS, 0.2, seed=2)).any()
    small, large = validation_mask(IDS, 0.1, seed=3), validation_mask(IDS, 0.5, seed=3)
    assert not (small & ~large).any()
    assert not validation_mask(IDS, 0.0, seed=3).any()


def test_validation_mask_matches_pinned_values() -> None:
    # Pinned so that a change of the hashing rule (which would silently split parties
    # differently across versions) fails here.
    mask = validation_mask([str(i) for i in range(16)], 0.5, seed=42)
    assert "".join("1" if v else "0" for v in mask) == PINNED_MASK


PINNED_MASK = "1000010111111111"


@pytest.mark.parametrize("share", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
def test_validation_mask_rejects_a_share_outside_0_1(share: float) -> None:
    with pytest.raises(ConfigError, match=r"validation share is .* but must be a number with 0 <="):
        validation_mask(IDS[:3], share, seed=0)


@pytest.mark.parametrize(
    ("n_rows", "batch_size", "sizes"),
    [
        (10, 3, [3, 3, 4]),
        (12, 4, [4, 4, 4]),
        (5, 10, [5]),
        (1, 1, [1]),
        (1027, 256, [256] * 3 + [259]),
    ],
)
def test_batch_schedule_covers_every_row_once_per_epoch(
    n_rows: int, batch_size: int, sizes: list[int]
) -> None:
    for epoch in range(3):
        batches = batch_schedule(n_rows, batch_size, epoch, seed=5)
        assert [len(b) for b in batches] == sizes
        assert len(batches) == batch_count(n_rows, batch_size)
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(n_rows))


def test_no_batch_is_short_the_remainder_joins_the_last_batch() -> None:
    """A short final batch (n mod batch_size rows) would let an LR host solve its rows'
    labels from one gradient; no batch has fewer than batch_size rows."""
    for n_rows in range(64, 300):
        batches = batch_schedule(n_rows, 64, epoch=1, seed=3)
        assert min(len(b) for b in batches) >= 64
        assert max(len(b) for b in batches) < 128


def test_batch_schedule_is_the_same_on_every_call_and_differs_per_epoch() -> None:
    first = batch_schedule(1000, 100, epoch=0, seed=9)
    again = batch_schedule(1000, 100, epoch=0, seed=9)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = np.concatenate(batch_schedule(1000, 100, epoch=1, seed=9))
    assert (np.concatenate(first) != other).any()
    rng = np.random.default_rng(np.random.SeedSequence([9, 0]))
    np.testing.assert_array_equal(np.concatenate(first), rng.permutation(1000))


def test_batch_schedule_of_no_rows_is_empty() -> None:
    assert batch_schedule(0, 10, epoch=0, seed=0) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 10, 0, 0), "n_rows is -1 but must be at least 0"),
        ((10, 0, 0, 0), "batch_size is 0 but must be at least 1"),
        ((10, 5, -2, 0), "epoch is -2 but must be at least 0"),
        ((10, 5, 0, -3), "seed is -3 but must be at least 0"),
    ],
)
def test_batch_schedule_rejects_bad_arguments(
    args: tuple[int, int, int, int], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        batch_schedule(*args)
