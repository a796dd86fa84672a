"""The split candidates of one feature at one node: which bins go left, and where missing goes.

One mechanism for every party: the guest scores its own candidates from plaintext
histograms, a host offers the same numeric candidates' left sums encrypted (and the
per-category sums of its categorical features, from which the guest builds partition
candidates with :func:`partition_candidates`), and :mod:`lianmo.models.split_choice`
picks. A candidate is the set of the feature's cells (bins, :mod:`lianmo.models.binning`)
it sends left; the first largest gain wins (XGBoost scans forward, then backward, and
keeps the first best).

Numeric feature with ``n`` value bins (and maybe a missing bin):

1. *missing right*: left = value bins ``<= b`` for each ``b`` whose bin holds rows of the
   node and that leaves rows on the right (values above ``b``, or missing rows);
2. only if the node has missing rows in the feature, *missing left*: left = value bins
   ``<= b`` plus the missing bin, for each ``b`` whose bin holds rows and that leaves
   values on the right.

A candidate whose bin is empty in the node would repeat the previous one and is left
out, as is "only missing left" (the same partition as "all values left, missing right",
which comes first).

Categorical feature (partition, as XGBoost and LightGBM): the categories present at the
node are sorted by ``G / (H + lambda)`` ascending (ties: lower bin first); the candidates
are the prefixes of that order with 1 .. K-1 categories left and missing right, then, if
the node has missing rows, the prefixes with 0 .. K-1 categories left and missing left.
A chosen partition is then :func:`normalised`: left is the side holding the lowest
category bin present, so the side names say nothing about the gradient order.

The *default direction* of a split is the side the node's missing rows went (right when
it had none): scoring sends missing cells there, and for a categorical split also
categories that were absent from the node (:func:`routing_cells`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Candidates",
    "normalised",
    "numeric_candidates",
    "partition_candidates",
    "routing_cells",
]


@dataclass(frozen=True)
class Candidates:
    """Candidates of one feature at one node, in scan order: the cells each sends left."""

    left: np.ndarray  # bool, candidates x cells

    def __len__(self) -> int:
        return len(self.left)

    def left_sums(self, hist: np.ndarray) -> np.ndarray:
        """Exact left sums of each candidate from integer sums per cell (cells x k)."""
        return np.asarray(self.left.astype(np.int64) @ np.asarray(hist, dtype=np.int64))

    def prefix_end(self, i: int, n_values: int) -> int:
        """A numeric candidate's ``b``: its value bins ``<= b`` go left."""
        return int(self.left[i, :n_values].sum()) - 1


def numeric_candidates(count: np.ndarray, missing: int, n_cells: int) -> Candidates:
    """The candidates of a numeric feature from the node's row count per value bin.

    ``count``: rows of the node in each value bin; ``missing``: rows in its missing bin
    (which follows the value bins); ``n_cells``: the width of the masks.
    """
    count = np.asarray(count, dtype=np.int64)
    n = len(count)
    above = np.concatenate([np.cumsum(count[::-1])[::-1][1:], [0]])  # values in bins > b
    filled = count > 0
    ends = [np.flatnonzero(filled & ((above > 0) | (missing > 0)))]
    if missing > 0:
        ends.append(np.flatnonzero(filled & (above > 0)))
    rows = []
    for missing_left, bins in enumerate(ends):
        left = np.arange(n_cells)[None, :] <= bins[:, None]
        left[:, n:] = False
        if missing_left:
            left[:, n] = True
        rows.append(left)
    return Candidates(np.concatenate(rows) if rows else np.zeros((0, n_cells), dtype=bool))


def partition_candidates(
    g: np.ndarray, h: np.ndarray, present: np.ndarray, missing: int | None, l2: float
) -> Candidates:
    """The partition candidates of a categorical feature at a node.

    ``g``, ``h``: the node's sums per cell (as floats); ``present``: which cells hold rows
    of the node; ``missing``: the missing cell (None if the feature has none).
    """
    cells = np.flatnonzero(present)
    if missing is not None:
        cells = cells[cells != missing]
    g, h = np.asarray(g, dtype=np.float64), np.asarray(h, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = g[cells] / (h[cells] + l2)
    order = cells[np.lexsort((cells, ratio))]
    k, width = len(order), len(present)
    has_missing = missing is not None and bool(present[missing])
    sizes = list(range(1, k)) + (list(range(k)) if has_missing else [])
    left = np.zeros((len(sizes), width), dtype=bool)
    for i, size in enumerate(sizes):
        left[i, order[:size]] = True
        if i >= k - 1:  # the missing-left ones
            left[i, missing] = True
    return Candidates(left)


def normalised(left: np.ndarray, present: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """A categorical split's left cells, sides swapped if need be so that left holds the
    lowest category cell present (``categories``: which cells are categories, not missing)."""
    present_categories = np.flatnonzero(present & categories)
    if len(present_categories) and not left[present_categories[0]]:
        return np.asarray(present & ~left)
    return np.asarray(left & present)


def routing_cells(left: np.ndarray, present: np.ndarray, default_left: bool) -> np.ndarray:
    """Where each cell's rows go: as ``left`` says for cells present at the node, the
    default side for the others (a category the node had no rows of, missing)."""
    return np.asarray(np.where(present, left, default_left), dtype=bool)
