"""A host reads ``sb.candidates`` layouts and ``sb.splits`` choices strictly.

A dishonest guest answering ``sb.splits`` may name only a candidate the host offered at
that node: a numeric candidate number, or for a category group a partition of that
group's units (each once, in range, with a missing side only where the node has missing
rows, and neither side empty). Anything else stops the job before the host computes a
partition.
"""

from __future__ import annotations

import numpy as np
import pytest

from lianmo.errors import ProtocolError
from lianmo.protocols.secureboost.offers import (
    Layout,
    decode_layouts,
    encode_layouts,
    parse_choices,
)

# node 0: 5 numeric candidates and two category groups (4 units with a missing unit,
# 3 units without); node 1: 2 numeric candidates, one group of 2 units
LAYOUTS = [Layout(5, ((4, True), (3, False))), Layout(2, ((2, False),))]


def _parse(*values: int) -> list:  # type: ignore[type-arg]
    return parse_choices(np.array(values, dtype=np.int64), "broker", LAYOUTS)


def test_layouts_round_trip_and_numeric_only_hosts_send_the_old_counts() -> None:
    assert decode_layouts(np.array(encode_layouts(LAYOUTS)), 2, "platform") == LAYOUTS
    numeric = [Layout(7), Layout(0)]
    assert encode_layouts(numeric) == [7, 0]  # exactly what a 0.3 host sent
    assert decode_layouts(np.array([7, 0]), 2, "platform") == numeric
    with pytest.raises(ProtocolError, match="host 'platform' sent a malformed 'sb.candidates'"):
        decode_layouts(np.array([7, 0, 1, 0, 1]), 2, "platform")  # a group of 0 units


def test_honest_choices_are_read() -> None:
    # node 0: numeric candidate 3; node 1: group 0 (number 2 + 0) with unit 1 left
    (j0, items0), (j1, items1) = _parse(0, 1, 3, 1, 1, 2, 1, 1, 0)
    assert (j0, [i.number for i in items0]) == (0, [3])
    assert j1 == 1 and items1[0].units == (1,) and items1[0].missing_left is False
    # node 0, group 0: units 2 and 0 left with the missing rows
    ((_, (item,)),) = _parse(0, 1, 5, 2, 2, 0, 1)
    assert item.units == (2, 0) and item.missing_left is True


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ((0, 1, 5, 1, 4, 0), "a unit out of the group's range"),
        ((0, 1, 5, 2, 1, 1, 0), "a unit twice"),
        ((0, 1, 6, 1, 0, 1), "missing left in a group without missing rows"),
        ((0, 1, 6, 3, 0, 1, 2, 0), "every unit left: the right side is empty"),
        ((0, 1, 5, 4, 0, 1, 2, 3, 1), "every unit and the missing rows left"),
        ((0, 1, 5, 0, 0), "nothing left"),
        ((0, 1, 8, 1, 0, 0), "a group that does not exist"),
    ],
)
def test_a_partition_the_host_did_not_offer_is_refused(values: tuple[int, ...], why: str) -> None:
    with pytest.raises(ProtocolError, match="guest 'broker' chose a"):
        _parse(*values)


def test_malformed_or_repeated_choices_are_refused() -> None:
    with pytest.raises(ProtocolError, match="malformed 'sb.splits'"):
        _parse(0, 1, 5, 3, 0)  # says 3 units, sends 1
    with pytest.raises(ProtocolError, match="malformed 'sb.splits'"):
        _parse(2, 1, 0)  # node 2 of 2 open nodes
    with pytest.raises(ProtocolError, match="two splits for one node"):
        _parse(0, 1, 3, 0, 1, 4)
