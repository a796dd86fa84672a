"""Plaintext reference for SecureBoost: the same boosted trees, grown in one place.

Written from the protocol's specification, not from its code, so that agreeing with it
is a real cross-check. Only the bin edges (:class:`QuantileBins`), the objective maths
(:class:`Objective`) and the (g, h) fixed point (:func:`quantise_gh`) are shared with
``lianmo``; histograms, gains, split search, tree growth and prediction are plain numpy.

Every party's columns are binned on its own training rows; a split "after bin b" of
feature f sends ``x <= edges[f][b]`` left. All sums of g and h are int64 sums of the
quantised values, scaled by ``2**-frac_bits`` only when a gain or leaf weight needs
them, which is what makes the federated protocol lossless. Candidates are searched in
(party, feature, candidate) order and the first maximal gain wins, if it is positive.

Missing cells (NaN): a column's missing cells form one more bin after its value bins.
Per feature and node the candidates are, in this order: value bins ``<= b`` left and
missing right, for every value bin ``b``; then, only if the node has missing rows in the
feature, value bins ``<= b`` plus missing left, for ``b = -1 .. last - 1``. A split's
default direction is the side its missing rows went (right if the node had none), and
prediction sends a missing cell that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lianmo.models.binning import QuantileBins
from lianmo.models.objectives import Objective
from lianmo.models.tree import TreeParams, quantise_gh

__all__ = ["RefModel", "RefNode", "RefTree", "fit_reference"]


@dataclass(frozen=True, slots=True)
class RefNode:
    """A split (``party`` set: rows with ``x <= threshold`` go to ``left``, a missing
    ``x`` to ``left`` exactly when ``default_left``) or a leaf."""

    party: int | None = None
    feature: int = -1
    threshold: float = 0.0
    left: int = -1
    right: int = -1
    value: float = 0.0
    gain: float = 0.0
    default_left: bool = False

    def goes_left(self, x: np.ndarray) -> np.ndarray:
        """Which of the values ``x`` of this split's feature go left."""
        return np.where(np.isnan(x), self.default_left, x <= self.threshold)

    @property
    def is_leaf(self) -> bool:
        return self.party is None


@dataclass(frozen=True, slots=True)
class RefTree:
    """One tree for raw-score column ``output``; nodes breadth-first, root first.

    ``g`` and ``h`` are the (unquantised) derivatives the tree was grown from, kept so
    that tests can look for them on the wire.
    """

    output: int
    nodes: tuple[RefNode, ...]
    g: np.ndarray
    h: np.ndarray

    @property
    def depth_reached(self) -> int:
        """Levels of splits from the root to the deepest leaf."""
        level = [0] * len(self.nodes)
        for i, node in enumerate(self.nodes):
            if not node.is_leaf:
                level[node.left] = level[node.right] = level[i] + 1
        return max(level)

    def leaves(self, parties: Sequence[np.ndarray]) -> np.ndarray:
        """Leaf node index of every row (rows given as per-party feature matrices)."""
        n = parties[0].shape[0]
        at = np.zeros(n, dtype=np.int64)
        for i, node in enumerate(self.nodes):
            if node.party is None:
                continue
            rows = np.flatnonzero(at == i)
            left = node.goes_left(parties[node.party][rows, node.feature])
            at[rows[left]] = node.left
            at[rows[~left]] = node.right
        return at

    def predict(self, parties: Sequence[np.ndarray]) -> np.ndarray:
        values = np.array([node.value for node in self.nodes], dtype=np.float64)
        return np.asarray(values[self.leaves(parties)], dtype=np.float64)


@dataclass
class RefModel:
    objective: Objective
    init_score: np.ndarray
    trees: list[RefTree] = field(default_factory=list)

    def raw_scores(self, parties: Sequence[np.ndarray]) -> np.ndarray:
        """Raw scores, rows x outputs."""
        F = np.tile(self.init_score, (parties[0].shape[0], 1)).astype(np.float64)
        for tree in self.trees:
            F[:, tree.output] += tree.predict(parties)
        return F

    def predict(self, parties: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (binary, multi-class) or predicted values (regression)."""
        return self.objective.predict_proba(self.raw_scores(parties))


def _bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Number of edges strictly below each value, so that bin <= b  <=>  x <= edges[b];
    a missing value gets bin ``len(edges) + 1``, after the value bins."""
    below = (x[:, None] > edges[None, :]).sum(axis=1) if len(edges) else np.zeros(len(x))
    return np.where(np.isnan(x), len(edges) + 1, below).astype(np.int64)


def _gain(GL: float, HL: float, G: float, H: float, params: TreeParams) -> float:
    GR, HR = G - GL, H - HL
    if HL < params.min_child_weight or HR < params.min_child_weight:
        return -np.inf
    lam = params.l2
    if HL + lam == 0 or HR + lam == 0 or H + lam == 0:
        return -np.inf
    return 0.5 * (GL * GL / (HL + lam) + GR * GR / (HR + lam) - G * G / (H + lam)) - params.gamma


class _Grower:
    """Grows one tree from quantised g, h over all parties' binned columns."""

    def __init__(
        self,
        parties: Sequence[np.ndarray],
        edges: Sequence[tuple[np.ndarray, ...]],
        bins: Sequence[list[np.ndarray]],
        params: TreeParams,
    ) -> None:
        self.parties, self.edges, self.bins, self.params = parties, edges, bins, params

    def best_split(
        self, rows: np.ndarray, gq: np.ndarray, hq: np.ndarray, scale: float
    ) -> tuple[int, int, int, bool, float] | None:
        """(party, feature, bin, missing left, gain) of the first largest positive gain."""
        G = float(gq[rows].sum(dtype=np.int64)) * scale
        H = float(hq[rows].sum(dtype=np.int64)) * scale
        best: tuple[int, int, int, bool, float] | None = None
        best_gain = 0.0
        for p, party_bins in enumerate(self.bins):
            for f, column in enumerate(party_bins):
                nv = len(self.edges[p][f]) + 1
                hist_g = np.zeros(nv + 1, dtype=np.int64)
                hist_h = np.zeros(nv + 1, dtype=np.int64)
                np.add.at(hist_g, column[rows], gq[rows])
                np.add.at(hist_h, column[rows], hq[rows])
                left_g, left_h = np.cumsum(hist_g[:nv]), np.cumsum(hist_h[:nv])
                scan = [(b, False, left_g[b], left_h[b]) for b in range(nv)]
                if (column[rows] == nv).any():  # missing rows: they may go left too
                    scan += [
                        (b, True, hist_g[nv] + (left_g[b] if b >= 0 else 0),
                         hist_h[nv] + (left_h[b] if b >= 0 else 0))
                        for b in range(-1, nv - 1)
                    ]
                for b, missing_left, gl, hl in scan:
                    gain = _gain(float(gl) * scale, float(hl) * scale, G, H, self.params)
                    if gain > best_gain:
                        best, best_gain = (p, f, b, missing_left, gain), gain
        return best

    def leaf(self, rows: np.ndarray, gq: np.ndarray, hq: np.ndarray, scale: float) -> RefNode:
        G = float(gq[rows].sum(dtype=np.int64)) * scale
        H = float(hq[rows].sum(dtype=np.int64)) * scale
        return RefNode(value=-self.params.learning_rate * G / (H + self.params.l2))

    def grow(self, output: int, g: np.ndarray, h: np.ndarray) -> RefTree:
        n = len(g)
        q = quantise_gh(g, h, n)
        gq, hq = np.asarray(q.g, dtype=np.int64), np.asarray(q.h, dtype=np.int64)
        scale = 2.0**-q.frac_bits
        nodes: list[RefNode | None] = [None]
        at = np.zeros(n, dtype=np.int64)
        open_nodes = [0]
        for _level in range(self.params.depth):
            next_open: list[int] = []
            for node_id in open_nodes:
                rows = np.flatnonzero(at == node_id)
                split = self.best_split(rows, gq, hq, scale)
                if split is None:
                    nodes[node_id] = self.leaf(rows, gq, hq, scale)
                    continue
                p, f, b, missing_left, gain = split
                threshold = float(self.edges[p][f][b]) if b >= 0 else -np.inf
                left_id, right_id = len(nodes), len(nodes) + 1
                node = RefNode(p, f, threshold, left_id, right_id, 0.0, gain, missing_left)
                nodes[node_id] = node
                nodes.extend([None, None])
                goes_left = node.goes_left(self.parties[p][rows, f])
                at[rows[goes_left]] = left_id
                at[rows[~goes_left]] = right_id
                next_open.extend([left_id, right_id])
            open_nodes = next_open
        for node_id in open_nodes:
            nodes[node_id] = self.leaf(np.flatnonzero(at == node_id), gq, hq, scale)
        done = tuple(node for node in nodes if node is not None)
        assert len(done) == len(nodes)
        return RefTree(output=output, nodes=done, g=g.copy(), h=h.copy())


def fit_reference(
    parties: Sequence[np.ndarray],
    y: np.ndarray,
    objective: str,
    *,
    rounds: int,
    params: TreeParams,
    max_bins: int = 32,
) -> RefModel:
    """Boost ``rounds`` rounds on the training rows of all parties (guest first)."""
    parties = [np.asarray(X, dtype=np.float64) for X in parties]
    y = np.asarray(y, dtype=np.float64)
    obj = Objective.for_labels(objective, y, where="reference")
    edges = [QuantileBins.fit(X, max_bins).edges for X in parties]
    bins = [
        [_bin_index(X[:, f], e) for f, e in enumerate(party_edges)]
        for X, party_edges in zip(parties, edges, strict=True)
    ]
    grower = _Grower(parties, edges, bins, params)
    model = RefModel(obj, obj.init_score(y, np.ones(len(y))))
    F = np.tile(model.init_score, (len(y), 1)).astype(np.float64)
    for _round in range(rounds):
        g_all, h_all = obj.grad_hess(y, F)
        for k in range(obj.outputs):
            tree = grower.grow(k, g_all[:, k], h_all[:, k])
            model.trees.append(tree)
            F[:, k] += tree.predict(parties)
    return model
