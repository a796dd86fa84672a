"""A party's split rule from the cells a chosen candidate sends left (guest and host alike)."""

from __future__ import annotations

import numpy as np

from lianmo.models.binning import QuantileBins
from lianmo.models.split_candidates import normalised, routing_cells
from lianmo.protocols.tree_route import SplitRule


def make_rule(
    bins: QuantileBins, f: int, left: np.ndarray, present: np.ndarray, tree: int, depth: int
) -> tuple[SplitRule, np.ndarray]:
    """The rule of a split of feature ``f`` sending cells ``left`` left, and the side of
    each cell's rows (bool per cell). ``present``: the cells holding rows of the node.

    Numeric: value bins up to ``b`` left (threshold ``e_b``), missing cells to the side
    the node's missing rows went. Categorical: sides normalised (left holds the lowest
    category present), and the category codes of each side kept; missing cells and
    categories the node had no rows of go the default side.
    """
    nv = bins.n_bins(f)
    missing_left = bins.missing[f] and bool(left[nv])
    if not bins.is_categorical(f):
        b = int(left[:nv].sum()) - 1
        return SplitRule(f, bins.threshold(f, b), tree, depth, missing_left), left
    categories = np.zeros(len(left), dtype=bool)
    categories[:nv] = True
    left = normalised(left, present, categories)
    default_left = bins.missing[f] and bool(present[nv] and left[nv])
    code_bins = bins.code_bins[f]
    assert code_bins is not None
    codes = code_bins[:-1]  # the bin of each training category code
    rule = SplitRule(
        f,
        0.0,
        tree,
        depth,
        default_left,
        frozenset(int(c) for c in np.flatnonzero(present[codes] & left[codes])),
        frozenset(int(c) for c in np.flatnonzero(present[codes] & ~left[codes])),
    )
    return rule, routing_cells(left, present, default_left)
