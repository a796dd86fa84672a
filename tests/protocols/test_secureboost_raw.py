"""SecureBoost on the raw credit files: missing cells, lossless against the reference.

The raw files blank ``limit_bal`` in 3% of broker rows and the oldest three months in
10% of platform rows; SecureBoost learns a default direction per split for guest and
host columns alike and must still grow exactly the reference's trees.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from lianmo.models.metrics import auc
from lianmo.models.tree import TreeParams
from lianmo.protocols.secureboost import BoostParams
from lianmo.protocols.tree_route import SplitRule

from ..models.gbdt_reference import fit_reference
from ..raw_credit import raw_credit
from .conftest import WireRecorder
from .test_secureboost import (
    GUEST,
    Job,
    Trained,
    _predict,
    _reference,
    _train,
    assert_lossless,
)

# Unit tests only: 512-bit keys keep these raw-data tests fast. Every real path refuses them.
SMALL_TEST_KEY_BITS_512 = 512
GUEST_NUMERIC = ["limit_bal", "age"]
HOST_NUMERIC = [f"bill_amt{i}" for i in range(1, 7)] + [f"pay_amt{i}" for i in range(1, 7)]
GUEST_ALL = ["limit_bal", "sex", "education", "marriage", "age"]
HOST_ALL = [f"pay_{i}" for i in range(1, 7)] + HOST_NUMERIC


def raw_job(shared_data: Path, guest: list[str], host: list[str], rows: int) -> Job:
    """``rows`` common rows of the raw credit files; 20% of them validation rows."""
    broker, platform = raw_credit(shared_data)
    keep = np.sort(np.random.default_rng(0).choice(len(broker.ids), size=rows, replace=False))
    g, h = broker.rows(keep).columns(guest), platform.rows(keep).columns(host)
    assert g.y is not None
    is_val = np.zeros(rows, dtype=bool)
    is_val[np.random.default_rng(1).permutation(rows)[: rows // 5]] = True
    return Job(
        name="credit_raw",
        objective="binary",
        train=(g.X[~is_val], h.X[~is_val]),
        val=(g.X[is_val], h.X[is_val]),
        y=g.y[~is_val],
        y_val=g.y[is_val],
        feature_names=g.names,
        categories=(g.categorical, h.categorical),
    )


@pytest.fixture(scope="module")
def missing_job(shared_data: Path) -> Job:
    return raw_job(shared_data, GUEST_NUMERIC, HOST_NUMERIC, rows=3000)


@pytest.fixture(scope="module")
def category_job(shared_data: Path) -> Job:
    return raw_job(shared_data, GUEST_ALL, HOST_ALL, rows=3000)


def _params(**overrides: object) -> BoostParams:
    base: dict[str, object] = dict(
        rounds=4,
        tree=TreeParams(depth=3),
        max_bins=32,
        objective="binary",
        key_bits=SMALL_TEST_KEY_BITS_512,
        insecure_test_key=True,
    )
    base.update(overrides)
    return BoostParams(**base)  # type: ignore[arg-type]


def _default_sides(trained: Trained) -> set[tuple[str, bool]]:
    """(owner, default left) of every rule the parties keep."""
    out = {(GUEST, r.default_left) for r in trained.model.rules.values()}
    for name, result in trained.hosts.items():
        out |= {(name, r.default_left) for r in result.rules.values()}
    return out


def test_missing_cells_in_guest_and_host_columns_grow_the_reference_trees_512_bit_key(
    missing_job: Job,
) -> None:
    job = missing_job
    assert np.isnan(job.train[0]).any() and np.isnan(job.train[1]).any()  # the case under test
    params = _params(rounds=6)
    trained = _train(job, params)
    ref = _reference(job, params)
    assert_lossless(trained, ref, job)
    # missing rows went left at some splits and right at others, on both sides
    sides = _default_sides(trained)
    assert (GUEST, False) in sides and ("host", True) in sides and ("host", False) in sides
    # scoring sends missing cells the learned way: rows with a blanked history are routed
    blank = np.isnan(job.val[1]).any(axis=1)
    assert blank.any() and np.isfinite(trained.guest.validation_scores[blank]).all()


def _needles(mask: np.ndarray) -> list[bytes]:
    """A row mask as it could travel: packed bits (both orders), indices as 4 and 8 bytes."""
    rows = np.flatnonzero(mask)
    out = [np.packbits(mask, bitorder=o).tobytes()[:16] for o in ("big", "little")]
    out += [rows[:4].astype(d).tobytes() for d in ("<u4", "<i8", ">u4")]
    return out


def test_no_missing_position_crosses_the_wire_beyond_the_partitions_512_bit_key(
    missing_job: Job, wire: WireRecorder
) -> None:
    job = missing_job
    trained = _train(job, _params(rounds=2), recorder=wire)
    sent = wire.envelopes
    # the same steps as on data without missing cells: no new message kind
    plain = WireRecorder()
    full = tuple(np.nan_to_num(x, nan=-1.0) for x in job.train)
    _train(dataclasses.replace(job, train=full), _params(rounds=2), recorder=plain)
    steps = {(e.sender, e.receiver, e.tag) for e in sent}
    assert steps == {(e.sender, e.receiver, e.tag) for e in plain.envelopes}
    # which training rows of each column are missing: not in any payload, in any form
    # (a host partition shows the side of every row of its node, missing or not)
    payloads = [e.payload for e in sent if e.tag != "sb.partitions"]
    for p, X in enumerate(job.train):
        for f in range(X.shape[1]):
            blank = np.isnan(X[:, f])
            if blank.sum() < 4:
                continue
            for needle in _needles(blank):
                assert not any(needle in payload for payload in payloads), (p, f)
    # the search finds such a needle where it is
    mask = np.isnan(job.train[1][:, -1])
    assert _needles(mask)[0] in b"pad" + np.packbits(mask).tobytes()
    assert trained.hosts["host"].rules  # the host did make splits


def test_scoring_sends_a_missing_cell_to_the_learned_side_512_bit_key(missing_job: Job) -> None:
    """The validation scores are those of the rules with NaN sent to ``default_left``; with
    every default flipped, rows with a missing cell score differently."""
    job = missing_job
    trained = _train(job, _params(rounds=3))
    scores = trained.guest.validation_scores
    np.testing.assert_allclose(scores, _predict(trained, job, job.val), rtol=0, atol=1e-12)
    flipped = Trained(
        dataclasses.replace(
            trained.guest,
            model=dataclasses.replace(
                trained.model,
                rules={i: _flip(r) for i, r in trained.model.rules.items()},
            ),
        ),
        {
            name: dataclasses.replace(h, rules={i: _flip(r) for i, r in h.rules.items()})
            for name, h in trained.hosts.items()
        },
    )
    other = _predict(flipped, job, job.val)
    blank = np.isnan(job.val[0]).any(axis=1) | np.isnan(job.val[1]).any(axis=1)
    np.testing.assert_array_equal(other[~blank], scores[~blank])
    assert np.abs(other[blank] - scores[blank]).max() > 1e-3


def _flip(rule: SplitRule) -> SplitRule:
    return dataclasses.replace(rule, default_left=not rule.default_left)


def test_categories_and_missing_cells_on_both_sides_grow_the_reference_trees_512_bit_key(
    category_job: Job,
) -> None:
    job = category_job
    assert job.categories is not None
    assert any(job.categories[0]) and any(job.categories[1])  # categories on both sides
    params = _params(rounds=6)
    trained = _train(job, params)
    assert_lossless(trained, _reference(job, params), job)
    categorical = {
        (owner, r.left_codes is not None)
        for owner, rules in [(GUEST, trained.model.rules)]
        + [(n, h.rules) for n, h in trained.hosts.items()]
        for r in rules.values()
    }
    assert ("host", True) in categorical  # the host's partitions are exercised


def test_no_category_name_or_code_column_crosses_the_wire_512_bit_key(
    category_job: Job, shared_data: Path, wire: WireRecorder
) -> None:
    job = category_job
    _train(job, _params(rounds=2), recorder=wire)
    payloads = [e.payload for e in wire.envelopes]
    broker, platform = raw_credit(shared_data)
    names = {c for table in (broker, platform) for cats in table.categories.values() for c in cats}
    assert "revolving" in names and "graduate school" in names
    for name in names:
        for encoded in (name.encode(), name.encode("utf-16-le")):
            assert not any(encoded in p for p in payloads), name
    # a host categorical column's codes (runs of 8 rows, 3+ distinct) in any width: not
    # sent by the host (the guest's positions show its own splits, as without categories)
    from_host = [e.payload for e in wire.envelopes if e.sender != GUEST]
    X, checked = job.train[1], 0
    for f, k in enumerate(job.kinds(1) or ()):
        for start in range(0, 400, 8):
            run = X[start : start + 8, f]
            if k is None or np.isnan(run).any() or len(np.unique(run)) < 3:
                continue
            checked += 1
            for dtype in ("u1", "<u4", "<i8", "<f8"):
                needle = run.astype(dtype).tobytes()
                assert not any(needle in payload for payload in from_host), (f, dtype)
    assert checked > 10


def test_the_reference_matches_pooled_xgboost_on_the_raw_credit_files(shared_data: Path) -> None:
    """The trees SecureBoost grows (= the reference, by the lossless tests) score within
    0.005 AUC of XGBoost's own missing-value and categorical handling, same rows."""
    broker, platform = raw_credit(shared_data)
    assert broker.y is not None
    y = broker.y
    is_val = np.zeros(len(y), dtype=bool)
    is_val[np.random.default_rng(42).permutation(len(y))[: len(y) // 5]] = True
    ref = fit_reference(
        [broker.X[~is_val], platform.X[~is_val]],
        y[~is_val],
        "binary",
        rounds=30,
        params=TreeParams(depth=3, learning_rate=0.3),
        max_bins=32,
        categories=[broker.categorical, platform.categorical],
    )
    ours = auc(y[is_val], ref.predict([broker.X[is_val], platform.X[is_val]]))
    kinds = broker.categorical + platform.categorical
    model = xgb.XGBClassifier(
        n_estimators=30,
        max_depth=3,
        learning_rate=0.3,
        max_bin=32,
        tree_method="hist",
        enable_categorical=True,
        max_cat_to_onehot=1,
        feature_types=["q" if k is None else "c" for k in kinds],
    )
    X = np.hstack([broker.X, platform.X])
    model.fit(X[~is_val], y[~is_val])
    pooled = auc(y[is_val], model.predict_proba(X[is_val])[:, 1])
    assert pooled > 0.77 and abs(ours - pooled) < 0.005, (ours, pooled)
