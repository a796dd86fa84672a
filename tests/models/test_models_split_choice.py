"""Choosing a node's split among every party's candidates (pure maths)."""

from __future__ import annotations

import numpy as np

from lianmo.models.split_choice import Offer, choose_split
from lianmo.models.tree import TreeParams

P = TreeParams(depth=3, l2=1.0, min_child_weight=0.0)


def _offer(owner: str, gl: list[float], hl: list[float], keys: list[int] | None = None) -> Offer:
    return Offer(owner, np.array(gl), np.array(hl), keys)


def test_the_best_gain_wins_and_the_guest_gives_its_key() -> None:
    G, H = 0.0, 10.0
    guest = _offer("g", [-1.0, -3.0], [5.0, 5.0], keys=[7, 42])
    host = _offer("h", [-2.0], [5.0])
    choice = choose_split([guest, host], G, H, P)
    assert choice is not None and (choice.owner, choice.candidates) == ("g", (42,))


def test_a_host_keeps_every_candidate_tied_at_the_top() -> None:
    host = _offer("h", [1.0, -4.0, 4.0, -4.0], [5.0, 5.0, 5.0, 5.0])
    choice = choose_split([_offer("g", [], [], keys=[]), host], 0.0, 10.0, P)
    assert choice is not None and choice.owner == "h" and choice.candidates == (1, 2, 3)


def test_between_parties_a_tie_goes_to_the_first_in_party_order() -> None:
    guest = _offer("g", [-2.0], [5.0], keys=[3])
    host = _offer("h", [-2.0], [5.0])
    first = choose_split([guest, host], 0.0, 10.0, P)
    assert first is not None and first.owner == "g"
    flipped = choose_split([host, guest], 0.0, 10.0, P)
    assert flipped is not None and flipped.owner == "h"


def test_no_positive_gain_makes_a_leaf() -> None:
    flat = _offer("g", [0.0], [5.0], keys=[0])
    assert choose_split([flat, _offer("h", [], [])], 0.0, 10.0, P) is None
    strict = TreeParams(depth=3, l2=1.0, min_child_weight=6.0)
    assert choose_split([_offer("g", [-3.0], [5.0], keys=[0])], 0.0, 10.0, strict) is None
