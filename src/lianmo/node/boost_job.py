"""A data party's SecureBoost job: train or score (the protocol checkpoints each round).

Same phases as logistic regression (load, align, split, train, evaluate, commit, export);
trees need no scaling, so raw columns go straight to binning.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from lianmo.config import BoostSpec, JobSpec
from lianmo.data.table import Table
from lianmo.errors import ConfigError, DataError
from lianmo.models.evaluation import Evaluation
from lianmo.models.objectives import Objective
from lianmo.models.tree import TreeParams
from lianmo.node.boost_share import BoostShare
from lianmo.node.confusion import SCORED_FILE, VALIDATION_FILE, write_confusion
from lianmo.node.data_use import JobDataset
from lianmo.node.job_data import (
    IdList,
    JobOutcome,
    align_rows,
    aligned_table,
    check_split,
    decimals,
    evaluation,
    labels,
    load,
    load_for_scoring,
    model_path,
    split_rows,
    write_class_probabilities,
    write_id_csv,
)
from lianmo.node.kind import JobKind
from lianmo.protocols import commit, secureboost
from lianmo.protocols.context import RoleContext
from lianmo.protocols.tree_route import route_guest, route_host
from lianmo.wire.steps import PREDICT_SB

ROUTE_ROWS = 1 << 17  # aligned rows routed per block when scoring (bounds memory and messages)


def boost_params(model: BoostSpec) -> secureboost.BoostParams:
    """The protocol's parameters from the job spec's model section."""
    return secureboost.BoostParams(
        rounds=model.trees,
        tree=TreeParams(
            depth=model.depth,
            learning_rate=model.learning_rate,
            l2=model.l2,
            gamma=model.gamma,
            min_child_weight=model.min_child_weight,
        ),
        max_bins=model.max_bins,
        subsample=model.subsample,
        colsample=model.colsample,
        early_stopping_rounds=model.early_stopping_rounds,
        objective=model.objective,
        class_weights=model.class_weights,
        key_bits=model.key_bits,
    )


def witness(ctx: RoleContext, spec: JobSpec, outcome: JobOutcome) -> None:
    """SecureBoost needs no third party: an arbiter in the job only witnesses the end."""
    commit.await_commit(ctx)


def train(
    ctx: RoleContext, spec: JobSpec, dataset: JobDataset, job_dir: Path, outcome: JobOutcome
) -> None:
    """Train this party's side of a SecureBoost model and keep its share."""
    model = spec.model
    if not isinstance(model, BoostSpec):
        raise ConfigError(f"job '{spec.job_id}' is not a SecureBoost job")
    role = outcome.role
    with outcome.timed("load"):
        table = load(
            ctx, role, dataset, training=True, task=model.objective, job_party=spec.party(ctx.party)
        )
    aligned = aligned_table(ctx, role, spec, table, dataset, outcome)
    train_rows, val = split_rows(ctx, role, spec, aligned)
    if role == "guest" and model.objective != "regression":
        check_split(ctx.party, labels(train_rows), labels(val))
    elif len(train_rows) == 0 or len(val) == 0:
        raise DataError(
            f"party '{ctx.party}': {len(train_rows)} training and {len(val)} validation rows; "
            "change validation.share or use a larger intersection"
        )
    outcome.summary.aligned = len(aligned)
    outcome.summary.train_rows, outcome.summary.validation_rows = len(train_rows), len(val)
    share = BoostShare(
        job_id=spec.job_id,
        party=ctx.party,
        role=role,
        dataset=dataset.name,
        feature_names=table.feature_names,
        depth=model.depth,
        rules={},
        categories={n: tuple(c) for n, c in table.categories.items()},
    )
    if role == "guest":
        final = _train_guest(ctx, boost_params(model), train_rows, val, share, job_dir, outcome)
    else:
        final = _train_host(ctx, boost_params(model), train_rows, val, share, outcome)
    outcome.summary.model_digest = final.write(job_dir)


def _train_guest(
    ctx: RoleContext,
    params: secureboost.BoostParams,
    train_rows: Table,
    val: Table,
    share: BoostShare,
    job_dir: Path,
    outcome: JobOutcome,
) -> BoostShare:
    """The guest grows the trees, evaluates on its validation rows and commits the job."""
    with outcome.timed("train"):
        result = secureboost.train_guest(
            ctx,
            train_rows.X,
            labels(train_rows),
            val.X,
            labels(val),
            params,
            feature_names=share.feature_names,
            categories=category_counts(share),
        )
    _timings(outcome, result.timings)
    with outcome.timed("evaluate"):
        objective = result.model.objective
        summary = outcome.summary
        summary.validation = metrics(objective, labels(val), result.validation_scores)
        summary.losses = tuple(round(v, 6) for v in result.train_loss)
        summary.validation_loss = tuple(round(v, 6) for v in result.validation_loss)
        summary.trees, summary.best_rounds = len(result.model.trees), result.best_rounds
        write_predictions(
            job_dir / "validation_scores.csv", val.ids, objective, result.validation_scores
        )
        write_confusion(job_dir / VALIDATION_FILE, summary.validation)
        commit.announce_commit(ctx)
    return replace(
        share,
        rules=dict(result.model.rules),
        importance=result.importance,
        **_guest_fields(result.model),  # type: ignore[arg-type]
    )


def _train_host(
    ctx: RoleContext,
    params: secureboost.BoostParams,
    train_rows: Table,
    val: Table,
    share: BoostShare,
    outcome: JobOutcome,
) -> BoostShare:
    """A host answers the guest's requests; keeps its own split rules once committed."""
    with outcome.timed("train"):
        host = secureboost.train_host(
            ctx, train_rows.X, val.X, params, categories=category_counts(share)
        )
    _timings(outcome, host.timings)
    with outcome.timed("evaluate"):
        commit.await_commit(ctx)
    names = {str(i): name for i, name in enumerate(share.feature_names)}
    importance = {names[k]: v for k, v in host.importance.items()}
    return replace(share, rules=dict(host.rules), importance=importance)


def category_counts(share: BoostShare) -> list[int | None]:
    """Per feature: its number of training categories, None for a numeric column."""
    return [
        len(share.categories[name]) if name in share.categories else None
        for name in share.feature_names
    ]


def _timings(outcome: JobOutcome, timings: secureboost.Timings) -> None:
    outcome.summary.protocol_seconds = {k: round(v, 3) for k, v in timings.seconds.items()}
    outcome.summary.protocol_counts = dict(timings.counts)


def predict(
    ctx: RoleContext, spec: JobSpec, dataset: JobDataset, job_dir: Path, outcome: JobOutcome
) -> None:
    """Score aligned rows with a stored SecureBoost share; the guest writes the scores.

    The aligned rows' model features go to a file in the job folder (deleted after) and
    are routed ``ROUTE_ROWS`` at a time, so no party holds all of them in memory.
    """
    role = outcome.role
    path = model_path(job_dir, spec)
    share = BoostShare.load(path, party=ctx.party, role=role)
    with outcome.timed("load"):
        table = load_for_scoring(ctx, role, dataset, share)
    with outcome.timed("align"):
        rows = align_rows(ctx, role, spec, table, dataset)
    spill = job_dir / ".features.f64"
    try:
        with outcome.timed("read"):
            X = table.spill_rows(rows, spill)
        with outcome.timed("predict"):
            blocks = route_blocks(len(rows))
            if role == "guest":
                model = share.guest_model()
                parts = []
                for b, (lo, hi) in enumerate(blocks):
                    leaves = route_guest(
                        ctx,
                        model.trees,
                        model.rules,
                        np.asarray(X[lo:hi]),
                        depth=share.depth,
                        round=b,
                        steps=PREDICT_SB,
                    )
                    parts.append(model.objective.predict_proba(model.raw_scores(leaves)))
                    ctx.progress("predict", b + 1, len(blocks), f"{hi} of {len(rows)} rows scored")
                scores = np.concatenate(parts)
                write_predictions(job_dir / "scores.csv", table.ids[rows], model.objective, scores)
                outcome.summary.scored = len(rows)
                if table.y is not None:
                    try:
                        outcome.summary.metrics = metrics(model.objective, table.y[rows], scores)
                        write_confusion(job_dir / SCORED_FILE, outcome.summary.metrics)
                    except DataError:
                        pass  # labels that do not suit the objective: scores only
            else:
                for b, (lo, hi) in enumerate(blocks):
                    route_host(
                        ctx,
                        share.rules,
                        np.asarray(X[lo:hi]),
                        depth=share.depth,
                        round=b,
                        steps=PREDICT_SB,
                    )
    finally:
        spill.unlink(missing_ok=True)
    outcome.summary.aligned = len(rows)


def route_blocks(n: int) -> list[tuple[int, int]]:
    """The blocks of aligned rows routed together: ``ROUTE_ROWS`` each, the last shorter.

    Every party derives them from the aligned count alone; block ``b`` travels as round
    ``b``, so a job of at most ``ROUTE_ROWS`` rows sends what one whole routing sent.
    """
    return [(lo, min(lo + ROUTE_ROWS, n)) for lo in range(0, n, ROUTE_ROWS)] or [(0, 0)]


def _guest_fields(model: secureboost.GuestModel) -> dict[str, object]:
    return {
        "objective": model.objective.name,
        "n_classes": model.objective.n_classes,
        "init_score": tuple(float(v) for v in model.init_score),
        "trees": tuple(model.trees),
    }


def metrics(objective: Objective, y: np.ndarray, scores: np.ndarray) -> Evaluation:
    """Validation metrics suited to the objective."""
    return evaluation(objective.name, y, scores, objective.n_classes)


def write_predictions(path: Path, ids: IdList, objective: Objective, scores: np.ndarray) -> None:
    """id plus score (binary), prediction (regression) or class probabilities and class."""
    if objective.name == "multiclass":
        write_class_probabilities(path, ids, scores)
        return
    header = ["id", "score" if objective.name == "binary" else "prediction"]
    write_id_csv(path, header, ids, scores, decimals)


KIND = JobKind("secureboost", BoostShare, train=train, predict=predict, witness=witness)
