"""How a host's candidates travel: the ``sb.candidates`` layout and ``sb.splits`` choices.

Per open node a host sends the packed left sums of its numeric candidates (shuffled),
then, for each categorical feature (groups in a fresh random order), the sums of each
category present at the node (in a fresh random order) and last, if the node has rows
missing in it, the sum of the missing cell. ``sb.candidates`` says per node how many
numeric candidates there are and, only if the host has categorical features, after the
counts of all nodes: per node the group count and per group its category count and
whether it has a missing unit (0 or 1). A host without categorical features sends
exactly the counts it always sent.

The guest builds each group's partition candidates (:func:`partition_candidates`) and
answers in ``sb.splits``, per node the host won: ``node, k`` and ``k`` items, each
either a numeric candidate number ``c`` or, for a group's best partition,
``numeric + group, n, u_1 .. u_n, missing_left``: the group's category units going left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lianmo.errors import ProtocolError
from lianmo.models.split_candidates import partition_candidates


@dataclass(frozen=True)
class Layout:
    """One node's packed cells at a host: numeric candidates, then category groups."""

    numeric: int
    groups: tuple[tuple[int, bool], ...] = ()  # (category units, has a missing unit)

    @property
    def cells(self) -> int:
        return self.numeric + sum(size + int(missing) for size, missing in self.groups)


def encode_layouts(layouts: Sequence[Layout]) -> list[int]:
    """``sb.candidates``: counts per node, then the groups if any node may have some."""
    flat = [layout.numeric for layout in layouts]
    if any(layout.groups for layout in layouts):
        for layout in layouts:
            flat.append(len(layout.groups))
            for size, missing in layout.groups:
                flat += [size, int(missing)]
    return flat


def decode_layouts(flat: np.ndarray, nodes: int, host: str) -> list[Layout]:
    """The layouts :func:`encode_layouts` wrote for ``nodes`` open nodes."""
    values = [int(v) for v in flat]
    bad = ProtocolError(f"host '{host}' sent a malformed 'sb.candidates'")
    if len(values) < nodes:
        raise bad
    numeric, rest = values[:nodes], values[nodes:]
    if not rest:
        return [Layout(c) for c in numeric]
    out, i = [], 0
    for c in numeric:
        if i >= len(rest):
            raise bad
        n, i = rest[i], i + 1
        groups = []
        for _ in range(n):
            if i + 2 > len(rest) or rest[i] < 1 or rest[i + 1] not in (0, 1):
                raise bad
            groups.append((rest[i], bool(rest[i + 1])))
            i += 2
        out.append(Layout(c, tuple(groups)))
    if i != len(rest):
        raise bad
    return out


@dataclass(frozen=True)
class HostOffer:
    """A host's candidates at one node as the guest scores them (integer left sums)."""

    layout: Layout
    GL: np.ndarray
    HL: np.ndarray
    group: np.ndarray  # per candidate: -1 numeric, else its group
    units: list[np.ndarray | None]  # per candidate: a group candidate's units going left

    def items(self, tied: Sequence[int]) -> list[list[int]]:
        """``sb.splits`` items for the tied candidates: numeric ones by number, a group's
        first (in its scan order) as its partition."""
        out: list[list[int]] = []
        seen: set[int] = set()
        for c in sorted(tied):
            g = int(self.group[c])
            if g < 0:
                out.append([c])
                continue
            if g in seen:
                continue
            seen.add(g)
            size, missing = self.layout.groups[g]
            left = self.units[c]
            if left is None:
                raise ProtocolError("internal error: a group candidate without its units")
            chosen = [int(u) for u in np.flatnonzero(left[:size])]
            missing_left = int(missing and bool(left[size]))
            out.append([self.layout.numeric + g, len(chosen), *chosen, missing_left])
        return out


def host_offer(layout: Layout, sums: np.ndarray, scale: float, l2: float) -> HostOffer:
    """The numeric candidates' sums and every group's partition candidates, in order."""
    GL, HL = [sums[: layout.numeric, 0]], [sums[: layout.numeric, 1]]
    group = [np.full(layout.numeric, -1, dtype=np.int64)]
    units: list[np.ndarray | None] = [None] * layout.numeric
    at = layout.numeric
    for g, (size, missing) in enumerate(layout.groups):
        unit_sums = sums[at : at + size + int(missing)]
        at += size + int(missing)
        found = partition_candidates(
            unit_sums[:, 0] * scale,
            unit_sums[:, 1] * scale,
            np.ones(len(unit_sums), dtype=bool),
            size if missing else None,
            l2,
        )
        left = found.left_sums(unit_sums)
        GL.append(left[:, 0])
        HL.append(left[:, 1])
        group.append(np.full(len(found), g, dtype=np.int64))
        units += list(found.left)
    return HostOffer(layout, np.concatenate(GL), np.concatenate(HL), np.concatenate(group), units)


@dataclass(frozen=True)
class Item:
    """One tied choice as the host reads it: a numeric candidate, or a group's partition."""

    number: int  # the numeric candidate, or numeric + group
    units: tuple[int, ...] = ()
    missing_left: bool = False


def parse_choices(
    flat: np.ndarray, guest: str, layouts: Sequence[Layout]
) -> list[tuple[int, list[Item]]]:
    """``sb.splits``: per node won, ``node, k`` and ``k`` items (see the module doc)."""
    values = [int(v) for v in flat]
    bad = ProtocolError(f"guest '{guest}' sent a malformed 'sb.splits'")
    out: list[tuple[int, list[Item]]] = []
    i = 0
    while i < len(values):
        if i + 2 > len(values):
            raise bad
        j, k = values[i], values[i + 1]
        i += 2
        if not 0 <= j < len(layouts) or k < 1:
            raise bad
        if any(j == seen for seen, _ in out):
            raise ProtocolError(f"guest '{guest}' chose two splits for one node in 'sb.splits'")
        layout, items = layouts[j], []
        for _ in range(k):
            if i >= len(values):
                raise bad
            c, i = values[i], i + 1
            if 0 <= c < layout.numeric:
                items.append(Item(c))
                continue
            g = c - layout.numeric
            if not 0 <= g < len(layout.groups) or i >= len(values):
                raise ProtocolError(f"guest '{guest}' chose a split candidate that does not exist")
            size, missing = layout.groups[g]
            n = values[i]
            units = tuple(values[i + 1 : i + 1 + n])
            if i + 2 + n > len(values):
                raise bad
            missing_left = values[i + 1 + n]
            i += 2 + n
            if (
                len(set(units)) != n
                or any(not 0 <= u < size for u in units)
                or missing_left not in (0, int(missing))
                or n + missing_left == 0
                or n + missing_left == size + int(missing)
            ):
                raise ProtocolError(
                    f"guest '{guest}' chose a category partition that does not exist"
                )
            items.append(Item(c, units, bool(missing_left)))
        out.append((j, items))
    return out
