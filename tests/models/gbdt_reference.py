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

Categorical columns (codes of ``K`` training categories; binned by :class:`QuantileBins`
too: one bin per kept category, an "other" bin for the rest, then the missing bin):
the categories present at a node are sorted by ``G / (H + lambda)`` ascending (ties: the
lower bin first); candidates are the prefixes of 1 .. K-1 categories left with missing
right, then, if the node has missing rows, the prefixes of 0 .. K-1 categories left with
missing left. A chosen partition is turned so that left holds the lowest category bin
present. Prediction sends codes of the left categories left, of the right ones right,
and anything else (missing, unseen, absent from the node in training) the default way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lianmo.models.binning import ALL_VALUES, QuantileBins
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
    left_codes: frozenset[int] | None = None  # a categorical split's codes per side
    right_codes: frozenset[int] = frozenset()

    def goes_left(self, x: np.ndarray) -> np.ndarray:
        """Which of the values ``x`` of this split's feature go left."""
        if self.left_codes is not None:
            left = np.array([v in self.left_codes for v in x], dtype=bool)
            right = np.array([v in self.right_codes for v in x], dtype=bool)
            return np.where(left | right, left, self.default_left)
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
        fitted: Sequence[QuantileBins],
        bins: Sequence[list[np.ndarray]],
        params: TreeParams,
    ) -> None:
        self.parties, self.bins, self.params = parties, bins, params
        self.edges = [q.edges for q in fitted]
        self.code_bins = [q.code_bins for q in fitted]
        self.categorical = [[c is not None for c in q.code_bins] for q in fitted]
        self.n_values = [[q.n_bins(f) for f in range(q.n_features)] for q in fitted]

    def best_split(
        self, rows: np.ndarray, gq: np.ndarray, hq: np.ndarray, scale: float
    ) -> tuple[int, int, object, float] | None:
        """(party, feature, what goes left, gain) of the first largest positive gain.

        What goes left: ``(b, missing left)`` for a numeric feature, ``(set of bins,
        missing left)`` for a categorical one.
        """
        G = float(gq[rows].sum(dtype=np.int64)) * scale
        H = float(hq[rows].sum(dtype=np.int64)) * scale
        best: tuple[int, int, object, float] | None = None
        best_gain = 0.0
        for p, party_bins in enumerate(self.bins):
            for f, column in enumerate(party_bins):
                nv = self.n_values[p][f]
                hist_g = np.zeros(nv + 1, dtype=np.int64)
                hist_h = np.zeros(nv + 1, dtype=np.int64)
                np.add.at(hist_g, column[rows], gq[rows])
                np.add.at(hist_h, column[rows], hq[rows])
                has_missing = bool((column[rows] == nv).any())
                if self.categorical[p][f]:
                    scan = self._category_scan(column[rows], hist_g, hist_h, nv, has_missing, scale)
                else:
                    scan = self._numeric_scan(hist_g, hist_h, nv, has_missing)
                for what, gl, hl in scan:
                    gain = _gain(float(gl) * scale, float(hl) * scale, G, H, self.params)
                    if gain > best_gain:
                        best, best_gain = (p, f, what, gain), gain
        return best

    @staticmethod
    def _numeric_scan(
        hist_g: np.ndarray, hist_h: np.ndarray, nv: int, has_missing: bool
    ) -> list[tuple[object, int, int]]:
        left_g, left_h = np.cumsum(hist_g[:nv]), np.cumsum(hist_h[:nv])
        scan: list[tuple[object, int, int]] = [
            ((b, False), left_g[b], left_h[b]) for b in range(nv)
        ]
        if has_missing:  # missing rows: they may go left too
            for b in range(-1, nv - 1):
                gl = hist_g[nv] + (left_g[b] if b >= 0 else 0)
                hl = hist_h[nv] + (left_h[b] if b >= 0 else 0)
                scan.append(((b, True), gl, hl))
        return scan

    def _category_scan(
        self,
        at_node: np.ndarray,
        hist_g: np.ndarray,
        hist_h: np.ndarray,
        nv: int,
        has_missing: bool,
        scale: float,
    ) -> list[tuple[object, int, int]]:
        present = sorted({int(v) for v in at_node if v < nv})
        lam = self.params.l2
        ratio = {c: (float(hist_g[c]) * scale) / (float(hist_h[c]) * scale + lam) for c in present}
        order = sorted(present, key=lambda c: (ratio[c], c))
        scan: list[tuple[object, int, int]] = []
        for k in range(1, len(order)):
            left = frozenset(order[:k])
            scan.append(((left, False), sum(hist_g[c] for c in left), sum(hist_h[c] for c in left)))
        if has_missing:
            for k in range(len(order)):
                left = frozenset(order[:k])
                gl = hist_g[nv] + sum(hist_g[c] for c in left)
                hl = hist_h[nv] + sum(hist_h[c] for c in left)
                scan.append(((left, True), gl, hl))
        return scan

    def node(
        self, p: int, f: int, what: object, gain: float, rows: np.ndarray, ids: tuple[int, int]
    ) -> RefNode:
        """The split node for the winner ``what`` of feature ``f`` of party ``p``."""
        column = self.bins[p][f][rows]
        nv = self.n_values[p][f]
        has_missing = bool((column == nv).any())
        if not self.categorical[p][f]:
            b, missing_left = what  # type: ignore[misc]
            edges = self.edges[p][f]
            # every value left: the largest float64; no value left: -inf
            threshold = (
                float(edges[b]) if 0 <= b < len(edges) else (ALL_VALUES if b >= 0 else -np.inf)
            )
            return RefNode(p, f, threshold, *ids, 0.0, gain, missing_left)
        left, missing_left = what  # type: ignore[misc]
        present = {int(v) for v in column if v < nv}
        if min(present) not in left:  # left holds the lowest category bin present
            left, missing_left = frozenset(present - left), has_missing and not missing_left
        code_bins = self.code_bins[p][f]
        codes = range(len(code_bins) - 1)
        return RefNode(
            p,
            f,
            0.0,
            *ids,
            0.0,
            gain,
            has_missing and missing_left,
            frozenset(c for c in codes if code_bins[c] in left),
            frozenset(c for c in codes if code_bins[c] in present - left),
        )

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
                p, f, what, gain = split
                left_id, right_id = len(nodes), len(nodes) + 1
                node = self.node(p, f, what, gain, rows, (left_id, right_id))
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
    categories: Sequence[Sequence[int | None] | None] | None = None,
) -> RefModel:
    """Boost ``rounds`` rounds on the training rows of all parties (guest first).

    ``categories[p][f]``: training category count of party ``p``'s categorical column
    ``f`` (None: numeric).
    """
    parties = [np.asarray(X, dtype=np.float64) for X in parties]
    y = np.asarray(y, dtype=np.float64)
    obj = Objective.for_labels(objective, y, where="reference")
    kinds = categories or [None] * len(parties)
    fitted = [QuantileBins.fit(X, max_bins, k) for X, k in zip(parties, kinds, strict=True)]
    bins = [
        [
            _bin_index(X[:, f], q.edges[f])
            if q.code_bins[f] is None
            else np.asarray(q.transform(X)[:, f], dtype=np.int64)
            for f in range(X.shape[1])
        ]
        for X, q in zip(parties, fitted, strict=True)
    ]
    grower = _Grower(parties, fitted, bins, params)
    model = RefModel(obj, obj.init_score(y, np.ones(len(y))))
    F = np.tile(model.init_score, (len(y), 1)).astype(np.float64)
    for _round in range(rounds):
        g_all, h_all = obj.grad_hess(y, F)
        for k in range(obj.outputs):
            tree = grower.grow(k, g_all[:, k], h_all[:, k])
            model.trees.append(tree)
            F[:, k] += tree.predict(parties)
    return model
