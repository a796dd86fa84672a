"""Routing rows through federated trees: every party answers only for its own splits.

The label holder (guest) holds the tree structures; a split is known to it only as
(owner, split id), a host's split ids being random (:mod:`lianmo.protocols.secureboost`).
Rows move down one level per step; ``depth`` steps bring every row to a leaf. Per step
and per host:

1. guest  -> host : the host's split ids that currently hold rows, and which rows
                    (a bit matrix: split x row)
2. host   -> guest: for each of those splits, which of those rows go left

The guest answers its own splits from its own columns. A host answers only for its
splits at the step's depth (step ``d`` routes rows sitting at depth ``d``), of the trees
being routed (while training: the tree just grown), and for each row at most once per
tree per step; any other question stops the job (:func:`route_host`).

What each side learns: the host learns which routed rows reach each of its split nodes
(the same instance-space information SecureBoost training reveals); the guest learns the
side each row takes at a host split it asks about, never the host's feature or
threshold. A dishonest guest is not held to its tree's paths: per row, tree and step it
may pick any of the host's splits of that depth and learn that split's side for the row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lianmo.errors import ProtocolError
from lianmo.models.tree import Tree
from lianmo.protocols.context import RoleContext
from lianmo.wire.steps import SB_ROUTE, RouteSteps


@dataclass(frozen=True, slots=True)
class SplitRule:
    """A party's own split: rows with ``X[:, feature] <= threshold`` go left.

    A categorical split (``left_codes`` set) sends the category codes in ``left_codes``
    left and those in ``right_codes`` right, ignoring ``threshold``. A missing cell (NaN)
    and, for a categorical split, any code in neither set (unseen in training, or absent
    from the node) go left exactly when ``default_left`` (the side missing rows took in
    training, :mod:`lianmo.models.split_candidates`). ``tree`` and ``depth`` (0 at the
    root) place the split's node, so that a host answers routing questions about it only
    where the node is.
    """

    feature: int
    threshold: float
    tree: int
    depth: int
    default_left: bool = False
    left_codes: frozenset[int] | None = None
    right_codes: frozenset[int] = frozenset()

    def goes_left(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        x = X[rows, self.feature]
        if self.left_codes is not None:
            left = np.isin(x, list(self.left_codes))
            known = left | np.isin(x, list(self.right_codes))
            return np.where(known, left, self.default_left)
        left = np.asarray(x <= self.threshold, dtype=bool)
        if self.default_left:
            left |= np.isnan(x)
        return left


#: A party's split rules by split id (the guest's count up from 0; a host's are random)
Rules = Mapping[int, SplitRule]


def route_guest(
    ctx: RoleContext,
    trees: Sequence[Tree],
    rules: Rules,
    X: np.ndarray,
    *,
    depth: int,
    round: int = 0,
    steps: RouteSteps = SB_ROUTE,
) -> np.ndarray:
    """Guest side: the leaf index of every row in every tree, shape (len(trees), rows)."""
    n = X.shape[0]
    at = np.zeros((len(trees), n), dtype=np.int64)
    for _ in range(depth):
        asks: dict[str, list[tuple[int, int, np.ndarray]]] = {h: [] for h in ctx.hosts}
        for t, tree in enumerate(trees):
            for node_id in np.unique(at[t]):
                node = tree.nodes[node_id]
                if node.split is None:
                    continue
                rows = np.flatnonzero(at[t] == node_id)
                if node.split.owner == ctx.party:
                    left = rules[node.split.split_id].goes_left(X, rows)
                    _move(at[t], rows, left, node.left, node.right)
                elif node.split.owner in asks:
                    asks[node.split.owner].append((t, int(node_id), rows))
                else:
                    raise ProtocolError(
                        f"tree {t} has a split owned by '{node.split.owner}', which is not a "
                        "host of this job"
                    )
        for host, items in asks.items():  # 1.
            ids = [trees[t].nodes[i].split.split_id for t, i, _ in items]  # type: ignore[union-attr]
            mask = np.zeros((len(items), n), dtype=bool)
            for j, (_, _, rows) in enumerate(items):
                mask[j, rows] = True
            ctx.send(steps.splits, host, ids, round=round)
            ctx.send(steps.rows, host, mask, round=round)
        for host, items in asks.items():  # 2.
            left_bits = ctx.recv(steps.left, host, round=round, count=len(items), cols=n)
            for j, (t, node_id, rows) in enumerate(items):
                left = left_bits[j]
                if left.sum() != left[rows].sum():
                    raise ProtocolError(
                        f"host '{host}' answered '{steps.left.tag}' for rows not asked"
                    )
                node = trees[t].nodes[node_id]
                _move(at[t], rows, left[rows], node.left, node.right)
    return at


def route_host(
    ctx: RoleContext,
    rules: Rules,
    X: np.ndarray,
    *,
    depth: int,
    round: int = 0,
    steps: RouteSteps = SB_ROUTE,
    trees: Collection[int] | None = None,
) -> None:
    """Host side: answer ``depth`` steps of routing questions about this host's splits.

    Step ``d`` is answered only for splits at depth ``d`` of ``trees`` (all of the
    rules' trees if None), each row at most once per tree; anything else is refused.
    """
    n = X.shape[0]
    for step in range(depth):
        ids = ctx.recv(steps.splits, ctx.guest, round=round)
        mask = ctx.recv(steps.rows, ctx.guest, round=round, count=len(ids), cols=n)
        asked = _check_question(ctx, rules, ids, mask, step, trees, steps)
        left = np.zeros_like(mask)
        for j, rule in enumerate(asked):
            rows = np.flatnonzero(mask[j])
            left[j, rows] = rule.goes_left(X, rows)
        ctx.send(steps.left, ctx.guest, left, round=round)


def _check_question(
    ctx: RoleContext,
    rules: Rules,
    ids: np.ndarray,
    mask: np.ndarray,
    step: int,
    trees: Collection[int] | None,
    steps: RouteSteps,
) -> list[SplitRule]:
    """The rules asked about in one routing step, if the question is one to answer."""
    where = f"guest '{ctx.guest}' asked '{steps.splits.tag}' at step {step}"
    asked: list[SplitRule] = []
    seen: dict[int, np.ndarray] = {}  # tree -> rows already asked about in this step
    for j, split_id in enumerate(ids):
        rule = rules.get(int(split_id))
        if rule is None:
            raise ProtocolError(
                f"{where} about split {int(split_id)}, which this host does not have: refused"
            )
        if rule.depth != step or (trees is not None and rule.tree not in trees):
            being = "any tree" if trees is None else f"tree(s) {sorted(trees)}"
            raise ProtocolError(
                f"{where} about split {int(split_id)} of tree {rule.tree} at depth "
                f"{rule.depth}; this step routes depth {step} of {being}: refused"
            )
        rows = seen.setdefault(rule.tree, np.zeros(mask.shape[1], dtype=bool))
        if (rows & mask[j]).any():
            raise ProtocolError(
                f"{where} about a row twice in tree {rule.tree}; a row sits at one node "
                "per tree: refused"
            )
        rows |= mask[j]
        asked.append(rule)
    return asked


def _move(at: np.ndarray, rows: np.ndarray, left: np.ndarray, to_left: int, to_right: int) -> None:
    at[rows[left]] = to_left
    at[rows[~left]] = to_right
