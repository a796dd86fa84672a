"""SecureBoost (Cheng et al. 2019): lossless federated gradient-boosted trees.

The guest holds the labels and the Paillier key; hosts hold only features. Every party
bins its own columns locally (:class:`~lianmo.models.binning.QuantileBins`). Per tree
(``round`` = tree number; multi-class grows one tree per class per boosting round):

1. guest -> host_k : the rows sampled for this tree (only if ``subsample < 1``), the
                     (g, h) layout, and [[g_i + h_i * 2**s]] per sampled row: both
                     derivatives, fixed point, packed in one plaintext (one encryption)
   then per level, while some node is still open:
2. guest -> host_k : the level's open nodes (id, parent id) and each row's node
3. host_k          : encrypted (g, h) sums per (node, feature, bin), built for the smaller
                     child of each sibling pair only, the other derived as parent - child
                     by ciphertext subtraction; running sums over bins give every
                     candidate split's left-child sums; candidates with an empty bin are
                     dropped (they repeat the previous candidate), the rest shuffled per
                     node, packed many per plaintext and re-randomised
   host_k -> guest : the packed candidate sums and the candidate count per node
4. guest           : decrypts (one decryption per ~18 candidates with a 2048-bit key),
                     computes the gain of its own and every host's candidates (from exact
                     integer sums, see :mod:`lianmo.models.tree`), picks the best per node
   guest -> host_k : (node, candidate number) for the nodes host_k's candidate won
   host_k -> guest : per such node, which of its rows go left, and an opaque feature id;
                     the host keeps feature and threshold and records the split under a
                     split id the guest only knows as (host, id)
   after the last level:
5. guest           : leaf weights from its own plaintext g, h; routes the validation
                     rows through the new tree (:mod:`lianmo.protocols.tree_route`)
6. guest -> host_k : after each boosting round, continue or stop (early stopping on the
                     validation loss); at the end, how many trees the model keeps

Who learns what (semi-honest): hosts see only ciphertexts of g, h, and learn which rows
share each tree node (the instance space, as in SecureBoost), never labels, g, h, leaf
weights or the guest's splits' features; the guest learns per-candidate left sums of
(g, h), which rows go left at host splits, and nothing about host features or thresholds
beyond that. Candidate order is shuffled, so a candidate number says nothing about which
feature it belongs to; opaque feature ids only group a host's splits for importance.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from lianmo.crypto.paillier import (
    CipherVector,
    Packing,
    PrivateKey,
    PublicKey,
    generate_keypair,
)
from lianmo.errors import ProtocolError
from lianmo.models.binning import QuantileBins
from lianmo.models.objectives import Objective
from lianmo.models.tree import (
    GhQuantised,
    Split,
    Tree,
    TreeNode,
    TreeParams,
    best_candidate,
    leaf_weight,
    quantise_gh,
    split_gains,
)
from lianmo.protocols.boost_state import GuestState, HostState
from lianmo.protocols.context import RoleContext
from lianmo.protocols.tree_route import SplitRule, route_guest, route_host
from lianmo.transport.messages import PublicKeyMsg
from lianmo.wire.convert import NO_INDEX, job_public_key
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

PHASE = "train"
CHECKPOINT = "sb/train"
_ROOT = -1


@dataclass(frozen=True, slots=True)
class BoostParams:
    """Hyperparameters every party of the job shares (from the job spec)."""

    rounds: int = 30
    tree: TreeParams = field(default_factory=TreeParams)
    max_bins: int = 32
    subsample: float = 1.0
    colsample: float = 1.0
    early_stopping_rounds: int | None = None
    objective: str = "binary"
    class_weights: tuple[float, ...] | str | None = None
    key_bits: int = 2048
    insecure_test_key: bool = False  # unit tests only: allows keys below 2048 bits


@dataclass
class Timings:
    """Seconds per phase and operation counts on one party (for the benchmark)."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, phase: str, started: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started

    def count(self, what: str, k: int) -> None:
        self.counts[what] = self.counts.get(what, 0) + int(k)


@dataclass
class GuestModel:
    """What the guest keeps: the objective, start scores, trees and its own split rules."""

    objective: Objective
    init_score: np.ndarray
    trees: list[Tree]
    rules: list[SplitRule]
    depth: int

    def raw_scores(self, leaves: np.ndarray) -> np.ndarray:
        """Raw scores from the leaf index of every row in every tree (trees x rows)."""
        F = np.tile(self.init_score, (leaves.shape[1], 1))
        for t, tree in enumerate(self.trees):
            F[:, tree.output] += tree.values(leaves[t])
        return F


@dataclass
class GuestResult:
    model: GuestModel
    train_loss: list[float]
    validation_loss: list[float]
    best_rounds: int
    importance: dict[str, dict[str, float]]
    validation_scores: np.ndarray
    timings: Timings


@dataclass
class HostResult:
    rules: list[SplitRule]
    importance: dict[str, dict[str, float]]
    trees: int
    timings: Timings


RoundCallback = Callable[[int], None]


# ---- guest ---------------------------------------------------------------------------


def train_guest(
    ctx: RoleContext,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    params: BoostParams,
    *,
    feature_names: Sequence[str],
) -> GuestResult:
    """Guest side: grow the trees; returns the model, losses and importance."""
    timings = Timings()
    objective = Objective.for_labels(params.objective, y, where=f"party '{ctx.party}'")
    public, private = generate_keypair(  # from a child stream of the DRBG: same on resuming
        params.key_bits, ctx.rng, insecure_test_size=params.insecure_test_key
    )
    saved = ctx.checkpoints.restore(CHECKPOINT, GuestState)
    if saved is None:
        ctx.broadcast(SB_PUBLIC_KEY, ctx.hosts, public)
        ctx.broadcast(SB_PLAN, ctx.hosts, objective.outputs)
    bins = QuantileBins.fit(X, params.max_bins)
    binned = bins.transform(X)
    weights = objective.row_weights(y, params.class_weights)
    model = GuestModel(objective, objective.init_score(y, weights), [], [], params.tree.depth)
    F = np.tile(model.init_score, (len(y), 1))
    F_val = np.tile(model.init_score, (len(y_val), 1))
    grower = _GuestGrower(ctx, private, binned, bins, params, timings)
    train_loss: list[float] = []
    val_loss: list[float] = []
    best, best_F_val, since_best = 0, F_val.copy(), 0
    start, stopped = 0, False
    if saved is not None:
        model.trees, model.rules = list(saved.trees), list(saved.rules)
        F, F_val, best_F_val = saved.F.copy(), saved.F_val.copy(), saved.best_F_val.copy()
        train_loss, val_loss = list(saved.train_loss), list(saved.val_loss)
        best, since_best = saved.best_rounds, saved.since_best
        grower.host_features = dict(saved.host_features)
        timings.seconds, timings.counts = dict(saved.seconds), dict(saved.counts)
        start, stopped = saved.round + 1, saved.stopped
    total = params.rounds * objective.outputs
    for r in range(start, 0 if stopped else params.rounds):
        g_all, h_all = objective.grad_hess(y, F)
        for k in range(objective.outputs):
            t = r * objective.outputs + k
            g, h = g_all[:, k] * weights, h_all[:, k] * weights
            tree, leaves = grower.grow(t, k, g, h, model.rules)
            model.trees.append(tree)
            F[:, k] += tree.values(leaves)
            val_leaves = route_guest(
                ctx, [tree], model.rules, X_val, depth=params.tree.depth, round=t
            )
            F_val[:, k] += tree.values(val_leaves[0])
            ctx.progress(PHASE, t + 1, total, f"tree {t + 1}/{total}")
        train_loss.append(objective.loss(y, F))
        val_loss.append(objective.loss(y_val, F_val))
        if val_loss[-1] < min(val_loss[:-1], default=np.inf):
            best, best_F_val, since_best = r + 1, F_val.copy(), 0
        else:
            since_best += 1
        stop = r == params.rounds - 1 or (
            params.early_stopping_rounds is not None and since_best >= params.early_stopping_rounds
        )
        ctx.record(
            "round",
            round=r,
            train_loss=round(train_loss[-1], 8),
            validation_loss=round(val_loss[-1], 8),
        )
        ctx.progress(
            PHASE,
            (r + 1) * objective.outputs,
            total,
            f"round {r + 1}: train loss {train_loss[-1]:.5f}, validation loss {val_loss[-1]:.5f}",
        )
        ctx.broadcast(SB_ROUND_END, ctx.hosts, "stop" if stop else "continue", round=r)  # 6.
        state = GuestState(
            round=r,
            stopped=stop,
            trees=tuple(model.trees),
            rules=tuple(model.rules),
            F=F,
            F_val=F_val,
            best_F_val=best_F_val,
            train_loss=tuple(train_loss),
            val_loss=tuple(val_loss),
            best_rounds=int(best),
            since_best=int(since_best),
            host_features=grower.host_features,
            seconds=timings.seconds,
            counts=timings.counts,
        )
        ctx.checkpoints.save(CHECKPOINT, state)
        if stop:
            break
    if params.early_stopping_rounds is None:
        best, best_F_val = len(train_loss), F_val
    kept = best * objective.outputs
    ctx.broadcast(SB_FINAL, ctx.hosts, kept)
    model.trees = model.trees[:kept]
    model.rules = [rule for rule in model.rules if rule.tree < kept]  # a suffix: ids hold
    return GuestResult(
        model=model,
        train_loss=train_loss,
        validation_loss=val_loss,
        best_rounds=best,
        importance=_importance(model, grower.host_features, feature_names, ctx.party),
        validation_scores=objective.predict_proba(best_F_val),
        timings=timings,
    )


class _GuestGrower:
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
        self.n_bins = bins.max_bins
        self.host_features: dict[tuple[str, int], int] = {}  # (host, split id) -> opaque id

    def grow(
        self,
        t: int,
        output: int,
        g: np.ndarray,
        h: np.ndarray,
        rules: list[SplitRule],
    ) -> tuple[Tree, np.ndarray]:
        ctx, p = self.ctx, self.params
        n = len(g)
        sample = _sample_rows(ctx, n, p.subsample, t)
        if p.subsample < 1.0:
            ctx.broadcast(SB_SAMPLE, ctx.hosts, sample, round=t)
        gh = quantise_gh(g[sample], h[sample], len(sample))
        packing = Packing.for_sums((gh.value_bits, gh.value_bits), len(sample))
        started = time.perf_counter()
        packed = packing.pack(np.stack([gh.g, gh.h], axis=1))
        encrypted = self.private.encrypt_ints(packed, 0, ctx.rng, ctx.compute)
        self.timings.add("encrypt", started)
        self.timings.count("encryptions", len(sample))
        ctx.broadcast(SB_GH_LAYOUT, ctx.hosts, gh.value_bits, round=t)
        ctx.broadcast(SB_GH, ctx.hosts, encrypted, round=t)  # 1.
        features = _sample_features(ctx, self.binned.shape[1], p.colsample, t)
        in_sample = np.zeros(n, dtype=bool)
        in_sample[sample] = True
        g_rows = np.zeros(n, dtype=np.int64)
        h_rows = np.zeros(n, dtype=np.int64)
        g_rows[sample], h_rows[sample] = gh.g, gh.h
        nodes: list[TreeNode | None] = [None]
        parents = {0: _ROOT}
        at = np.zeros(n, dtype=np.int64)  # tree node of every training row
        open_nodes = [0]
        for depth in range(p.tree.depth):
            if not open_nodes:  # the tree stopped early: tell the hosts
                ctx.broadcast(SB_NODES, ctx.hosts, [], round=t)
                break
            local = np.full(n, -1, dtype=np.int64)
            for j, node_id in enumerate(open_nodes):
                local[at == node_id] = j
            pairs = [v for node_id in open_nodes for v in (node_id, _wire_parent(parents[node_id]))]
            positions = np.where(local >= 0, local, NO_INDEX)
            for host in ctx.hosts:  # 2.
                ctx.send(SB_NODES, host, pairs, round=t)
                ctx.send(SB_POSITIONS, host, positions, round=t)
            totals = [
                (int(g_rows[local == j].sum()), int(h_rows[local == j].sum()))
                for j in range(len(open_nodes))
            ]
            candidates = self._own_candidates(
                local, len(open_nodes), in_sample, g_rows, h_rows, features
            )
            host_sums = [self._host_candidates(host, t, packing, gh) for host in ctx.hosts]  # 3.
            chosen: dict[str, list[tuple[int, tuple[int, ...]]]] = {h: [] for h in ctx.hosts}
            decisions: list[tuple[str, tuple[int, ...], float] | None] = []
            for j in range(len(open_nodes)):  # 4.
                G, H = gh.scale(np.array(totals[j]))
                options: list[tuple[str, tuple[int, ...], float]] = []
                own_sums, own_keys = candidates[j]
                for owner, (GL, HL), keys in [(ctx.party, own_sums, own_keys)] + [
                    (host, sums[j], list(range(len(sums[j][0]))))
                    for host, sums in zip(ctx.hosts, host_sums, strict=True)
                ]:
                    gains = split_gains(gh.scale(GL), gh.scale(HL), float(G), float(H), p.tree)
                    best = best_candidate(gains)
                    if best is None:
                        continue
                    if owner == ctx.party:  # own candidates are in (feature, bin) order
                        options.append((owner, (keys[best],), float(gains[best])))
                    else:  # shuffled: every tie goes to the host, which takes its lowest
                        tied = tuple(int(c) for c in np.flatnonzero(gains == gains[best]))
                        options.append((owner, tied, float(gains[best])))
                winner = max(options, key=lambda o: o[2], default=None)  # first max: party order
                decisions.append(winner)
                if winner is not None and winner[0] != ctx.party:
                    chosen[winner[0]].append((j, winner[1]))
            for host in ctx.hosts:
                flat = [v for j, tied in chosen[host] for v in (j, len(tied), *tied)]
                ctx.send(SB_SPLITS, host, flat, round=t)
            goes_left = self._host_partitions(t, chosen, local)
            next_open = []
            for j, node_id in enumerate(open_nodes):
                winner = decisions[j]
                rows = np.flatnonzero(local == j)
                G, H = gh.scale(np.array(totals[j]))
                if winner is None:
                    nodes[node_id] = TreeNode(value=leaf_weight(float(G), float(H), p.tree))
                    continue
                owner, tied, gain = winner
                if owner == ctx.party:
                    f, b = divmod(tied[0], self.n_bins)
                    split_id = len(rules)
                    rules.append(SplitRule(f, self.bins.threshold(f, b), t))
                    left = self.binned[rows, f] <= b
                else:
                    split_id, left = goes_left[(owner, j)]
                    left = left[rows]
                left_id, right_id = len(nodes), len(nodes) + 1
                nodes[node_id] = TreeNode(Split(owner, split_id, gain), left_id, right_id)
                nodes.extend([None, None])
                parents[left_id] = parents[right_id] = node_id
                at[rows[left]] = left_id
                at[rows[~left]] = right_id
                next_open.extend([left_id, right_id])
            ctx.record(
                "level",
                tree=t,
                level=depth,
                splits=";".join("leaf" if d is None else f"{d[0]}:{d[2]:.6g}" for d in decisions),
            )
            open_nodes = next_open
        for node_id in open_nodes:
            mask = (at == node_id) & in_sample
            G = gh.scale(np.array(int(g_rows[mask].sum())))
            H = gh.scale(np.array(int(h_rows[mask].sum())))
            nodes[node_id] = TreeNode(value=leaf_weight(float(G), float(H), p.tree))
        if any(n is None for n in nodes):
            raise ProtocolError("internal error: a tree node was left undefined")
        tree = Tree(output=output, nodes=tuple(n for n in nodes if n is not None))
        return tree, at

    def _own_candidates(
        self,
        local: np.ndarray,
        n_open: int,
        in_sample: np.ndarray,
        g_rows: np.ndarray,
        h_rows: np.ndarray,
        features: np.ndarray,
    ) -> list[tuple[tuple[np.ndarray, np.ndarray], list[int]]]:
        """Per open node: left sums (G_L, H_L) of every own candidate and its key f*B+b."""
        nb, F = self.n_bins, self.binned.shape[1]
        rows = np.flatnonzero((local >= 0) & in_sample)
        cells = (local[rows, None] * F + np.arange(F)) * nb + self.binned[rows].astype(np.int64)
        size = n_open * F * nb
        gsum = _int_bincount(cells, g_rows[rows], size).reshape(n_open, F, nb).cumsum(axis=2)
        hsum = _int_bincount(cells, h_rows[rows], size).reshape(n_open, F, nb).cumsum(axis=2)
        keys = [f * nb + b for f in features for b in range(self.bins.n_bins(f) - 1)]
        f_idx = np.array([k // nb for k in keys], dtype=np.int64)
        b_idx = np.array([k % nb for k in keys], dtype=np.int64)
        return [((gsum[j, f_idx, b_idx], hsum[j, f_idx, b_idx]), keys) for j in range(n_open)]

    def _host_candidates(
        self, host: str, t: int, packing: Packing, gh: GhQuantised
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        ctx = self.ctx
        counts = ctx.recv(SB_CANDIDATES, host, round=t)
        total = int(counts.sum())
        cv = ctx.recv(SB_HISTOGRAMS, host, round=t, key=self.private.public_key)
        started = time.perf_counter()
        try:
            sums = self.private.decrypt_packed(cv, packing, total, ctx.compute)
        except Exception as exc:  # a wrong count or overflowing slot
            raise ProtocolError(f"host '{host}' sent histograms that do not unpack: {exc}") from exc
        self.timings.add("decrypt", started)
        self.timings.count("decryptions", len(cv))
        self.timings.count("candidates", total)
        out = []
        start = 0
        for c in counts:
            out.append((sums[start : start + c, 0], sums[start : start + c, 1]))
            start += int(c)
        return out

    def _host_partitions(
        self,
        t: int,
        chosen: dict[str, list[tuple[int, tuple[int, ...]]]],
        local: np.ndarray,
    ) -> dict[tuple[str, int], tuple[int, np.ndarray]]:
        ctx = self.ctx
        n = len(local)
        out: dict[tuple[str, int], tuple[int, np.ndarray]] = {}
        for host in ctx.hosts:
            items = chosen[host]
            ids = ctx.recv(SB_SPLIT_IDS, host, round=t, count=2 * len(items))
            left = ctx.recv(SB_PARTITIONS, host, round=t, count=len(items), cols=n)
            for i, (j, _) in enumerate(items):
                if (left[i] & (local != j)).any():
                    raise ProtocolError(
                        f"host '{host}' sent a partition with rows outside the node"
                    )
                out[(host, j)] = (int(ids[2 * i]), left[i])
                self.host_features[(host, int(ids[2 * i]))] = int(ids[2 * i + 1])
        return out


# ---- host ----------------------------------------------------------------------------


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
        saved = HostState(-1, False, (), ctx.recv(SB_PLAN, ctx.guest), key.n_bytes(), {}, {})
    outputs = saved.outputs
    bins = QuantileBins.fit(X, params.max_bins)
    binned = bins.transform(X)
    opaque = _opaque_feature_ids(ctx, X.shape[1])
    rules = list(saved.rules)
    timings.seconds, timings.counts = dict(saved.seconds), dict(saved.counts)
    total = params.rounds * outputs
    for r in range(saved.round + 1, 0 if saved.stopped else params.rounds):
        for k in range(outputs):
            t = r * outputs + k
            _HostTree(ctx, key, binned, bins, params, t, opaque, timings).grow(rules)
            route_host(ctx, rules, X_val, depth=params.tree.depth, round=t)
            ctx.progress(PHASE, t + 1, total, f"tree {t + 1}/{total}")
        decision = ctx.recv(SB_ROUND_END, ctx.guest, round=r)
        state = HostState(
            r,
            decision == "stop",
            tuple(rules),
            outputs,
            key.n_bytes(),
            timings.seconds,
            timings.counts,
        )
        ctx.checkpoints.save(CHECKPOINT, state)
        if decision == "stop":
            break
    kept = ctx.recv(SB_FINAL, ctx.guest)
    rules = [rule for rule in rules if rule.tree < kept]
    counts: dict[str, dict[str, float]] = {}
    for rule in rules:
        _add_importance(counts, str(rule.feature), None)
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
        opaque: np.ndarray,
        timings: Timings,
    ) -> None:
        self.ctx, self.key, self.params, self.t = ctx, key, params, t
        self.binned, self.bins, self.opaque, self.timings = binned, bins, opaque, timings

    def grow(self, rules: list[SplitRule]) -> None:
        ctx, t, n = self.ctx, self.t, self.binned.shape[0]
        guest = ctx.guest
        if self.params.subsample < 1.0:
            sample = ctx.recv(SB_SAMPLE, guest, round=t, below=n)
        else:
            sample = np.arange(n)
        value_bits = ctx.recv(SB_GH_LAYOUT, guest, round=t)
        packing = Packing.for_sums((value_bits, value_bits), max(len(sample), 1))
        gh = ctx.recv(SB_GH, guest, round=t, key=self.key, count=len(sample))
        features = _sample_features(ctx, self.binned.shape[1], self.params.colsample, t)
        B = self.binned[np.ix_(sample, features)]
        nb = max((self.bins.n_bins(f) for f in features), default=1)
        F = len(features)
        previous: dict[int, CipherVector] = {}
        for _depth in range(self.params.tree.depth):
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
            cells, counts, offered = self._candidates(hist, B, at, m, nb, F, t)
            packed = cells.pack(packing, ctx.compute).obfuscate(ctx.rng, ctx.compute)
            self.timings.add("histogram", started)
            ctx.send(SB_CANDIDATES, guest, counts, round=t)
            ctx.send(SB_HISTOGRAMS, guest, packed, round=t)  # 3.
            chosen = ctx.recv(SB_SPLITS, guest, round=t)
            ids, lefts = [], []
            for j, tied in _parse_choices(chosen, guest, offered):
                # ties in gain: the lowest (feature, bin), as if candidates were unshuffled
                f_local, b = min(offered[j][c] for c in tied)
                f_local, b = self._canonical(B, at, j, f_local, b)
                f = int(features[f_local])
                ids.extend([len(rules), int(self.opaque[f])])
                rules.append(SplitRule(f, self.bins.threshold(f, b), t))
                lefts.append((local == j) & (self.binned[:, f] <= b))
            ctx.send(SB_SPLIT_IDS, guest, ids, round=t)
            ctx.send(SB_PARTITIONS, guest, np.array(lefts).reshape(len(lefts), n), round=t)
            previous = {int(node_ids[j]): hist[j] for j in range(m)}

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
        m: int,
        nb: int,
        F: int,
        t: int,
    ) -> tuple[CipherVector, list[int], list[list[tuple[int, int]]]]:
        """Shuffled candidate left sums per node: (cells, count per node, (f, b) per number)."""
        picks: list[int] = []
        counts: list[int] = []
        offered: list[list[tuple[int, int]]] = []
        for j in range(m):
            rows = at == j
            candidates = []
            for f in range(F):
                count = np.bincount(B[rows, f], minlength=nb)
                right = np.cumsum(count[::-1])[::-1]  # rows in bins >= b
                for b in range(nb - 1):
                    if count[b] > 0 and right[b + 1] > 0:
                        candidates.append((f, b))
            order = _permutation(self.ctx, len(candidates), f"sb/candidates/{t}/{j}/{len(picks)}")
            shuffled = [candidates[i] for i in order]
            offered.append(shuffled)
            counts.append(len(shuffled))
            picks.extend(j * F * nb + f * nb + b for f, b in shuffled)
        running = CipherVector.concat(hist).prefix_sums(nb) if hist else None
        if running is None or not picks:
            cells = CipherVector(self.key, 0, [])
        else:
            cells = running.select(picks)
        return cells, counts, offered

    @staticmethod
    def _canonical(B: np.ndarray, at: np.ndarray, j: int, f: int, b: int) -> tuple[int, int]:
        """The lowest (feature, bin) splitting node ``j``'s sampled rows exactly like (f, b)."""
        rows = np.flatnonzero(at == j)
        left = B[rows, f] <= b
        for f2 in range(B.shape[1]):
            lo = int(B[rows[left], f2].max())
            hi = int(B[rows[~left], f2].min())
            if lo < hi and np.array_equal(B[rows, f2] <= lo, left):
                return f2, lo
        return f, b


# ---- helpers ---------------------------------------------------------------------------


def _parse_choices(
    flat: np.ndarray, guest: str, offered: list[list[tuple[int, int]]]
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
    if saved is None:
        key = ctx.recv(
            SB_PUBLIC_KEY,
            ctx.guest,
            key_bits=params.key_bits,
            insecure_test_key=params.insecure_test_key,
        )
        key.prepare_obfuscation(ctx.rng)
        return key
    msg = PublicKeyMsg(n=saved.key)
    return job_public_key(
        msg,
        ctx.guest,
        ctx.rng,
        key_bits=params.key_bits,
        insecure_test_key=params.insecure_test_key,
    )


def _numpy_rng(ctx: RoleContext, label: str) -> np.random.Generator:
    """A numpy generator seeded from this party's job DRBG (replayable)."""
    return np.random.default_rng(int.from_bytes(ctx.rng.child(label).random_bytes(32), "big"))


def _permutation(ctx: RoleContext, n: int, label: str) -> np.ndarray:
    return _numpy_rng(ctx, label).permutation(n)


def _sample_rows(ctx: RoleContext, n: int, share: float, t: int) -> np.ndarray:
    if share >= 1.0:
        return np.arange(n)
    size = max(1, int(round(share * n)))
    return np.sort(_numpy_rng(ctx, f"sb/rows/{t}").choice(n, size=size, replace=False))


def _sample_features(ctx: RoleContext, n: int, share: float, t: int) -> np.ndarray:
    if share >= 1.0 or n == 0:
        return np.arange(n)
    size = max(1, int(round(share * n)))
    return np.sort(_numpy_rng(ctx, f"sb/features/{t}").choice(n, size=size, replace=False))


def _opaque_feature_ids(ctx: RoleContext, n: int) -> np.ndarray:
    return _permutation(ctx, n, "sb/opaque-features")


def _wire_parent(parent: int) -> int:
    return NO_INDEX if parent == _ROOT else parent


def _int_bincount(cells: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Exact int64 sums of ``values`` per cell (bincount's float64 is exact below 2**53)."""
    sums = np.bincount(cells.ravel(), weights=np.repeat(values, cells.shape[1]), minlength=size)
    return np.rint(sums).astype(np.int64)


def _add_importance(table: dict[str, dict[str, float]], key: str, gain: float | None) -> None:
    entry = table.setdefault(key, {"splits": 0.0, "gain": 0.0})
    entry["splits"] += 1
    if gain is not None:
        entry["gain"] += gain


def _importance(
    model: GuestModel,
    host_features: dict[tuple[str, int], int],
    names: Sequence[str],
    party: str,
) -> dict[str, dict[str, float]]:
    """Split count and total gain per feature over the kept trees.

    The guest's own features appear by name; a host's as ``host#id`` with an opaque id.
    """
    out: dict[str, dict[str, float]] = {}
    for tree in model.trees:
        for node in tree.nodes:
            if node.split is None:
                continue
            if node.split.owner == party:
                key = names[model.rules[node.split.split_id].feature]
            else:
                opaque = host_features[(node.split.owner, node.split.split_id)]
                key = f"{node.split.owner}#{opaque}"
            _add_importance(out, key, node.split.gain)
    return out
