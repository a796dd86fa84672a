"""Online scoring of a few ids: one question to each host, one answer, no ciphertexts.

Per request (a decision engine asks the guest for the scores of some ids):

1. guest  -> host_k : the ids, the model name and version (training job id and spec digest)
2. host_k -> guest  : which ids it holds a usable row for, and for those rows
   - LR: u_k = X_k w_k, its partial linear score (one per class for one-vs-rest);
   - SecureBoost: for every split the host owns, the side each row takes
3. guest            : LR: sigmoid(u_A + Σ_k u_k) (:func:`lr_scores`, the same sum in the
   same order as batch scoring, :mod:`lianmo.protocols.predict`); SecureBoost: every row
   down every tree with its own sides and the hosts' (:class:`Forest`), then the leaf
   values summed as in batch scoring.

What each side learns per request. A host learns which ids are scored, by whom and when,
and nothing of the result. The guest learns, per id, whether the host holds a usable row
(in its store and with consent), and LR: the host's partial score (what batch scoring
gives it); SecureBoost: the side of the row at *every* split of the host, not only at the
splits on the row's path, which is what a batch-scoring guest learns when it follows the
trees (a dishonest batch guest can already ask any one split per tree and depth per row).
Thresholds, feature values and feature names never leave the host. Both sides'
assumptions: a curious guest, a curious host; docs/serving.md has the full table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lianmo.errors import ProtocolError
from lianmo.models.tree import Tree
from lianmo.protocols.predict import probabilities
from lianmo.protocols.tree_route import Rules, SplitRule


@dataclass(frozen=True)
class SplitTable:
    """A party's split rules compiled to evaluate every split on many rows at once.

    ``ids`` are the split ids in ascending order; :meth:`sides` gives, per row and split
    in that order, True where the row goes left, exactly as
    :meth:`~lianmo.protocols.tree_route.SplitRule.goes_left` decides.
    """

    ids: np.ndarray
    features: np.ndarray
    thresholds: np.ndarray
    default_left: np.ndarray
    categorical: tuple[tuple[int, SplitRule], ...]  # (column in ids, rule)

    @classmethod
    def of(cls, rules: Rules) -> SplitTable:
        ids = np.array(sorted(rules), dtype=np.uint64)
        ordered = [rules[int(i)] for i in ids]
        return cls(
            ids=ids,
            features=np.array([r.feature for r in ordered], dtype=np.intp),
            thresholds=np.array([r.threshold for r in ordered], dtype=np.float64),
            default_left=np.array([r.default_left for r in ordered], dtype=bool),
            categorical=tuple((j, r) for j, r in enumerate(ordered) if r.left_codes is not None),
        )

    def sides(self, X: np.ndarray) -> np.ndarray:
        """``(rows, splits)`` bool: True where the row goes left at the split."""
        X = np.asarray(X, dtype=np.float64)
        cells = X[:, self.features]
        with np.errstate(invalid="ignore"):
            left = cells <= self.thresholds
        left |= np.isnan(cells) & self.default_left
        everyone = np.arange(X.shape[0])
        for j, rule in self.categorical:
            left[:, j] = rule.goes_left(X, everyone)
        return left


@dataclass(frozen=True)
class Forest:
    """The guest's trees as arrays, to route rows given every party's split sides.

    Each split node reads one column of a side matrix made of the guest's own sides
    (:class:`SplitTable` of its rules) followed by each host's, in ``hosts`` order and
    in the order of the split ids the host answered with.
    """

    trees: tuple[Tree, ...]
    depth: int
    left: np.ndarray  # (trees, nodes) child index, -1 at a leaf
    right: np.ndarray
    column: np.ndarray  # (trees, nodes) side-matrix column, -1 at a leaf
    own: SplitTable
    hosts: tuple[str, ...]
    host_splits: Mapping[str, np.ndarray]  # the split ids of each host the trees use

    @classmethod
    def of(
        cls, trees: Sequence[Tree], depth: int, party: str, rules: Rules, hosts: Sequence[str]
    ) -> Forest:
        own = SplitTable.of(rules)
        own_col = {int(i): j for j, i in enumerate(own.ids)}
        used: dict[str, set[int]] = {h: set() for h in hosts}
        for tree in trees:
            for node in tree.nodes:
                if node.split is not None and node.split.owner != party:
                    if node.split.owner not in used:
                        raise ProtocolError(
                            f"a tree has a split owned by '{node.split.owner}', which is not a "
                            "host of this model"
                        )
                    used[node.split.owner].add(node.split.split_id)
        host_splits = {h: np.array(sorted(used[h]), dtype=np.uint64) for h in hosts}
        offset, host_col = len(own.ids), {}
        for h in hosts:
            host_col[h] = {int(i): offset + j for j, i in enumerate(host_splits[h])}
            offset += len(host_splits[h])
        width = max((len(tree.nodes) for tree in trees), default=1)
        shape = (len(trees), width)
        left, right = np.full(shape, -1, np.intp), np.full(shape, -1, np.intp)
        column = np.full(shape, -1, np.intp)
        for t, tree in enumerate(trees):
            for i, node in enumerate(tree.nodes):
                if node.split is None:
                    continue
                left[t, i], right[t, i] = node.left, node.right
                owner, split_id = node.split.owner, node.split.split_id
                column[t, i] = (own_col if owner == party else host_col[owner])[split_id]
        return cls(tuple(trees), depth, left, right, column, own, tuple(hosts), host_splits)

    def host_columns(self, host: str, split_ids: np.ndarray, sides: np.ndarray) -> np.ndarray:
        """The columns of ``host``'s answer (its split ids and sides) the trees read.

        Raises ProtocolError if the host left out a split the trees use.
        """
        where = {int(i): j for j, i in enumerate(split_ids)}
        try:
            picks = [where[int(i)] for i in self.host_splits[host]]
        except KeyError as exc:
            raise ProtocolError(
                f"host '{host}' answered without split {exc.args[0]}, which the model's trees "
                "use: is it serving the same model version?"
            ) from None
        return sides[:, picks]

    def leaves(self, sides: np.ndarray) -> np.ndarray:
        """The leaf of every row in every tree, ``(trees, rows)``, from the side matrix."""
        n = sides.shape[0]
        at = np.zeros((len(self.trees), n), dtype=np.intp)
        tree_index = np.arange(len(self.trees))[:, None]
        rows = np.arange(n)[None, :]
        for _ in range(self.depth):
            col = self.column[tree_index, at]
            split = col >= 0
            go_left = sides[rows, np.where(split, col, 0)]
            nxt = np.where(go_left, self.left[tree_index, at], self.right[tree_index, at])
            at = np.where(split, nxt, at)
        return at


def log_odds(u_guest: np.ndarray, host_parts: Sequence[np.ndarray]) -> np.ndarray:
    """``u_A + Σ_k u_k``, summed in host order as batch scoring sums them; ``(rows,)`` for
    one model, ``(rows, classes)`` one-vs-rest."""
    total = np.array(u_guest, dtype=np.float64)
    for part in host_parts:
        total += np.asarray(part, dtype=np.float64).reshape(total.shape)
    return total


def lr_scores(u_guest: np.ndarray, host_parts: Sequence[np.ndarray]) -> np.ndarray:
    """Probabilities from the guest's partial scores and the hosts' (:func:`log_odds`)."""
    return probabilities(log_odds(u_guest, host_parts))
