"""The guest's side of one SecureBoost tree, level by level (steps 1-4 of the package doc)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lianmo.crypto.paillier import Packing, PrivateKey
from lianmo.errors import ProtocolError
from lianmo.models.binning import QuantileBins
from lianmo.models.split_candidates import (
    Candidates,
    numeric_candidates,
    partition_candidates,
)
from lianmo.models.split_choice import Choice, Offer, choose_split
from lianmo.models.tree import GhQuantised, Split, Tree, TreeNode, leaf_weight, quantise_gh
from lianmo.protocols.context import RoleContext
from lianmo.protocols.secureboost.offers import HostOffer, decode_layouts, host_offer
from lianmo.protocols.secureboost.params import BoostParams, Timings
from lianmo.protocols.secureboost.rules import make_rule
from lianmo.protocols.secureboost.sampling import sample_features, sample_rows
from lianmo.protocols.tree_route import SplitRule
from lianmo.wire.convert import NO_INDEX
from lianmo.wire.steps import (
    SB_CANDIDATES,
    SB_GH,
    SB_GH_LAYOUT,
    SB_HISTOGRAMS,
    SB_NODES,
    SB_PARTITIONS,
    SB_POSITIONS,
    SB_SAMPLE,
    SB_SPLIT_IDS,
    SB_SPLITS,
)

_ROOT = -1
Sums = tuple[np.ndarray, np.ndarray]  # (G_L, H_L) per candidate, exact integers
Won = dict[str, list[tuple[int, tuple[int, ...]]]]  # host -> [(open node, tied candidates)]


@dataclass
class _Building:
    """One tree as it grows: its nodes, every row's node, and the quantised (g, h)."""

    gh: GhQuantised
    in_sample: np.ndarray
    g_rows: np.ndarray
    h_rows: np.ndarray
    at: np.ndarray  # tree node of every training row
    nodes: list[TreeNode | None] = field(default_factory=lambda: [None])
    parents: dict[int, int] = field(default_factory=lambda: {0: _ROOT})
    open_nodes: list[int] = field(default_factory=lambda: [0])

    @classmethod
    def start(cls, n: int, sample: np.ndarray, gh: GhQuantised) -> _Building:
        in_sample = np.zeros(n, dtype=bool)
        in_sample[sample] = True
        g_rows = np.zeros(n, dtype=np.int64)
        h_rows = np.zeros(n, dtype=np.int64)
        g_rows[sample], h_rows[sample] = gh.g, gh.h
        return cls(gh, in_sample, g_rows, h_rows, np.zeros(n, dtype=np.int64))

    def local(self) -> np.ndarray:
        """Each row's position among the open nodes, -1 for rows in closed ones."""
        local = np.full(len(self.at), -1, dtype=np.int64)
        for j, node_id in enumerate(self.open_nodes):
            local[self.at == node_id] = j
        return local

    def node_pairs(self) -> list[int]:
        """(node id, parent id) of every open node, flat, the root's parent as NO_INDEX."""
        out = []
        for node_id in self.open_nodes:
            parent = self.parents[node_id]
            out.extend([node_id, NO_INDEX if parent == _ROOT else parent])
        return out

    def totals(self, local: np.ndarray, j: int) -> np.ndarray:
        """(G, H) of open node ``j``, scaled back to floats."""
        mask = local == j
        return self.gh.scale(np.array([int(self.g_rows[mask].sum()), int(self.h_rows[mask].sum())]))

    def make_leaf(self, node_id: int, G: float, H: float, params: BoostParams) -> None:
        self.nodes[node_id] = TreeNode(value=leaf_weight(float(G), float(H), params.tree))

    def split(self, node_id: int, split: Split, rows: np.ndarray, left: np.ndarray) -> list[int]:
        """Split ``node_id``; its ``rows`` go to the new children by ``left``."""
        left_id, right_id = len(self.nodes), len(self.nodes) + 1
        self.nodes[node_id] = TreeNode(split, left_id, right_id)
        self.nodes.extend([None, None])
        self.parents[left_id] = self.parents[right_id] = node_id
        self.at[rows[left]] = left_id
        self.at[rows[~left]] = right_id
        return [left_id, right_id]

    def close(self, params: BoostParams, output: int) -> Tree:
        """Turn the nodes still open after the last level into leaves; the finished tree."""
        for node_id in self.open_nodes:
            mask = (self.at == node_id) & self.in_sample
            G = self.gh.scale(np.array(int(self.g_rows[mask].sum())))
            H = self.gh.scale(np.array(int(self.h_rows[mask].sum())))
            self.make_leaf(node_id, float(G), float(H), params)
        if any(n is None for n in self.nodes):
            raise ProtocolError("internal error: a tree node was left undefined")
        return Tree(output=output, nodes=tuple(n for n in self.nodes if n is not None))


@dataclass(frozen=True)
class _Own:
    """The guest's own candidates at one node, in scan order: feature and cells sent left."""

    feature: np.ndarray
    left: np.ndarray  # bool, candidates x cells
    present: np.ndarray  # bool, features x cells: the cells holding rows of the node

    @classmethod
    def join(cls, parts: list[tuple[int, Candidates]], present: np.ndarray) -> _Own:
        """The candidates of each (feature, its candidates), one feature after another."""
        width = present.shape[1]
        return cls(
            np.concatenate([np.full(len(c), f, dtype=np.int64) for f, c in parts] + [[]]).astype(
                np.int64
            ),
            np.concatenate([c.left for _, c in parts] + [np.zeros((0, width), dtype=bool)]),
            present,
        )

    def __len__(self) -> int:
        return len(self.feature)


class GuestGrower:
    """Grows one tree at a time with the hosts; keeps the guest's bins and key."""

    def __init__(
        self,
        ctx: RoleContext,
        private: PrivateKey,
        binned: np.ndarray,
        bins: QuantileBins,
        params: BoostParams,
        timings: Timings,
    ) -> None:
        self.ctx = ctx
        self.private = private
        self.binned = binned
        self.bins = bins
        self.params = params
        self.timings = timings
        self.width = bins.width
        self._own: list[_Own] = []  # the own candidates of the level's open nodes
        self._hosts: dict[str, list[HostOffer]] = {}  # each host's, per open node

    def grow(
        self, t: int, output: int, g: np.ndarray, h: np.ndarray, rules: dict[int, SplitRule]
    ) -> tuple[Tree, np.ndarray]:
        """Tree ``t`` for ``output`` from the rows' (g, h); adds its own splits to ``rules``.

        Returns the tree and the leaf of every training row.
        """
        ctx, p = self.ctx, self.params
        sample = sample_rows(ctx, len(g), p.subsample, t)
        gh, packing = self._send_gradients(t, g, h, sample)  # 1.
        features = sample_features(ctx, self.binned.shape[1], p.colsample, t)
        tree = _Building.start(len(g), sample, gh)
        for depth in range(p.tree.depth):
            if not tree.open_nodes:  # the tree stopped early: tell the hosts
                ctx.broadcast(SB_NODES, ctx.hosts, [], round=t)
                break
            local = tree.local()
            for host in ctx.hosts:  # 2.
                ctx.send(SB_NODES, host, tree.node_pairs(), round=t)
                ctx.send(SB_POSITIONS, host, np.where(local >= 0, local, NO_INDEX), round=t)
            offers = self._offers(tree, local, features, packing, t)  # 3.
            totals = [tree.totals(local, j) for j in range(len(tree.open_nodes))]
            decisions = [  # 4.
                choose_split(offers[j], float(G), float(H), p.tree)
                for j, (G, H) in enumerate(totals)
            ]
            goes_left = self._host_partitions(t, decisions, local)
            self._apply(t, depth, tree, local, decisions, totals, goes_left, rules)
            ctx.record(
                "level",
                tree=t,
                level=depth,
                splits=";".join(
                    "leaf" if d is None else f"{d.owner}:{d.gain:.6g}" for d in decisions
                ),
            )
        return tree.close(p, output), tree.at

    def _send_gradients(
        self, t: int, g: np.ndarray, h: np.ndarray, sample: np.ndarray
    ) -> tuple[GhQuantised, Packing]:
        """Step 1: the sample, the (g, h) layout and [[g + h·2^s]] of every sampled row.

        Returns the quantised (g, h) and the layout the hosts pack candidate sums in:
        the (g, h) slots with a mask slot on top (see the host's ``_layout``).
        """
        ctx = self.ctx
        if self.params.subsample < 1.0:
            ctx.broadcast(SB_SAMPLE, ctx.hosts, sample, round=t)
        gh = quantise_gh(g[sample], h[sample], len(sample))
        packing = Packing.for_sums((gh.value_bits, gh.value_bits), len(sample))
        started = time.perf_counter()
        packed = packing.pack(np.stack([gh.g, gh.h], axis=1))
        encrypted = self.private.encrypt_ints(packed, 0, ctx.rng, ctx.compute)
        self.timings.add("encrypt", started)
        self.timings.count("encryptions", len(sample))
        ctx.broadcast(SB_GH_LAYOUT, ctx.hosts, gh.value_bits, round=t)
        ctx.broadcast(SB_GH, ctx.hosts, encrypted, round=t)
        return gh, packing.masked(self.private.public_key.n)

    def _offers(
        self,
        tree: _Building,
        local: np.ndarray,
        features: np.ndarray,
        packing: Packing,
        t: int,
    ) -> list[list[Offer]]:
        """Per open node: the guest's own candidates, then each host's (decrypted)."""
        own = self._own_candidates(tree, local, features)
        n_open = len(tree.open_nodes)
        self._hosts = {
            host: self._host_candidates(host, t, packing, n_open, tree.gh.frac_bits)
            for host in self.ctx.hosts
        }
        scale = tree.gh.scale
        self._own = [candidates for _, candidates in own]
        out = []
        for j, ((GL, HL), candidates) in enumerate(own):
            offers = [Offer(self.ctx.party, scale(GL), scale(HL), range(len(candidates)))]
            for host, offered in self._hosts.items():
                offers.append(Offer(host, scale(offered[j].GL), scale(offered[j].HL)))
            out.append(offers)
        return out

    def _own_candidates(
        self, tree: _Building, local: np.ndarray, features: np.ndarray
    ) -> list[tuple[Sums, _Own]]:
        """Per open node: left sums (G_L, H_L) of every own candidate, in scan order.

        Candidates are those of :mod:`lianmo.models.split_candidates`, feature by feature.
        """
        nb, F, n_open = self.width, self.binned.shape[1], len(tree.open_nodes)
        rows = np.flatnonzero((local >= 0) & tree.in_sample)
        cells = (local[rows, None] * F + np.arange(F)) * nb + self.binned[rows].astype(np.int64)
        size = n_open * F * nb
        gsum = _int_bincount(cells, tree.g_rows[rows], size).reshape(n_open, F, nb)
        hsum = _int_bincount(cells, tree.h_rows[rows], size).reshape(n_open, F, nb)
        count = np.bincount(cells.ravel(), minlength=size).reshape(n_open, F, nb)
        scale = 2.0**-tree.gh.frac_bits
        l2 = self.params.tree.l2
        out = []
        for j in range(n_open):
            parts, sums = [], [np.zeros((0, 2), dtype=np.int64)]
            for f in features:
                nv = self.bins.n_bins(f)
                missing = int(count[j, f, nv]) if self.bins.missing[f] else 0
                if self.bins.is_categorical(f):
                    cell = nv if self.bins.missing[f] else None
                    found = partition_candidates(
                        gsum[j, f] * scale, hsum[j, f] * scale, count[j, f] > 0, cell, l2
                    )
                else:
                    found = numeric_candidates(count[j, f, :nv], missing, nb)
                parts.append((int(f), found))
                sums.append(found.left_sums(np.stack([gsum[j, f], hsum[j, f]], axis=1)))
            left = np.concatenate(sums)
            out.append(((left[:, 0], left[:, 1]), _Own.join(parts, count[j] > 0)))
        return out

    def _host_candidates(
        self, host: str, t: int, packing: Packing, nodes: int, frac_bits: int
    ) -> list[HostOffer]:
        """Step 3 at the guest: a host's packed sums, decrypted, as candidates per node."""
        ctx = self.ctx
        layouts = decode_layouts(ctx.recv(SB_CANDIDATES, host, round=t), nodes, host)
        total = sum(layout.cells for layout in layouts)
        cv = ctx.recv(SB_HISTOGRAMS, host, round=t, key=self.private.public_key)
        started = time.perf_counter()
        try:
            sums = self.private.decrypt_packed(cv, packing, total, ctx.compute)[:, :2]  # mask off
        except Exception as exc:  # a wrong count or overflowing slot
            raise ProtocolError(f"host '{host}' sent histograms that do not unpack: {exc}") from exc
        self.timings.add("decrypt", started)
        self.timings.count("decryptions", len(cv))
        self.timings.count("candidates", total)
        out = []
        start = 0
        for layout in layouts:
            part = np.asarray(sums[start : start + layout.cells], dtype=np.int64)
            out.append(host_offer(layout, part, 2.0**-frac_bits, self.params.tree.l2))
            start += layout.cells
        return out

    def _host_partitions(
        self, t: int, decisions: list[Choice | None], local: np.ndarray
    ) -> dict[tuple[str, int], tuple[int, np.ndarray]]:
        """Tell each host the nodes it won; its split id and left rows per such node."""
        ctx = self.ctx
        won: Won = {host: [] for host in ctx.hosts}
        for j, d in enumerate(decisions):
            if d is not None and d.owner != ctx.party:
                won[d.owner].append((j, d.candidates))
        for host in ctx.hosts:
            flat: list[int] = []
            for j, tied in won[host]:
                chosen = self._hosts[host][j].items(tied)
                flat += [j, len(chosen), *(v for item in chosen for v in item)]
            ctx.send(SB_SPLITS, host, flat, round=t)
        out: dict[tuple[str, int], tuple[int, np.ndarray]] = {}
        for host in ctx.hosts:
            items = won[host]
            ids = ctx.recv(SB_SPLIT_IDS, host, round=t, count=len(items))
            left = ctx.recv(SB_PARTITIONS, host, round=t, count=len(items), cols=len(local))
            for i, (j, _) in enumerate(items):
                if (left[i] & (local != j)).any():
                    raise ProtocolError(
                        f"host '{host}' sent a partition with rows outside the node"
                    )
                out[(host, j)] = (int(ids[i]), left[i])
        return out

    def _apply(
        self,
        t: int,
        depth: int,
        tree: _Building,
        local: np.ndarray,
        decisions: list[Choice | None],
        totals: list[np.ndarray],
        goes_left: dict[tuple[str, int], tuple[int, np.ndarray]],
        rules: dict[int, SplitRule],
    ) -> None:
        """Split every open node as decided (own splits from own bins), or make it a leaf."""
        next_open = []
        for j, node_id in enumerate(tree.open_nodes):
            decision = decisions[j]
            rows = np.flatnonzero(local == j)
            if decision is None:
                G, H = totals[j]
                tree.make_leaf(node_id, float(G), float(H), self.params)
                continue
            if decision.owner == self.ctx.party:
                own, k = self._own[j], decision.candidates[0]
                f = int(own.feature[k])
                split_id = len(rules)
                rules[split_id], route = make_rule(
                    self.bins, f, own.left[k], own.present[f], t, depth
                )
                left = route[self.binned[rows, f]]
            else:
                split_id, host_left = goes_left[(decision.owner, j)]
                left = host_left[rows]
            split = Split(decision.owner, split_id, decision.gain)
            next_open.extend(tree.split(node_id, split, rows, left))
        tree.open_nodes = next_open


def _int_bincount(cells: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Exact int64 sums of ``values`` per cell (bincount's float64 is exact below 2**53)."""
    sums = np.bincount(cells.ravel(), weights=np.repeat(values, cells.shape[1]), minlength=size)
    return np.rint(sums).astype(np.int64)
