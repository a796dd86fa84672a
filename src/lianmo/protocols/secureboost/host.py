"""A host's SecureBoost: encrypted histograms for the guest, partitions at its own splits.

The host never decrypts anything and never sends a threshold or a feature: per level it
returns the packed, masked, shuffled, re-randomised left sums of its candidates (step 3),
and for the nodes it wins, which rows go left under a fresh random split id (step 4).

It cannot see what the guest encrypted, so it bounds what a dishonest guest can read:
it refuses a (g, h) layout wider than an honest guest computes for the tree's row count
(:func:`~lianmo.models.tree.honest_value_bits`), sizes the packed slots itself from
that layout, and adds a fresh random mask above each candidate's slots
(:meth:`~lianmo.crypto.paillier.Packing.masked`), so a decryption shows only the
honest slots' width per candidate, whatever the guest put in its ciphertexts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lianmo.crypto.paillier import CipherVector, Packing, PublicKey
from lianmo.errors import ProtocolError
from lianmo.models.binning import MAX_BINS, QuantileBins
from lianmo.models.split_candidates import numeric_candidates
from lianmo.models.tree import honest_value_bits
from lianmo.protocols.context import RoleContext
from lianmo.protocols.secureboost.offers import (
    Item,
    Layout,
    encode_layouts,
    parse_choices,
)
from lianmo.protocols.secureboost.params import (
    CHECKPOINT,
    PHASE,
    BoostParams,
    HostResult,
    Timings,
    add_importance,
)
from lianmo.protocols.secureboost.rules import make_rule
from lianmo.protocols.secureboost.sampling import new_split_id, permutation, sample_features
from lianmo.protocols.secureboost.state import HostState
from lianmo.protocols.tree_route import SplitRule, route_host
from lianmo.wire.convert import NO_INDEX
from lianmo.wire.steps import (
    SB_CANDIDATES,
    SB_FINAL,
    SB_GH,
    SB_GH_LAYOUT,
    SB_HISTOGRAMS,
    SB_NODES,
    SB_PARTITIONS,
    SB_PLAN,
    SB_POSITIONS,
    SB_PUBLIC_KEY,
    SB_ROUND_END,
    SB_SAMPLE,
    SB_SPLIT_IDS,
    SB_SPLITS,
)


def train_host(
    ctx: RoleContext,
    X: np.ndarray,
    X_val: np.ndarray,
    params: BoostParams,
    *,
    categories: Sequence[int | None] | None = None,
) -> HostResult:
    """Host side: answer histogram and partition requests; returns this host's split rules.

    ``categories[f]``: the training category count of a categorical column, None for a
    numeric one (all numeric if omitted); NaN cells are missing.
    """
    timings = Timings()
    saved = ctx.checkpoints.restore(CHECKPOINT, HostState)
    key = _job_key(ctx, params, saved)
    if saved is None:
        saved = HostState(-1, False, {}, ctx.recv(SB_PLAN, ctx.guest), key.n_bytes(), {}, {})
    outputs = saved.outputs
    bins = QuantileBins.fit(X, params.max_bins, categories)
    binned = bins.transform(X)
    rules = dict(saved.rules)
    timings.seconds, timings.counts = dict(saved.seconds), dict(saved.counts)
    total = params.rounds * outputs
    for r in range(saved.round + 1, 0 if saved.stopped else params.rounds):
        for k in range(outputs):
            t = r * outputs + k
            _HostTree(ctx, key, binned, bins, params, t, timings).grow(rules)
            route_host(ctx, rules, X_val, depth=params.tree.depth, round=t, trees=(t,))
            ctx.progress(PHASE, t + 1, total, f"tree {t + 1}/{total}")
        decision = ctx.recv(SB_ROUND_END, ctx.guest, round=r)
        state = HostState(
            r,
            decision == "stop",
            dict(rules),
            outputs,
            key.n_bytes(),
            timings.seconds,
            timings.counts,
        )
        ctx.checkpoints.save(CHECKPOINT, state)
        if decision == "stop":
            break
    kept = ctx.recv(SB_FINAL, ctx.guest)
    rules = {i: rule for i, rule in rules.items() if rule.tree < kept}
    counts: dict[str, dict[str, float]] = {}
    for rule in rules.values():
        add_importance(counts, str(rule.feature), None)
    return HostResult(rules=rules, importance=counts, trees=kept, timings=timings)


class _HostTree:
    """This host's side of one tree."""

    def __init__(
        self,
        ctx: RoleContext,
        key: PublicKey,
        binned: np.ndarray,
        bins: QuantileBins,
        params: BoostParams,
        t: int,
        timings: Timings,
    ) -> None:
        self.ctx, self.key, self.params, self.t = ctx, key, params, t
        self.binned, self.bins, self.timings = binned, bins, timings

    def grow(self, rules: dict[int, SplitRule]) -> None:
        """Steps 1-4 of tree ``t`` at this host; adds the splits it wins to ``rules``."""
        ctx, t, n = self.ctx, self.t, self.binned.shape[0]
        guest = ctx.guest
        if self.params.subsample < 1.0:
            sample = ctx.recv(SB_SAMPLE, guest, round=t, below=n)
        else:
            sample = np.arange(n)
        layout = self._layout(ctx.recv(SB_GH_LAYOUT, guest, round=t), len(sample))
        gh = ctx.recv(SB_GH, guest, round=t, key=self.key, count=len(sample))
        features = sample_features(ctx, self.binned.shape[1], self.params.colsample, t)
        B = self.binned[np.ix_(sample, features)]
        nb = max((self.bins.n_cells(f) for f in features), default=1)
        previous: dict[int, CipherVector] = {}
        for depth in range(self.params.tree.depth):
            pairs = ctx.recv(SB_NODES, guest, round=t)
            if len(pairs) == 0:
                break
            if len(pairs) % 2:
                raise ProtocolError(f"guest '{guest}' sent a malformed 'sb.nodes'")
            node_ids, parent_ids = pairs[0::2], pairs[1::2]
            m = len(node_ids)
            local = ctx.recv(SB_POSITIONS, guest, round=t, count=n, below=m)
            at = local[sample]
            started = time.perf_counter()
            hist = self._histograms(gh, B, at, node_ids, parent_ids, previous, nb)
            cells, layouts, offered = self._candidates(hist, B, at, features, nb, t)
            mask_rng = ctx.rng.child(f"sb/mask/{t}/{depth}")
            masks = layout.draw_masks(len(cells), self.key.n, mask_rng)
            packed = cells.pack(layout, ctx.compute).add_plain_ints(masks)
            packed = packed.obfuscate(ctx.rng, ctx.compute)
            self.timings.add("histogram", started)
            ctx.send(SB_CANDIDATES, guest, encode_layouts(layouts), round=t)
            ctx.send(SB_HISTOGRAMS, guest, packed, round=t)  # 3.
            self._partition(rules, B, local, at, features, layouts, offered, depth)  # 4.
            previous = {int(node_ids[j]): hist[j] for j in range(m)}

    def _layout(self, value_bits: int, rows: int) -> Packing:
        """The packed layout of candidate sums: the guest's (g, h) slots, then a mask.

        Refuses a layout wider than an honest guest computes for ``rows`` rows: the
        slots, and so what a dishonest guest could read per candidate, stay that narrow.
        """
        honest = honest_value_bits(rows)
        if value_bits > honest:
            raise ProtocolError(
                f"guest '{self.ctx.guest}' announced {value_bits}-bit gradients in "
                f"'{SB_GH_LAYOUT.tag}' for tree {self.t} of {rows} rows; an honest guest "
                f"needs at most {honest} (models/tree.py quantise_gh): refused, as a "
                "wider layout would let the guest read more rows per candidate"
            )
        return Packing.for_sums((value_bits, value_bits), max(rows, 1)).masked(self.key.n)

    def _partition(
        self,
        rules: dict[int, SplitRule],
        B: np.ndarray,
        local: np.ndarray,
        at: np.ndarray,
        features: np.ndarray,
        layouts: list[Layout],
        offered: list[_NodeOffer],
        depth: int,
    ) -> None:
        """Step 4 at the host: record the splits the guest chose; which rows go left."""
        ctx, t, guest = self.ctx, self.t, self.ctx.guest
        chosen = ctx.recv(SB_SPLITS, guest, round=t)
        ids, lefts = [], []
        for j, items in parse_choices(chosen, guest, layouts):
            # ties in gain: the first in scan order, as if candidates were not shuffled
            _, f_local, cells = min((offered[j].chosen(item) for item in items), key=_first)
            rows = np.flatnonzero(at == j)
            f_local, cells = self._canonical(B, rows, features, f_local, cells)
            f = int(features[f_local])
            present = np.bincount(B[rows, f_local], minlength=MAX_BINS) > 0
            split_id = new_split_id(ctx, rules, t, depth, j)
            ids.append(split_id)
            rules[split_id], route = make_rule(self.bins, f, cells, present, t, depth)
            lefts.append((local == j) & route[self.binned[:, f]])
        ctx.send(SB_SPLIT_IDS, guest, ids, round=t)
        n = len(local)
        ctx.send(SB_PARTITIONS, guest, np.array(lefts).reshape(len(lefts), n), round=t)

    def _histograms(
        self,
        gh: CipherVector,
        B: np.ndarray,
        at: np.ndarray,
        node_ids: np.ndarray,
        parent_ids: np.ndarray,
        previous: dict[int, CipherVector],
        nb: int,
    ) -> list[CipherVector]:
        """Encrypted (g, h) sums per node over (feature, bin), smaller siblings built."""
        m = len(node_ids)
        sizes = np.bincount(at[at >= 0], minlength=m)
        siblings: dict[int, list[int]] = {}
        for j in range(m):
            siblings.setdefault(int(parent_ids[j]), []).append(j)
        build: list[int] = []
        derive: dict[int, tuple[int, int]] = {}  # node -> (parent node id, built sibling)
        for parent, group in siblings.items():
            if parent == NO_INDEX or parent not in previous or len(group) != 2:
                if parent != NO_INDEX and parent not in previous:
                    raise ProtocolError(f"guest '{self.ctx.guest}' named an unknown parent node")
                build.extend(group)
                continue
            a, b = group
            small, big = (a, b) if sizes[a] <= sizes[b] else (b, a)
            build.append(small)
            derive[big] = (parent, small)
        slot = np.full(m, -1, dtype=np.int64)
        slot[build] = np.arange(len(build))
        nodes = np.where(at >= 0, slot[np.maximum(at, 0)], -1)
        rows = np.flatnonzero(nodes >= 0)
        built = gh.select(rows).histogram(
            B[rows], nb, nodes=nodes[rows], n_nodes=max(len(build), 1), backend=self.ctx.compute
        )
        width = B.shape[1] * nb
        self.timings.count("placements", len(rows) * B.shape[1])
        self.timings.count("subtractions", len(derive) * width)
        out: list[CipherVector | None] = [None] * m
        for i, j in enumerate(build):
            out[j] = built.select(range(i * width, (i + 1) * width))
        for j, (parent, small) in derive.items():
            out[j] = previous[parent].sub(out[small])  # type: ignore[arg-type]
        return [h for h in out if h is not None]

    def _candidates(
        self,
        hist: list[CipherVector],
        B: np.ndarray,
        at: np.ndarray,
        features: np.ndarray,
        nb: int,
        t: int,
    ) -> tuple[CipherVector, list[Layout], list[_NodeOffer]]:
        """Per node: the shuffled numeric candidates' left sums, then the category groups.

        Numeric candidates are :func:`numeric_candidates`'s (a missing-left one's sum is
        its running sum plus the missing bin); a categorical feature sends the sum of each
        category present and of the missing cell (see :mod:`.offers`).
        """
        F = len(features)
        size = len(hist) * F * nb  # picks below ``size``: running sums; above: single cells
        picks: list[int] = []
        plus: list[tuple[int, int]] = []  # (place in picks, missing cell to add)
        layouts: list[Layout] = []
        offered: list[_NodeOffer] = []
        for j in range(len(hist)):
            rows = at == j
            numeric: list[_Offered] = []
            groups: list[tuple[int, list[int], int | None]] = []
            for f in range(F):
                feature = int(features[f])
                nv = self.bins.n_bins(feature)
                count = np.bincount(B[rows, f], minlength=nb)
                missing = int(count[nv]) if self.bins.missing[feature] else 0
                if self.bins.is_categorical(feature):
                    units = np.flatnonzero(count[:nv]).tolist()
                    order = permutation(self.ctx, len(units), f"sb/units/{t}/{j}/{f}")
                    groups.append((f, [units[i] for i in order], nv if missing else None))
                    continue
                found = numeric_candidates(count[:nv], missing, nb)
                numeric += [
                    _Offered(f, found.prefix_end(i, nv), bool(missing and found.left[i, nv]), nv)
                    for i in range(len(found))
                ]
            order = permutation(self.ctx, len(numeric), f"sb/candidates/{t}/{j}/{len(picks)}")
            shuffled = [numeric[i] for i in order]
            for c in shuffled:
                base = (j * F + c.feature) * nb
                if c.missing_left:
                    plus.append((len(picks), base + c.n_values))
                picks.append(base + c.bin)
            if groups:
                shuffle = permutation(self.ctx, len(groups), f"sb/groups/{t}/{j}")
                groups = [groups[i] for i in shuffle]
            for f, units, missing_cell in groups:
                base = size + (j * F + f) * nb
                picks += [base + u for u in units]
                if missing_cell is not None:
                    picks.append(base + missing_cell)
            layouts.append(
                Layout(len(shuffled), tuple((len(u), m is not None) for _, u, m in groups))
            )
            offered.append(_NodeOffer(shuffled, groups))
        if not picks:
            return CipherVector(self.key, 0, []), layouts, offered
        flat = CipherVector.concat(hist)
        cells = CipherVector.concat([flat.prefix_sums(nb), flat]).select(picks)
        if plus:
            places = [place for place, _ in plus]
            added = cells.select(places).add(flat.select([cell for _, cell in plus]))
            for place, value in zip(places, added.values, strict=True):
                cells.values[place] = value
        return cells, layouts, offered

    def _canonical(
        self,
        B: np.ndarray,
        rows: np.ndarray,
        features: np.ndarray,
        f: int,
        cells: np.ndarray,
    ) -> tuple[int, np.ndarray]:
        """The first numeric candidate splitting the node's sampled ``rows`` exactly like
        cells ``cells`` of feature ``f`` (same left rows), else that split itself.

        A numeric feature reproduces the partition when its left value bins all lie
        below its right ones and its missing rows (if any) all sit on one side.
        """
        left = cells[B[rows, f]]
        for f2 in range(f + 1):
            if self.bins.is_categorical(int(features[f2])):
                continue
            nv = self.bins.n_bins(int(features[f2]))
            column = B[rows, f2].astype(np.int64)
            absent = column >= nv
            lo, hi = column[left & ~absent], column[~left & ~absent]
            if len(lo) == 0 or (len(hi) and int(lo.max()) >= int(hi.min())):
                continue
            if absent[left].any() and absent[~left].any():
                continue
            missing_left = bool(absent[left].any())
            if missing_left and len(hi) == 0:
                continue
            out = np.zeros(MAX_BINS, dtype=bool)
            out[: int(lo.max()) + 1] = True
            out[nv] = missing_left
            return f2, out
        return f, cells


@dataclass(frozen=True, slots=True)
class _Offered:
    """One numeric candidate as the host offered it: its feature (position in the tree's
    sampled features), bin and whether the missing bin goes left."""

    feature: int
    bin: int
    missing_left: bool
    n_values: int  # the feature's value bins: its missing bin's index


@dataclass(frozen=True)
class _NodeOffer:
    """What the host offered at one node: numeric candidates in the order sent, then the
    category groups (feature, category cells in the order sent, missing cell)."""

    numeric: list[_Offered]
    groups: list[tuple[int, list[int], int | None]]

    def chosen(self, item: Item) -> tuple[tuple[int, bool, int], int, np.ndarray]:
        """A chosen item's place in the unshuffled scan, feature and cells sent left."""
        left = np.zeros(MAX_BINS, dtype=bool)
        if item.number < len(self.numeric):
            c = self.numeric[item.number]
            left[: c.bin + 1] = True
            left[c.n_values] = c.missing_left
            return (c.feature, c.missing_left, c.bin), c.feature, left
        f, units, missing_cell = self.groups[item.number - len(self.numeric)]
        left[[units[u] for u in item.units]] = True
        if item.missing_left and missing_cell is not None:
            left[missing_cell] = True
        return (f, False, -1), f, left


def _first(chosen: tuple[tuple[int, bool, int], int, np.ndarray]) -> tuple[int, bool, int]:
    return chosen[0]


def _job_key(ctx: RoleContext, params: BoostParams, saved: HostState | None) -> PublicKey:
    """The guest's public key: received now, or as the round checkpoint kept it."""
    return ctx.job_key(
        SB_PUBLIC_KEY,
        ctx.guest,
        None if saved is None else saved.key,
        key_bits=params.key_bits,
        insecure_test_key=params.insecure_test_key,
    )
