"""Attack tests: the stratified validation split tells a host nothing about labels (issue 18).

A host knows the job seed, the aligned ids and (from ``split.validation_rows``) which
aligned rows are validation rows. It does not know the labels. On the real
``default_credit_hetero`` table (30 000 rows, 22% defaults), the host's best attack
against a split keyed on the public ``sha256(seed|id)`` recovers labels exactly; against
the split the guest draws from its own DRBG it does no better than guessing from the
class shares.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from lianmo.crypto.drbg import Drbg
from lianmo.data.split import stratified_validation_mask
from lianmo.errors import ConfigError

SEED = 42  # the job seed, which every party knows
SHARE = 0.2


@pytest.fixture(scope="module")
def credit(shared_data: Path) -> tuple[list[str], np.ndarray]:
    """Ids and labels of the guest's default_credit_hetero table."""
    with (shared_data / "default_credit_hetero_guest.csv").open(newline="") as f:
        rows = [(r["id"], int(r["y"])) for r in csv.DictReader(f)]
    return [i for i, _ in rows], np.array([y for _, y in rows])


def _public_keys(ids: list[str], seed: int) -> np.ndarray:
    """What any party can compute per id: the split hash of ``data/split.py``."""
    prefix = f"lianmo-split-v1|{seed}|"
    return np.array(
        [int.from_bytes(hashlib.sha256((prefix + i).encode()).digest()[:8], "big") for i in ids],
        dtype=np.uint64,
    )


def _public_hash_split(ids: list[str], labels: np.ndarray) -> np.ndarray:
    """The stratified split before issue 18: per class, the rows of lowest public hash."""
    keys, mask = _public_keys(ids, SEED), np.zeros(len(ids), dtype=bool)
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        mask[rows[np.argsort(keys[rows])[: round(SHARE * len(rows))]]] = True
    return mask


def _threshold_attack(ids: list[str], is_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The host's attack: rows it claims to label, and its guess (True: class "high").

    If each class took its lowest hashes, every row below the first training row's hash
    is validation, and between there and the last validation row's hash a validation
    row belongs to the class with the higher cut-off and a training row to the other.
    """
    order = np.argsort(_public_keys(ids, SEED))
    in_val = is_val[order]
    first_train = int(np.argmin(in_val))
    last_val = len(in_val) - 1 - int(np.argmax(in_val[::-1]))
    window = order[first_train : last_val + 1]
    return window, is_val[window]


def _attack_accuracy(guess: np.ndarray, truth: np.ndarray) -> float:
    """Accuracy with the better of the two ways to name the classes (the host's best case)."""
    agree = float(np.mean(guess == truth))
    return max(agree, 1 - agree)


def _drawn_split(
    labels: np.ndarray, seed: bytes = b"guest-secret-seed-32-bytes-long!"
) -> np.ndarray:
    return stratified_validation_mask(labels, SHARE, Drbg(seed).child("split/validation"))


def test_the_threshold_attack_reads_labels_off_a_public_hash_split(
    credit: tuple[list[str], np.ndarray],
) -> None:
    # The attack works (so the next test can fail): the review's finding, reproduced.
    ids, labels = credit
    window, guess = _threshold_attack(ids, _public_hash_split(ids, labels))
    assert len(window) >= 30
    assert _attack_accuracy(guess, labels[window] == 1) == 1.0


def test_the_threshold_attack_on_the_drawn_split_does_no_better_than_the_class_shares(
    credit: tuple[list[str], np.ndarray],
) -> None:
    ids, labels = credit
    window, guess = _threshold_attack(ids, _drawn_split(labels))
    # The "window" is now nearly every row, and the guess is worse than naming every
    # row by the majority class, which the class shares alone allow.
    assert len(window) > 0.99 * len(ids)
    majority = max(np.mean(labels[window]), 1 - np.mean(labels[window]))
    assert _attack_accuracy(guess, labels[window] == 1) < majority


@pytest.mark.parametrize(
    ("split", "leaks"), [(_public_hash_split, True), (None, False)], ids=["public-hash", "drawn"]
)
def test_membership_with_public_hashes_predicts_labels_no_better_than_chance(
    credit: tuple[list[str], np.ndarray], split: object, leaks: bool
) -> None:
    # Independence of label and membership given what the host can compute (the hash),
    # tested on 50 hash bins: a sum of per-bin chi-square statistics (Cochran's test).
    ids, labels = credit
    is_val = _public_hash_split(ids, labels) if split is not None else _drawn_split(labels)
    bins = np.searchsorted(
        np.quantile(keys := _public_keys(ids, SEED).astype(float), np.linspace(0, 1, 51)[1:-1]),
        keys,
    )
    statistic, dof = 0.0, 0
    for b in range(50):
        rows = bins == b
        table = np.array(
            [
                [np.sum(rows & is_val & (labels == y)), np.sum(rows & ~is_val & (labels == y))]
                for y in (0, 1)
            ]
        )
        if (table.sum(axis=0) > 0).all() and (table.sum(axis=1) > 0).all():
            statistic += stats.chi2_contingency(table, correction=False)[0]
            dof += 1
    p_value = float(stats.chi2.sf(statistic, dof))
    if leaks:
        assert p_value < 1e-6
    else:
        assert p_value > 0.01
    # Membership alone: the validation set has the class shares of the whole table.
    assert abs(labels[is_val].mean() - labels.mean()) < 1 / is_val.sum()


def test_the_drawn_split_keeps_each_class_share_exactly() -> None:
    labels = np.repeat([0, 1, 2], [1000, 230, 7])
    for share in (0.0, 0.1, 0.2, 0.25, 0.5):
        mask = stratified_validation_mask(labels, share, Drbg(b"s" * 32))
        for value, n in ((0, 1000), (1, 230), (2, 7)):
            assert mask[labels == value].sum() == round(share * n)


def test_the_drawn_split_is_uniform_secret_and_replayable() -> None:
    labels = np.repeat([0, 1], [40, 10])
    # Same DRBG stream, same split (replay); another guest seed, another split.
    first = stratified_validation_mask(labels, SHARE, Drbg(b"a" * 32))
    assert (stratified_validation_mask(labels, SHARE, Drbg(b"a" * 32)) == first).all()
    assert (stratified_validation_mask(labels, SHARE, Drbg(b"b" * 32)) != first).any()
    # Every row of a class is as likely to be taken: 2000 draws, chi-square on the counts.
    root = Drbg(b"uniformity-test-seed-32-bytes!!!")
    counts = sum(
        stratified_validation_mask(labels, SHARE, root.child(str(i))).astype(int)
        for i in range(2000)
    )
    for value in (0, 1):
        per_row = counts[labels == value]
        assert stats.chisquare(per_row).pvalue > 0.001


@pytest.mark.parametrize("share", [-0.1, 1.0, float("nan")])
def test_the_drawn_split_refuses_a_share_outside_0_1(share: float) -> None:
    with pytest.raises(ConfigError, match=r"validation share is .* but must be a number with 0 <="):
        stratified_validation_mask(np.zeros(3), share, Drbg(b"s" * 32))
