"""BoostTables: the served SecureBoost arithmetic from tables made once gives the very
numbers of the shared code (GuestModel.raw_scores, Forest.host_columns)."""

from __future__ import annotations

import numpy as np
import pytest

from lianmo.errors import ProtocolError
from lianmo.models.objectives import Objective
from lianmo.models.tree import Split, Tree, TreeNode
from lianmo.node.serving.boost_tables import BoostTables
from lianmo.protocols.online_score import Forest
from lianmo.protocols.secureboost.params import GuestModel
from lianmo.protocols.tree_route import SplitRule

GUEST, HOST = "broker", "platform"


def _tree(output: int, root: Split, left: Split, values: tuple[float, ...]) -> Tree:
    """A depth-2 tree: a split at the root, a split on its left, three leaves."""
    a, b, c = values
    return Tree(
        output,
        (
            TreeNode(root, left=1, right=2),
            TreeNode(left, left=3, right=4),
            TreeNode(value=a),
            TreeNode(value=b),
            TreeNode(value=c),
        ),
    )


def _model(objective: Objective, outputs: int) -> GuestModel:
    rng = np.random.default_rng(4)
    own = {0: SplitRule(0, 0.5, 0, 0), 1: SplitRule(1, -0.2, 1, 1)}
    trees = []
    for t in range(12):
        root = Split(GUEST, t % 2, 1.0) if t % 3 else Split(HOST, 900 + t, 1.0)
        left = Split(HOST, 800 + t % 4, 0.5)
        trees.append(_tree(t % outputs, root, left, tuple(rng.normal(size=3) / 7)))
    init = rng.normal(size=outputs)
    return GuestModel(objective, init, trees, own, depth=2)


@pytest.mark.parametrize(
    ("objective", "outputs"),
    [(Objective("binary"), 1), (Objective("multiclass", 3), 3), (Objective("regression", 1), 1)],
)
def test_tables_give_the_same_numbers_as_the_shared_code(
    objective: Objective, outputs: int
) -> None:
    model = _model(objective, outputs)
    forest = Forest.of(model.trees, model.depth, GUEST, model.rules, [HOST])
    tables = BoostTables.of(model, forest)
    rng = np.random.default_rng(5)
    host_ids = np.concatenate([forest.host_splits[HOST], [12345]]).astype(np.uint64)
    rng.shuffle(host_ids)  # the host's own order, with a split the trees do not use
    for rows in (1, 7, 100):
        X = rng.normal(size=(rows, 2))
        host_sides = rng.random((rows, len(host_ids))) < 0.5
        want = forest.host_columns(HOST, host_ids, host_sides)
        for _ in range(2):  # the second time from the remembered columns
            assert np.array_equal(tables.host_columns(HOST, host_ids, host_sides), want)
        sides = np.concatenate([forest.own.sides(X), want], axis=1)
        leaves = forest.leaves(sides)
        assert np.array_equal(tables.raw_scores(leaves), model.raw_scores(leaves))  # bitwise
        assert np.array_equal(
            tables.scores(sides), objective.predict_proba(model.raw_scores(leaves))
        )


def test_a_host_leaving_out_a_split_the_trees_use_is_refused_every_time() -> None:
    model = _model(Objective("binary"), 1)
    forest = Forest.of(model.trees, model.depth, GUEST, model.rules, [HOST])
    tables = BoostTables.of(model, forest)
    full = forest.host_splits[HOST]
    tables.host_columns(HOST, full, np.zeros((1, len(full)), bool))
    short = full[1:]
    for _ in range(2):
        with pytest.raises(ProtocolError, match="answered without split"):
            tables.host_columns(HOST, short, np.zeros((1, len(short)), bool))
