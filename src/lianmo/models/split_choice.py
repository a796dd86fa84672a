"""Choosing one node's split among every party's candidates: pure maths, no messages.

Each party offers its candidates for a node as left-child sums ``(G_L, H_L)``. The guest
offers its own in (feature, bin) order, each with its key ``f * B + b``; a host's come
shuffled, numbered 0..k-1. The best gain wins; between parties the first in party order
wins a tie (the guest, then hosts in job order), as pooled XGBoost would scan them.
Within a host every candidate tied at the top is kept, because the host resolves the tie
itself (the lowest feature and bin, as if its candidates were not shuffled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lianmo.models.tree import TreeParams, best_candidate, split_gains


@dataclass(frozen=True)
class Offer:
    """One party's candidate left sums for a node (already scaled back to floats)."""

    owner: str
    GL: np.ndarray
    HL: np.ndarray
    keys: Sequence[int] | None = None
    """The guest's own keys ``f * B + b`` per candidate; None for a host's shuffled ones."""


@dataclass(frozen=True)
class Choice:
    """The winning split: its owner, candidate key(s) and gain."""

    owner: str
    candidates: tuple[int, ...]
    """One key for the guest's own split; every tied candidate number for a host's."""
    gain: float


def choose_split(offers: Sequence[Offer], G: float, H: float, params: TreeParams) -> Choice | None:
    """The best split of a node with sums ``(G, H)``, or None (the node becomes a leaf)."""
    options: list[Choice] = []
    for offer in offers:
        gains = split_gains(offer.GL, offer.HL, G, H, params)
        best = best_candidate(gains)
        if best is None:
            continue
        if offer.keys is not None:
            options.append(Choice(offer.owner, (int(offer.keys[best]),), float(gains[best])))
        else:
            tied = tuple(int(c) for c in np.flatnonzero(gains == gains[best]))
            options.append(Choice(offer.owner, tied, float(gains[best])))
    return max(options, key=lambda o: o.gain, default=None)  # max keeps the first: party order
