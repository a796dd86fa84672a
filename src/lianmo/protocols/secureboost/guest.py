"""The guest's SecureBoost: the boosting round loop, early stopping, the model it keeps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lianmo.crypto.paillier import generate_keypair
from lianmo.models.binning import QuantileBins
from lianmo.models.objectives import Objective
from lianmo.protocols.context import RoleContext
from lianmo.protocols.secureboost.grower import GuestGrower
from lianmo.protocols.secureboost.params import (
    CHECKPOINT,
    PHASE,
    BoostParams,
    GuestModel,
    GuestResult,
    Timings,
    add_importance,
)
from lianmo.protocols.secureboost.state import GuestState
from lianmo.protocols.tree_route import route_guest
from lianmo.wire.steps import SB_FINAL, SB_PLAN, SB_PUBLIC_KEY, SB_ROUND_END


@dataclass
class _Progress:
    """Scores and losses so far, and the best round for early stopping."""

    F: np.ndarray  # raw scores of the training rows (rows x outputs)
    F_val: np.ndarray
    best_F_val: np.ndarray
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best: int = 0
    since_best: int = 0

    def close_round(
        self, r: int, objective: Objective, y: np.ndarray, y_val: np.ndarray, p: BoostParams
    ) -> bool:
        """Losses after round ``r``; whether training stops here."""
        self.train_loss.append(objective.loss(y, self.F))
        self.val_loss.append(objective.loss(y_val, self.F_val))
        if self.val_loss[-1] < min(self.val_loss[:-1], default=np.inf):
            self.best, self.best_F_val, self.since_best = r + 1, self.F_val.copy(), 0
        else:
            self.since_best += 1
        patience = p.early_stopping_rounds
        return r == p.rounds - 1 or (patience is not None and self.since_best >= patience)


def train_guest(
    ctx: RoleContext,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    params: BoostParams,
    *,
    feature_names: Sequence[str],
    categories: Sequence[int | None] | None = None,
) -> GuestResult:
    """Guest side: grow the trees; returns the model, losses and importance.

    ``categories[f]``: the training category count of a categorical column, None for a
    numeric one (all numeric if omitted); NaN cells are missing.
    """
    timings = Timings()
    objective = Objective.for_labels(params.objective, y, where=f"party '{ctx.party}'")
    public, private = generate_keypair(  # from a child stream of the DRBG: same on resuming
        params.key_bits, ctx.rng, insecure_test_size=params.insecure_test_key
    )
    saved = ctx.checkpoints.restore(CHECKPOINT, GuestState)
    if saved is None:
        ctx.broadcast(SB_PUBLIC_KEY, ctx.hosts, public)
        ctx.broadcast(SB_PLAN, ctx.hosts, objective.outputs)
    bins = QuantileBins.fit(X, params.max_bins, categories)
    weights = objective.row_weights(y, params.class_weights)
    model = GuestModel(objective, objective.init_score(y, weights), [], {}, params.tree.depth)
    grower = GuestGrower(ctx, private, bins.transform(X), bins, params, timings)
    F_val = np.tile(model.init_score, (len(y_val), 1))
    run = _Progress(np.tile(model.init_score, (len(y), 1)), F_val, F_val.copy())
    start, stopped = 0, False
    if saved is not None:
        model.trees, model.rules = list(saved.trees), dict(saved.rules)
        run = _Progress(
            saved.F.copy(),
            saved.F_val.copy(),
            saved.best_F_val.copy(),
            list(saved.train_loss),
            list(saved.val_loss),
            saved.best_rounds,
            saved.since_best,
        )
        timings.seconds, timings.counts = dict(saved.seconds), dict(saved.counts)
        start, stopped = saved.round + 1, saved.stopped
    for r in range(start, 0 if stopped else params.rounds):
        _boosting_round(ctx, r, grower, model, run, y, weights, X_val, params)
        stop = run.close_round(r, objective, y, y_val, params)
        _report_round(ctx, r, run, params.rounds * objective.outputs, objective.outputs)
        ctx.broadcast(SB_ROUND_END, ctx.hosts, "stop" if stop else "continue", round=r)  # 6.
        ctx.checkpoints.save(CHECKPOINT, _state(r, stop, model, run, timings))
        if stop:
            break
    return _finish(ctx, model, run, params, feature_names, timings)


def _boosting_round(
    ctx: RoleContext,
    r: int,
    grower: GuestGrower,
    model: GuestModel,
    run: _Progress,
    y: np.ndarray,
    weights: np.ndarray,
    X_val: np.ndarray,
    params: BoostParams,
) -> None:
    """One tree per output (class) from this round's gradients; steps 1-5 per tree."""
    objective = model.objective
    g_all, h_all = objective.grad_hess(y, run.F)
    total = params.rounds * objective.outputs
    for k in range(objective.outputs):
        t = r * objective.outputs + k
        g, h = g_all[:, k] * weights, h_all[:, k] * weights
        tree, leaves = grower.grow(t, k, g, h, model.rules)
        model.trees.append(tree)
        run.F[:, k] += tree.values(leaves)
        val_leaves = route_guest(ctx, [tree], model.rules, X_val, depth=params.tree.depth, round=t)
        run.F_val[:, k] += tree.values(val_leaves[0])
        ctx.progress(PHASE, t + 1, total, f"tree {t + 1}/{total}")


def _report_round(ctx: RoleContext, r: int, run: _Progress, total: int, outputs: int) -> None:
    ctx.record(
        "round",
        round=r,
        train_loss=round(run.train_loss[-1], 8),
        validation_loss=round(run.val_loss[-1], 8),
    )
    ctx.progress(
        PHASE,
        (r + 1) * outputs,
        total,
        f"round {r + 1}: train loss {run.train_loss[-1]:.5f}, "
        f"validation loss {run.val_loss[-1]:.5f}",
    )


def _state(r: int, stop: bool, model: GuestModel, run: _Progress, timings: Timings) -> GuestState:
    return GuestState(
        round=r,
        stopped=stop,
        trees=tuple(model.trees),
        rules=dict(model.rules),
        F=run.F,
        F_val=run.F_val,
        best_F_val=run.best_F_val,
        train_loss=tuple(run.train_loss),
        val_loss=tuple(run.val_loss),
        best_rounds=int(run.best),
        since_best=int(run.since_best),
        seconds=timings.seconds,
        counts=timings.counts,
    )


def _finish(
    ctx: RoleContext,
    model: GuestModel,
    run: _Progress,
    params: BoostParams,
    feature_names: Sequence[str],
    timings: Timings,
) -> GuestResult:
    """Keep the trees up to the best round (all without early stopping) and tell the hosts."""
    best, best_F_val = run.best, run.best_F_val
    if params.early_stopping_rounds is None:
        best, best_F_val = len(run.train_loss), run.F_val
    kept = best * model.objective.outputs
    ctx.broadcast(SB_FINAL, ctx.hosts, kept)
    model.trees = model.trees[:kept]
    model.rules = {i: rule for i, rule in model.rules.items() if rule.tree < kept}
    return GuestResult(
        model=model,
        train_loss=run.train_loss,
        validation_loss=run.val_loss,
        best_rounds=best,
        importance=_importance(model, feature_names, ctx.party),
        validation_scores=model.objective.predict_proba(best_F_val),
        timings=timings,
    )


def _importance(model: GuestModel, names: Sequence[str], party: str) -> dict[str, dict[str, float]]:
    """Split count and total gain per feature over the kept trees.

    The guest's own features appear by name; a host's splits together as ``host:<name>``
    (the guest cannot tell which of them share a feature; the host's share counts its
    own splits per feature).
    """
    out: dict[str, dict[str, float]] = {}
    for tree in model.trees:
        for node in tree.nodes:
            if node.split is None:
                continue
            if node.split.owner == party:
                key = names[model.rules[node.split.split_id].feature]
            else:
                key = f"host:{node.split.owner}"
            add_importance(out, key, node.split.gain)
    return out
