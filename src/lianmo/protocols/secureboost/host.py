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
from dataclasses import dataclass

import numpy as np

from lianmo.crypto.paillier import CipherVector, Packing, PublicKey
from lianmo.errors import ProtocolError
from lianmo.models.binning import MAX_BINS, QuantileBins
from lianmo.models.split_candidates import numeric_candidates, numeric_left_cells
from lianmo.models.tree import honest_value_bits
from lianmo.protocols.context import RoleContext
from lianmo.protocols.secureboost.params import (
    CHECKPOINT,
    PHASE,
    BoostParams,
    HostResult,
    Timings,
    add_importance,
)
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
) -> HostResult:
    """Host side: answer histogram and partition requests; returns this host's split rules."""
    timings = Timings()
    saved = ctx.checkpoints.restore(CHECKPOINT, HostState)
    key = _job_key(ctx, params, saved)
    if saved is None:
        saved = HostState(-1, False, {}, ctx.recv(SB_PLAN, ctx.guest), key.n_bytes(), {}, {})
    outputs = saved.outputs
    bins = QuantileBins.fit(X, params.max_bins)
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
            cells, counts, offered = self._candidates(hist, B, at, features, nb, t)
            mask_rng = ctx.rng.child(f"sb/mask/{t}/{depth}")
            masks = layout.draw_masks(len(cells), self.key.n, mask_rng)
            packed = cells.pack(layout, ctx.compute).add_plain_ints(masks)
            packed = packed.obfuscate(ctx.rng, ctx.compute)
            self.timings.add("histogram", started)
            ctx.send(SB_CANDIDATES, guest, counts, round=t)
            ctx.send(SB_HISTOGRAMS, guest, packed, round=t)  # 3.
            self._partition(rules, B, local, at, features, offered, depth)  # 4.
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
        offered: list[list[_Offered]],
        depth: int,
    ) -> None:
        """Step 4 at the host: record the splits the guest chose; which rows go left."""
        ctx, t, guest = self.ctx, self.t, self.ctx.guest
        chosen = ctx.recv(SB_SPLITS, guest, round=t)
        ids, lefts = [], []
        for j, tied in _parse_choices(chosen, guest, offered):
            # ties in gain: the first in scan order, as if candidates were not shuffled
            first = min((offered[j][c] for c in tied), key=_Offered.order)
            c = self._canonical(B, at, j, features, first)
            f = int(features[c.feature])
            split_id = new_split_id(ctx, rules, t, depth, j)
            ids.append(split_id)
            rules[split_id] = SplitRule(f, self.bins.threshold(f, c.bin), t, depth, c.missing_left)
            cells = numeric_left_cells(c.bin, c.missing_left, self.bins.n_bins(f), MAX_BINS)
            lefts.append((local == j) & cells[self.binned[:, f]])
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
    ) -> tuple[CipherVector, list[int], list[list[_Offered]]]:
        """Shuffled candidate left sums per node: (cells, count per node, candidate per number).

        The candidates of each feature are :func:`numeric_candidates`'s; a missing-left
        candidate's sum is its running sum plus the feature's missing bin.
        """
        F = len(features)
        picks: list[int] = []
        plus: list[tuple[int, int]] = []  # (place in picks, missing cell to add)
        counts: list[int] = []
        offered: list[list[_Offered]] = []
        for j in range(len(hist)):
            rows = at == j
            candidates = []
            for f in range(F):
                nv = self.bins.n_bins(int(features[f]))
                count = np.bincount(B[rows, f], minlength=nb)
                missing = int(count[nv]) if self.bins.missing[int(features[f])] else 0
                found = numeric_candidates(count[:nv], missing)
                candidates += [
                    _Offered(f, int(b), bool(ml))
                    for b, ml in zip(found.bins, found.missing_left, strict=True)
                ]
            order = permutation(self.ctx, len(candidates), f"sb/candidates/{t}/{j}/{len(picks)}")
            shuffled = [candidates[i] for i in order]
            offered.append(shuffled)
            counts.append(len(shuffled))
            for c in shuffled:
                base = (j * F + c.feature) * nb
                if c.missing_left:
                    plus.append((len(picks), base + self.bins.n_bins(int(features[c.feature]))))
                picks.append(base + c.bin)
        if not picks:
            return CipherVector(self.key, 0, []), counts, offered
        flat = CipherVector.concat(hist)
        cells = flat.prefix_sums(nb).select(picks)
        if plus:
            places = [place for place, _ in plus]
            added = cells.select(places).add(flat.select([cell for _, cell in plus]))
            for place, value in zip(places, added.values, strict=True):
                cells.values[place] = value
        return cells, counts, offered

    def _canonical(
        self, B: np.ndarray, at: np.ndarray, j: int, features: np.ndarray, chosen: _Offered
    ) -> _Offered:
        """The first candidate splitting node ``j``'s sampled rows exactly like ``chosen``.

        Same left rows, same side for the missing ones: scanning features in order, a
        numeric feature reproduces the partition when its left value bins all lie below
        its right ones and its missing rows (if any) all sit on one side.
        """
        rows = np.flatnonzero(at == j)
        nv = self.bins.n_bins(int(features[chosen.feature]))
        cells = numeric_left_cells(chosen.bin, chosen.missing_left, nv, MAX_BINS)
        left = cells[B[rows, chosen.feature]]
        for f in range(chosen.feature + 1):
            column = B[rows, f].astype(np.int64)
            absent = column >= self.bins.n_bins(int(features[f]))
            lo, hi = column[left & ~absent], column[~left & ~absent]
            if len(lo) == 0 or (len(hi) and int(lo.max()) >= int(hi.min())):
                continue
            if absent[left].any() and absent[~left].any():
                continue
            missing_left = bool(absent[left].any())
            if missing_left and len(hi) == 0:
                continue
            return _Offered(f, int(lo.max()), missing_left)
        return chosen


@dataclass(frozen=True, slots=True)
class _Offered:
    """One numeric candidate as the host offered it: its feature (position in the tree's
    sampled features), bin and whether the missing bin goes left."""

    feature: int
    bin: int
    missing_left: bool

    def order(self) -> tuple[int, bool, int]:
        """Its place in the unshuffled scan: feature, then missing right before left, bin."""
        return self.feature, self.missing_left, self.bin


def _parse_choices(
    flat: np.ndarray, guest: str, offered: list[list[_Offered]]
) -> list[tuple[int, list[int]]]:
    """``sb.splits``: per node won, ``node, k, c_1 .. c_k`` (the candidates tied at the top)."""
    out: list[tuple[int, list[int]]] = []
    i = 0
    while i < len(flat):
        if i + 2 > len(flat):
            raise ProtocolError(f"guest '{guest}' sent a malformed 'sb.splits'")
        j, k = int(flat[i]), int(flat[i + 1])
        tied = [int(c) for c in flat[i + 2 : i + 2 + k]]
        if not 0 <= j < len(offered) or k < 1 or len(tied) != k:
            raise ProtocolError(f"guest '{guest}' sent a malformed 'sb.splits'")
        if any(j == seen for seen, _ in out):
            raise ProtocolError(f"guest '{guest}' chose two splits for one node in 'sb.splits'")
        if any(not 0 <= c < len(offered[j]) for c in tied):
            raise ProtocolError(f"guest '{guest}' chose a split candidate that does not exist")
        out.append((j, tied))
        i += 2 + k
    return out


def _job_key(ctx: RoleContext, params: BoostParams, saved: HostState | None) -> PublicKey:
    """The guest's public key: received now, or as the round checkpoint kept it."""
    return ctx.job_key(
        SB_PUBLIC_KEY,
        ctx.guest,
        None if saved is None else saved.key,
        key_bits=params.key_bits,
        insecure_test_key=params.insecure_test_key,
    )
