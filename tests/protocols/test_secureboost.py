"""SecureBoost over in-memory channels grows exactly the trees of a plaintext reference.

The reference (``tests/models/gbdt_reference.py``) pools all parties' columns and grows
the same trees in plaintext from the specification. SecureBoost is lossless by design:
the same splits (owner, feature, threshold), the same leaf weights and so the same
predictions. The wire tests check what the protocol promises to keep private.
"""

from __future__ import annotations

import dataclasses
import typing as t
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lianmo.crypto.paillier import PublicKey
from lianmo.data.table import load_table
from lianmo.errors import DataError
from lianmo.models.metrics import auc
from lianmo.models.tree import TreeParams, quantise_gh
from lianmo.protocols.context import RoleContext
from lianmo.protocols.secureboost import (
    BoostParams,
    GuestModel,
    GuestResult,
    HostResult,
    train_guest,
    train_host,
)
from lianmo.protocols.tree_route import SplitRule
from lianmo.transport import serde
from lianmo.transport.messages import EncryptedVector, PublicKeyMsg

from ..models.gbdt_reference import RefModel, fit_reference
from .conftest import WireRecorder, run_roles

# Unit tests only: 1024-bit keys keep the suite fast. Every real path refuses them.
SMALL_TEST_KEY_BITS = 1024
GUEST = "guest"
OBJECTIVES = {
    "breast": "binary",
    "default_credit": "binary",
    "vehicle_scale": "multiclass",
    "student": "regression",
}


@dataclass(frozen=True)
class Job:
    """One data set split into training and validation rows, guest columns first."""

    name: str
    objective: str
    train: tuple[np.ndarray, ...]  # per party: guest, host_1, host_2, ...
    val: tuple[np.ndarray, ...]
    y: np.ndarray
    y_val: np.ndarray
    feature_names: tuple[str, ...]
    #: per party, per column: its training category count, None if numeric (all numeric)
    categories: tuple[tuple[int | None, ...], ...] | None = None

    def kinds(self, p: int) -> tuple[int | None, ...] | None:
        return None if self.categories is None else self.categories[p]

    @property
    def hosts(self) -> tuple[str, ...]:
        if len(self.train) == 2:
            return ("host",)
        return tuple(f"host_{chr(ord('a') + i)}" for i in range(len(self.train) - 1))

    def split_host(self, at: int) -> Job:
        """The same job with the host's columns ``[:at]`` and ``[at:]`` on two hosts."""
        assert len(self.train) == 2
        return dataclasses.replace(
            self,
            train=(self.train[0], self.train[1][:, :at], self.train[1][:, at:]),
            val=(self.val[0], self.val[1][:, :at], self.val[1][:, at:]),
        )


def _load(shared_data: Path, name: str, rows: int | None = None) -> Job:
    """Guest and host of ``name`` joined in the guest's id order; 20% validation rows."""
    guest = load_table(shared_data / f"{name}_hetero_guest.csv", id_column="id", label_column="y")
    host = load_table(shared_data / f"{name}_hetero_host.csv", id_column="id")
    index = host.index_of()
    host = host.select(np.array([index[i] for i in guest.ids]))
    assert guest.y is not None
    Xg, Xh, y = guest.X, host.X, guest.y
    if rows is not None and rows < len(y):
        keep = np.sort(np.random.default_rng(0).choice(len(y), size=rows, replace=False))
        Xg, Xh, y = Xg[keep], Xh[keep], y[keep]
    is_val = np.zeros(len(y), dtype=bool)
    is_val[np.random.default_rng(1).permutation(len(y))[: len(y) // 5]] = True
    return Job(
        name=name,
        objective=OBJECTIVES[name],
        train=(Xg[~is_val], Xh[~is_val]),
        val=(Xg[is_val], Xh[is_val]),
        y=y[~is_val],
        y_val=y[is_val],
        feature_names=guest.feature_names,
    )


@pytest.fixture(scope="module")
def breast(shared_data: Path) -> Job:
    return _load(shared_data, "breast")


@pytest.fixture(scope="module")
def default_credit(shared_data: Path) -> Job:
    return _load(shared_data, "default_credit", rows=2000)


@pytest.fixture(scope="module")
def vehicle(shared_data: Path) -> Job:
    return _load(shared_data, "vehicle_scale")


@pytest.fixture(scope="module")
def student(shared_data: Path) -> Job:
    return _load(shared_data, "student")


def _params(job: Job, **overrides: t.Any) -> BoostParams:
    base: dict[str, t.Any] = dict(
        rounds=3,
        tree=TreeParams(depth=3),
        max_bins=32,
        objective=job.objective,
        key_bits=SMALL_TEST_KEY_BITS,
        insecure_test_key=True,
    )
    base.update(overrides)
    return BoostParams(**base)


@dataclass
class Trained:
    guest: GuestResult
    hosts: dict[str, HostResult]

    @property
    def model(self) -> GuestModel:
        return self.guest.model


def _train(job: Job, params: BoostParams, recorder: WireRecorder | None = None) -> Trained:
    """Run the guest and every host of ``job`` in threads over in-memory channels."""

    def guest(ctx: RoleContext) -> GuestResult:
        return train_guest(
            ctx,
            job.train[0],
            job.y,
            job.val[0],
            job.y_val,
            params,
            feature_names=job.feature_names,
            categories=job.kinds(0),
        )

    def host(p: int) -> t.Callable[[RoleContext], HostResult]:
        return lambda ctx: train_host(
            ctx, job.train[p], job.val[p], params, categories=job.kinds(p)
        )

    roles: dict[str, t.Callable[[RoleContext], t.Any]] = {GUEST: guest}
    for p, name in enumerate(job.hosts, start=1):
        roles[name] = host(p)
    out = run_roles(roles, guest=GUEST, hosts=job.hosts, recorder=recorder, timeout=120.0)
    return Trained(out[GUEST], {name: out[name] for name in job.hosts})


def _reference(job: Job, params: BoostParams, rounds: int | None = None) -> RefModel:
    return fit_reference(
        job.train,
        job.y,
        job.objective,
        rounds=params.rounds if rounds is None else rounds,
        params=params.tree,
        max_bins=params.max_bins,
        categories=job.categories,
    )


# ---- reading the federated model back in plaintext ---------------------------------------


def _rule(trained: Trained, job: Job, owner: str, split_id: int) -> tuple[int, SplitRule]:
    """(party index, rule) of a split known to the guest as (owner, split id)."""
    if owner == GUEST:
        return 0, trained.model.rules[split_id]
    assert owner in job.hosts, f"a split is owned by '{owner}', not a party of the job"
    rules = trained.hosts[owner].rules
    assert split_id in rules, f"'{owner}' has no split {split_id}"
    return job.hosts.index(owner) + 1, rules[split_id]


def _raw_scores(trained: Trained, job: Job, parties: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Raw scores after each kept tree, routing rows in plaintext with every party's rules."""
    model = trained.model
    F = np.tile(model.init_score, (parties[0].shape[0], 1)).astype(np.float64)
    after = []
    for tree in model.trees:
        at = np.zeros(len(F), dtype=np.int64)
        for i, node in enumerate(tree.nodes):
            if node.split is None:
                continue
            p, rule = _rule(trained, job, node.split.owner, node.split.split_id)
            rows = np.flatnonzero(at == i)
            left = rule.goes_left(parties[p], rows)
            at[rows[left]], at[rows[~left]] = node.left, node.right
        F[:, tree.output] += tree.values(at)
        after.append(F.copy())
    return after


def _predict(trained: Trained, job: Job, parties: Sequence[np.ndarray]) -> np.ndarray:
    F = _raw_scores(trained, job, parties)[-1]
    return trained.model.objective.predict_proba(F)


def assert_same_trees(trained: Trained, ref: RefModel, job: Job) -> None:
    """Same structure, owners, features, thresholds, default sides; leaves within 1e-12."""
    model = trained.model
    assert len(model.trees) == len(ref.trees)
    np.testing.assert_array_equal(model.init_score, ref.init_score)
    for t_, (tree, want) in enumerate(zip(model.trees, ref.trees, strict=True)):
        assert tree.output == want.output, f"tree {t_}"
        assert len(tree.nodes) == len(want.nodes), (
            f"tree {t_}: {len(tree.nodes)} nodes, reference {len(want.nodes)}"
        )
        for i, (node, ref_node) in enumerate(zip(tree.nodes, want.nodes, strict=True)):
            where = f"tree {t_} node {i}"
            if node.split is None or ref_node.is_leaf:
                assert node.split is None and ref_node.is_leaf, (
                    f"{where}: {node} but the reference has {ref_node}"
                )
                assert abs(node.value - ref_node.value) <= 1e-12, where
                continue
            p, rule = _rule(trained, job, node.split.owner, node.split.split_id)
            assert rule.tree == t_, f"{where}: the rule says it belongs to tree {rule.tree}"
            got = (p, rule.feature, rule.threshold, rule.default_left, rule.left_codes)
            got += (rule.right_codes, node.left, node.right)
            expected = (
                ref_node.party,
                ref_node.feature,
                ref_node.threshold,
                ref_node.default_left,
                ref_node.left_codes,
                ref_node.right_codes,
                ref_node.left,
                ref_node.right,
            )
            assert got == expected, (
                f"{where}: protocol split (party, feature, threshold, default left, left, "
                f"right) {got} with "
                f"gain {node.split.gain!r}, reference {expected} with gain {ref_node.gain!r}"
            )


def assert_lossless(trained: Trained, ref: RefModel, job: Job) -> None:
    assert_same_trees(trained, ref, job)
    np.testing.assert_allclose(
        trained.guest.validation_scores, ref.predict(job.val), rtol=0, atol=1e-6
    )
    objective = trained.model.objective
    want_loss = objective.loss(job.y, ref.raw_scores(job.train))
    kept_rounds = len(trained.model.trees) // objective.outputs
    assert trained.guest.train_loss[kept_rounds - 1] == pytest.approx(want_loss, abs=1e-9)
    # every host rule is a split of exactly one tree
    used = {
        (node.split.owner, node.split.split_id)
        for tree in trained.model.trees
        for node in tree.nodes
        if node.split is not None and node.split.owner != GUEST
    }
    for name, result in trained.hosts.items():
        assert {i for owner, i in used if owner == name} == set(result.rules)
        assert result.trees == len(trained.model.trees)


# ---- losslessness -----------------------------------------------------------------------


def test_breast_trees_equal_the_plaintext_reference(breast: Job) -> None:
    params = _params(breast, rounds=4)
    trained = _train(breast, params)
    assert_lossless(trained, _reference(breast, params), breast)
    assert auc(breast.y_val, trained.guest.validation_scores) > 0.95


def test_default_credit_sample_trees_equal_the_plaintext_reference(default_credit: Job) -> None:
    params = _params(default_credit, rounds=4)
    trained = _train(default_credit, params)
    assert_lossless(trained, _reference(default_credit, params), default_credit)
    owners = {n.split.owner for tree in trained.model.trees for n in tree.nodes if n.split}
    assert owners == {GUEST, "host"}  # both parties' splits are exercised


def test_two_hosts_grow_the_trees_of_the_pooled_reference(breast: Job) -> None:
    job = breast.split_host(10)
    params = _params(job, rounds=3)
    trained = _train(job, params)
    assert_lossless(trained, _reference(job, params), job)
    owners = {n.split.owner for tree in trained.model.trees for n in tree.nodes if n.split}
    assert owners == {GUEST, "host_a", "host_b"}  # every party wins some splits


def test_multiclass_grows_one_tree_per_class_and_is_lossless(vehicle: Job) -> None:
    assert set(np.unique(vehicle.y)) == {0.0, 1.0, 2.0, 3.0}
    params = _params(vehicle, rounds=3)
    trained = _train(vehicle, params)
    model = trained.model
    assert model.objective.n_classes == 4
    assert [tree.output for tree in model.trees] == [0, 1, 2, 3] * 3
    proba = trained.guest.validation_scores
    assert proba.shape == (len(vehicle.y_val), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert np.mean(proba.argmax(axis=1) == vehicle.y_val) > 0.6  # chance is about 0.25
    assert_lossless(trained, _reference(vehicle, params), vehicle)


def test_regression_beats_the_mean_and_is_lossless(student: Job) -> None:
    params = _params(student, rounds=5)
    trained = _train(student, params)
    pred = trained.guest.validation_scores
    assert pred.shape == (len(student.y_val),)
    mse = float(np.mean((pred - student.y_val) ** 2))
    # Without the earlier grades this data set is hard: even the pooled reference only
    # gets about 15% below the variance on validation rows, but far below on training rows.
    assert mse < 0.9 * float(np.var(student.y_val))
    assert trained.guest.validation_loss[-1] == pytest.approx(mse)
    assert trained.guest.train_loss[-1] < 0.7 * float(np.var(student.y))
    assert_lossless(trained, _reference(student, params), student)


@pytest.mark.parametrize(
    "tree",
    [
        TreeParams(depth=3, gamma=1e9),  # no split is worth it: every tree is one leaf
        TreeParams(depth=5, min_child_weight=60.0),  # splits stop before depth 5
    ],
    ids=["root-leaf", "stops-early"],
)
def test_a_tree_that_stops_before_its_depth_is_lossless(breast: Job, tree: TreeParams) -> None:
    params = _params(breast, rounds=2, tree=tree)
    ref = _reference(breast, params)
    assert any(t_.depth_reached < tree.depth for t_ in ref.trees)  # the case under test
    assert_lossless(_train(breast, params), ref, breast)


# ---- privacy on the wire ----------------------------------------------------------------


def _windows(payload: bytes) -> np.ndarray:
    """Every 8-byte window of ``payload`` (at every offset) as a little-endian uint64."""
    raw = np.frombuffer(payload, dtype=np.uint8)
    if len(raw) < 8:
        return np.zeros(0, dtype=np.uint64)
    win = np.lib.stride_tricks.sliding_window_view(raw, 8)
    return np.ascontiguousarray(win).view("<u8").ravel()


def _as_u64(values: np.ndarray, dtype: str) -> np.ndarray:
    return np.frombuffer(np.ascontiguousarray(values, dtype=dtype).tobytes(), dtype="<u8")


def _informative(values: np.ndarray) -> np.ndarray:
    """Float values worth looking for: not the trivially common 0, +-1, +-0.5."""
    v = np.unique(np.asarray(values, dtype=np.float64))
    return v[~np.isin(np.abs(v), (0.0, 0.5, 1.0))]


def _hits(payloads: Sequence[bytes], needles: np.ndarray) -> list[tuple[int, int]]:
    """(payload, byte offset) of every 8-byte needle found anywhere in the payloads."""
    found = []
    for i, payload in enumerate(payloads):
        w = _windows(payload)
        found += [(i, int(off)) for off in np.flatnonzero(np.isin(w, needles))]
    return found


@pytest.mark.parametrize("name", ["breast", "student"])
def test_no_label_gradient_or_host_threshold_crosses_the_wire(
    name: str, request: pytest.FixtureRequest, wire: WireRecorder
) -> None:
    job: Job = request.getfixturevalue(name)
    params = _params(job, rounds=2)
    trained = _train(job, params, recorder=wire)
    sent = wire.envelopes
    assert len(sent) > 20
    payloads = [e.payload for e in sent]

    # nothing in plaintext floats goes from the label holder to a host
    kinds = {(e.sender, e.receiver, e.payload_type.removeprefix("lianmo.v1.")) for e in sent}
    assert not {k for k in kinds if k[0] == GUEST and k[2] == "FloatVector"}

    # labels: single values (where not trivial) and runs of four as float64
    labels = np.concatenate([job.y, job.y_val])
    assert not _hits(payloads, _as_u64(_informative(labels), "<f8"))
    runs = [job.y[i : i + 4] for i in range(len(job.y) - 3)]
    for run in runs:
        if len(np.unique(run)) > 1:
            needle = np.ascontiguousarray(run, dtype="<f8").tobytes()
            assert not any(needle in p for p in payloads)

    # g and h of every tree, as float64 and as the quantised int64 the guest encrypts
    objective = trained.model.objective
    F = [np.tile(trained.model.init_score, (len(job.y), 1))]
    F += _raw_scores(trained, job, job.train)[:-1]
    gh_floats, gh_ints = [], []
    for t_, tree in enumerate(trained.model.trees):
        g, h = objective.grad_hess(job.y, F[t_])
        g, h = g[:, tree.output], h[:, tree.output]
        scale = 2.0 ** quantise_gh(g, h, len(g)).frac_bits
        gh_floats += [_informative(g), _informative(h)]
        gh_ints += [np.rint(_informative(v) * scale).astype(np.int64) for v in (g, h)]
    float_needles = _as_u64(np.concatenate(gh_floats), "<f8")
    int_needles = _as_u64(np.concatenate(gh_ints), "<i8")
    assert len(float_needles) > 10 and len(int_needles) > 10
    # the search itself finds a needle at any offset
    assert _hits([b"pad" + float_needles[:1].tobytes()], float_needles) == [(0, 3)]
    assert not _hits(payloads, float_needles)
    assert not _hits(payloads, int_needles)

    # the hosts' thresholds stay with the hosts
    thresholds = [r.threshold for result in trained.hosts.values() for r in result.rules.values()]
    needles = _as_u64(_informative(np.array(thresholds)), "<f8")
    assert len(needles) > 0
    assert not _hits(payloads, needles)

    # every ciphertext a host sends is under the guest's key
    keys = [serde.decode_payload(e.payload_type, e.payload) for e in sent if e.sender == GUEST]
    moduli = {k.n for k in keys if isinstance(k, PublicKeyMsg)}
    assert len(moduli) == 1
    fingerprint = PublicKey.from_n(int.from_bytes(moduli.pop(), "big"), min_bits=0).fingerprint
    from_hosts = [
        serde.decode_payload(e.payload_type, e.payload)
        for e in sent
        if e.sender != GUEST and e.payload_type == "lianmo.v1.EncryptedVector"
    ]
    assert from_hosts
    for msg in from_hosts:
        assert isinstance(msg, EncryptedVector) and msg.key_id == fingerprint


# ---- early stopping, sampling, bad input -------------------------------------------------


def test_early_stopping_keeps_the_best_rounds_on_every_party(breast: Job) -> None:
    tree = TreeParams(depth=3, learning_rate=1.0, l2=0.0, min_child_weight=0.0)
    params = _params(breast, rounds=12, tree=tree, early_stopping_rounds=2)
    trained = _train(breast, params)
    result = trained.guest
    best = result.best_rounds
    ran = len(result.validation_loss)
    assert ran < params.rounds, "the validation loss never stalled: pick a setting that overfits"
    assert ran == best + 2
    assert best == int(np.argmin(result.validation_loss)) + 1
    assert len(trained.model.trees) == best
    host = trained.hosts["host"]
    assert host.trees == best
    assert all(rule.tree < best for rule in host.rules.values())
    # the kept model is the first ``best`` rounds, and scores are its predictions
    assert_lossless(trained, _reference(breast, params, rounds=best), breast)
    np.testing.assert_allclose(
        result.validation_scores, _predict(trained, breast, breast.val), rtol=0, atol=1e-12
    )


def test_row_and_column_sampling_trains_and_is_replayable(breast: Job) -> None:
    params = _params(breast, rounds=3, subsample=0.7, colsample=0.6)
    first, second = _train(breast, params), _train(breast, params)
    assert first.model.trees == second.model.trees
    assert first.model.rules == second.model.rules
    assert first.hosts["host"].rules == second.hosts["host"].rules
    np.testing.assert_array_equal(first.guest.validation_scores, second.guest.validation_scores)
    assert auc(breast.y_val, first.guest.validation_scores) > 0.9
    np.testing.assert_allclose(
        first.guest.validation_scores, _predict(first, breast, breast.val), rtol=0, atol=1e-12
    )
    # the samples changed the model: it is not the full-data reference
    full = _reference(breast, params)
    assert np.abs(first.guest.validation_scores - full.predict(breast.val)).max() > 1e-3


def test_non_integer_multiclass_labels_are_refused_naming_the_party(vehicle: Job) -> None:
    job = dataclasses.replace(vehicle, y=np.where(vehicle.y == 3.0, 0.5, vehicle.y))
    with pytest.raises(DataError, match=r"party 'guest'.*0\.5.*multiclass"):
        _train(job, _params(job, rounds=1))
