"""Gradient-boosted tree maths shared by SecureBoost and its plaintext reference.

Everything a split decision depends on is computed from *integer* sums: per-row
gradients ``g`` and Hessians ``h`` are rounded to multiples of ``2**-frac_bits``
(:func:`quantise_gh`) with ``frac_bits`` chosen so that every sum over the rows of a
tree stays below ``2**52`` in magnitude. Such sums are exact in int64, in float64 and in
Paillier plaintexts alike, in any order, so the federated protocol (which sums
ciphertexts) and a plaintext implementation (which sums numpy integers) compute
bit-identical gains, pick the same splits and the same leaf weights: SecureBoost is
lossless. The rounding itself (relative ``2**-37`` for 30,000 rows) is far below what
changes a model.

Gain of splitting a node with sums ``(G, H)`` into ``(G_L, H_L)`` and the rest
(XGBoost's, with L2 ``lambda`` and split penalty ``gamma``)::

    gain = (G_L**2 / (H_L + lambda) + G_R**2 / (H_R + lambda) - G**2 / (H + lambda)) / 2 - gamma

A split is taken only when its gain is positive and both children keep Hessian sums of
at least ``min_child_weight``. Leaf weight: ``-learning_rate * G / (H + lambda)``.
"""

from __future__ import annotations

import math
import typing as t
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "GhQuantised",
    "Split",
    "Tree",
    "TreeNode",
    "TreeParams",
    "best_candidate",
    "honest_value_bits",
    "quantise_gh",
    "split_gains",
]

#: magnitude bound for all sums: below 2**53, so float64 holds them exactly
SUM_BITS = 52


@dataclass(frozen=True, slots=True)
class TreeParams:
    """Per-tree hyperparameters (XGBoost's names in brackets)."""

    depth: int = 3  # [max_depth]
    learning_rate: float = 0.3  # [eta]
    l2: float = 1.0  # [lambda]
    gamma: float = 0.0  # [gamma, min_split_loss]
    min_child_weight: float = 1.0  # [min_child_weight]


@dataclass(frozen=True, slots=True)
class GhQuantised:
    """Per-row ``g`` and ``h`` as int64 multiples of ``2**-frac_bits``."""

    g: np.ndarray
    h: np.ndarray
    frac_bits: int

    @property
    def value_bits(self) -> int:
        """Bits of the largest magnitude: every entry satisfies ``|v| < 2**value_bits``."""
        top = int(max(np.abs(self.g).max(initial=0), np.abs(self.h).max(initial=0)))
        return max(top.bit_length(), 1)

    def scale(self, sums: np.ndarray) -> np.ndarray:
        """Integer sums back to real values (exact for sums below ``2**53``)."""
        return np.asarray(sums, dtype=np.float64) * 2.0**-self.frac_bits


def quantise_gh(g: np.ndarray, h: np.ndarray, max_terms: int) -> GhQuantised:
    """Round ``g`` and ``h`` to a common fixed point whose sums of ``max_terms`` rows stay exact.

    ``frac_bits`` is the largest integer with ``max_terms * max|g, h| * 2**frac_bits``
    below ``2**(SUM_BITS - 1)``, so rounding cannot push a sum past ``2**SUM_BITS``.
    """
    g = np.asarray(g, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    top = max(float(np.abs(g).max(initial=0.0)), float(np.abs(h).max(initial=0.0)), 2.0**-40)
    frac_bits = SUM_BITS - 1 - math.ceil(math.log2(max(max_terms, 1) * top))
    scale = 2.0**frac_bits
    return GhQuantised(
        g=np.rint(g * scale).astype(np.int64),
        h=np.rint(h * scale).astype(np.int64),
        frac_bits=frac_bits,
    )


def honest_value_bits(max_terms: int) -> int:
    """The most ``value_bits`` :func:`quantise_gh` gives for ``max_terms`` rows, any g and h.

    ``quantise_gh`` scales the largest magnitude to at most ``2**(SUM_BITS - 1) / max_terms``
    (then rounds), whatever the objective, weights or values, so a layout announcing more
    bits than this is not one an honest label holder computed.
    """
    terms = max(int(max_terms), 1)
    return max(((1 << (SUM_BITS - 1)) // terms + 1).bit_length(), 1)


def split_gains(
    GL: np.ndarray, HL: np.ndarray, G: float, H: float, params: TreeParams
) -> np.ndarray:
    """Gain of each candidate left child ``(GL, HL)`` of a node with sums ``(G, H)``.

    Candidates whose children break ``min_child_weight`` (or divide by zero) get ``-inf``.
    """
    GL = np.asarray(GL, dtype=np.float64)
    HL = np.asarray(HL, dtype=np.float64)
    GR, HR = G - GL, H - HL
    lam = params.l2
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = 0.5 * (GL * GL / (HL + lam) + GR * GR / (HR + lam) - G * G / (H + lam))
        gain = gain - params.gamma
    ok = (HL >= params.min_child_weight) & (HR >= params.min_child_weight) & np.isfinite(gain)
    return np.where(ok, gain, -np.inf)


def best_candidate(gains: np.ndarray) -> int | None:
    """Index of the first largest gain, or None when no gain is positive."""
    if len(gains) == 0:
        return None
    best = int(np.argmax(gains))
    return best if gains[best] > 0 else None


def leaf_weight(G: float, H: float, params: TreeParams) -> float:
    """Leaf output, already scaled by the learning rate."""
    return float(-params.learning_rate * G / (H + params.l2))


@dataclass(frozen=True, slots=True)
class Split:
    """A split as the label holder records it: who owns it and their id for it."""

    owner: str
    split_id: int
    gain: float


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A split node (``split`` set, children by index) or a leaf (``value``)."""

    split: Split | None = None
    left: int = -1
    right: int = -1
    value: float = 0.0

    @property
    def is_leaf(self) -> bool:
        return self.split is None


@dataclass(frozen=True, slots=True)
class Tree:
    """One tree for raw-score column ``output``; nodes in breadth-first order, root first.

    Children always come after their parent, so one pass in index order routes rows.
    """

    output: int
    nodes: tuple[TreeNode, ...]

    @property
    def depth(self) -> int:
        level = [0] * len(self.nodes)
        for i, node in enumerate(self.nodes):
            if not node.is_leaf:
                level[node.left] = level[node.right] = level[i] + 1
        return max(level, default=0)

    def leaves_of(
        self, goes_left: Callable[[Split, np.ndarray], np.ndarray], n_rows: int
    ) -> np.ndarray:
        """Leaf index per row; ``goes_left(split, rows)`` answers for the rows at a split."""
        at = np.zeros(n_rows, dtype=np.int64)
        for i, node in enumerate(self.nodes):
            if node.split is None:
                continue
            rows = np.flatnonzero(at == i)
            if len(rows) == 0:
                continue
            left = np.asarray(goes_left(node.split, rows), dtype=bool)
            at[rows[left]] = node.left
            at[rows[~left]] = node.right
        return at

    def values(self, leaves: np.ndarray) -> np.ndarray:
        """The leaf values of rows given their leaf indices."""
        table = np.array([n.value for n in self.nodes], dtype=np.float64)
        return np.asarray(table[leaves], dtype=np.float64)


def tree_to_dict(tree: Tree) -> dict[str, t.Any]:
    """A tree as plain JSON data: per node a leaf value, or owner, split id, gain, children."""
    nodes: list[dict[str, t.Any]] = []
    for node in tree.nodes:
        if node.split is None:
            nodes.append({"value": float(node.value)})
        else:
            s = node.split
            nodes.append(
                {
                    "owner": str(s.owner),
                    "split": int(s.split_id),
                    "gain": float(s.gain),
                    "left": int(node.left),
                    "right": int(node.right),
                }
            )
    return {"output": int(tree.output), "nodes": nodes}


def tree_from_dict(raw: dict[str, t.Any]) -> Tree:
    """The tree :func:`tree_to_dict` wrote (KeyError/ValueError/TypeError if malformed)."""
    nodes = []
    for n in raw["nodes"]:
        if "value" in n:
            nodes.append(TreeNode(value=float(n["value"])))
        else:
            split = Split(str(n["owner"]), int(n["split"]), float(n["gain"]))
            nodes.append(TreeNode(split, int(n["left"]), int(n["right"])))
    return Tree(int(raw["output"]), tuple(nodes))
