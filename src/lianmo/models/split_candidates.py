"""The split candidates of one feature at one node: which bins go left, and where missing goes.

One mechanism for every party: the guest scores its own candidates from plaintext
histograms, a host offers the same candidates' left sums encrypted, and the choice is
made by :mod:`lianmo.models.split_choice`.

Numeric feature with ``n`` value bins (and maybe a missing bin, :mod:`lianmo.models.binning`):

1. *missing right*: left = value bins ``<= b`` for each ``b`` whose bin holds rows of the
   node and that leaves rows on the right (values above ``b``, or missing rows);
2. only if the node has missing rows in the feature, *missing left*: left = value bins
   ``<= b`` plus the missing bin, for each ``b`` whose bin holds rows and that leaves
   values on the right.

All missing-right candidates by ``b``, then the missing-left ones by ``b``; the first
largest gain wins (XGBoost scans forward, then backward, and keeps the first best). A
candidate whose bin is empty in the node would repeat the previous one and is left out,
as is "only missing left" (the same partition as "all values left, missing right", which
comes first). The *default direction* of a split is the side the missing rows went
(right when the node had none): scoring sends missing cells there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Candidates", "numeric_candidates", "numeric_left_cells"]


@dataclass(frozen=True)
class Candidates:
    """Candidates of one feature at one node, in scan order: ``bins[i]`` and direction."""

    bins: np.ndarray  # b of each candidate: value bins <= b go left
    missing_left: np.ndarray  # bool: the missing bin goes left too

    def __len__(self) -> int:
        return len(self.bins)

    def left_sums(self, hist: np.ndarray, n_values: int) -> np.ndarray:
        """Left sums of each candidate from a histogram ``hist`` (cells x ...) of the feature.

        ``hist[:n_values]`` are the value bins, ``hist[n_values]`` the missing bin if any.
        """
        hist = np.asarray(hist)
        running = np.cumsum(hist[:n_values], axis=0)
        left = running[self.bins]
        if self.missing_left.any():
            left[self.missing_left] += hist[n_values]
        return np.asarray(left)


def numeric_left_cells(b: int, missing_left: bool, n_values: int, n_cells: int) -> np.ndarray:
    """Which of a numeric feature's cells (bins) a split after ``b`` sends left (bool)."""
    left = np.zeros(n_cells, dtype=bool)
    left[: b + 1] = True
    if missing_left:
        left[n_values] = True
    return left


def numeric_candidates(count: np.ndarray, missing: int) -> Candidates:
    """The candidates of a numeric feature from the node's row count per value bin.

    ``count``: rows of the node in each value bin; ``missing``: rows in its missing bin.
    """
    count = np.asarray(count, dtype=np.int64)
    above = np.concatenate([np.cumsum(count[::-1])[::-1][1:], [0]])  # values in bins > b
    filled = count > 0
    right = np.flatnonzero(filled & ((above > 0) | (missing > 0)))
    if missing <= 0:
        return Candidates(right, np.zeros(len(right), dtype=bool))
    left = np.flatnonzero(filled & (above > 0))
    return Candidates(
        np.concatenate([right, left]),
        np.concatenate([np.zeros(len(right), dtype=bool), np.ones(len(left), dtype=bool)]),
    )
