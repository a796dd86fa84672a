"""Hetero LR jobs at a node: train (data parties), key holder (arbiter), score.

The protocol is :mod:`lianmo.protocols.hetero_lr` when the job lists an arbiter (it holds
the key), :mod:`lianmo.protocols.two_party_lr` when it does not (a guest and one host,
each with its own key); :func:`train_weights` picks. This module adds what a job around
it needs: loading and aligning the table, the validation split, evaluation, encoding
(:mod:`lianmo.models.encoding`: categories one-hot, missing cells imputed), clipping each
encoded column at training quantiles (``model.clip``) and standardising, all fitted on
the party's own training rows; the model share (own encoding, clipping bounds, scaler
and weights) and scoring with a stored share, which reads the scoring table with the
share's categories.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lianmo.config import JobSpec, LrSpec, ScorecardSpec
from lianmo.errors import ConfigError
from lianmo.models.encoding import DEFAULT_MIN_ROWS, ImputeOneHot
from lianmo.models.scaler import QuantileClipper, Standardizer
from lianmo.node.confusion import SCORED_FILE, VALIDATION_FILE, write_confusion
from lianmo.node.data_use import JobDataset
from lianmo.node.job_data import (
    IdList,
    JobOutcome,
    align_rows,
    aligned_table,
    check_split,
    evaluation,
    labels,
    load,
    load_for_scoring,
    model_path,
    split_rows,
    write_class_probabilities,
    write_scores,
)
from lianmo.node.kind import JobKind
from lianmo.node.model_share import LrShare, share_format
from lianmo.protocols import commit, hetero_lr, one_vs_rest, predict, two_party_lr
from lianmo.protocols.context import RoleContext
from lianmo.protocols.lr_guard import BATCH_FACTOR
from lianmo.wire.steps import PREDICT_VALIDATION


def _model(spec: JobSpec) -> LrSpec:
    if not isinstance(spec.model, LrSpec):
        raise ConfigError(f"job '{spec.job_id}' is not a hetero LR job")
    return spec.model


def witness(ctx: RoleContext, spec: JobSpec, outcome: JobOutcome) -> None:
    """The arbiter holds the key: decrypts masked gradients and losses, decides the stop."""
    model = _model(spec)
    arbiter_job(ctx, lr_params(model, spec.seed), outcome, model.objective == "multiclass")


def train(
    ctx: RoleContext, spec: JobSpec, dataset: JobDataset, job_dir: Path, outcome: JobOutcome
) -> None:
    """A data party's side of training; keeps its share of the model."""
    _train_job(ctx, spec, dataset, job_dir, outcome, lr_params(_model(spec), spec.seed))


def arbiter_job(
    ctx: RoleContext, params: hetero_lr.LrParams, outcome: JobOutcome, multiclass: bool = False
) -> None:
    """The key holder's side of coordinated LR (plain LR, one-vs-rest, or a scorecard's
    WOE-LR)."""
    with outcome.timed("train"):
        if multiclass:
            result = one_vs_rest.train_arbiter(ctx, params)
        else:
            result = hetero_lr.train_arbiter(ctx, params)
        commit.await_commit(ctx)
    summary = outcome.summary
    summary.losses, summary.rounds = tuple(result.losses), result.rounds
    summary.round_losses = tuple(round(v, 6) for v in result.round_losses)
    summary.epoch_seconds = tuple(result.epoch_seconds)


def train_weights(
    ctx: RoleContext,
    outcome: JobOutcome,
    X: np.ndarray,
    y: np.ndarray | None,
    params: hetero_lr.LrParams,
    multiclass: bool = False,
) -> np.ndarray:
    """A data party's side of LR training on its standardised ``X`` (the guest's labels
    ``y`` given, its bias column added here): coordinated when the job has an arbiter,
    two-party otherwise. ``y`` is 0/1, or for ``multiclass`` one 0/1 column per class
    (one-vs-rest). Returns the party's weights (the guest's end with the bias), one
    column per class for ``multiclass``.

    In a two-party job the guest learns the loss (the arbiter's part elsewhere) and
    each party times its one-off setup (``protocol_seconds``).
    """
    if y is not None:
        X = _with_bias(X)
    if ctx.arbiter is not None:
        if multiclass:
            if y is None:
                return one_vs_rest.train_host(ctx, X, params)
            return one_vs_rest.train_guest(ctx, X, y, params)
        if y is None:
            return hetero_lr.train_host(ctx, X, params)
        return hetero_lr.train_guest(ctx, X, y, params)
    if y is None:
        run = two_party_lr.train_host(ctx, X, params)
    else:
        run = two_party_lr.train_guest(ctx, X, y, params)
        summary = outcome.summary
        summary.losses, summary.rounds = run.losses, run.rounds
        summary.epoch_seconds = run.epoch_seconds
    outcome.summary.protocol_seconds = {"setup": run.setup_seconds}
    return run.weights


def lr_params(m: LrSpec | ScorecardSpec, seed: int) -> hetero_lr.LrParams:
    """The coordinated LR's parameters from a job's model section (a scorecard's WOE-LR
    has the same keys, without label protection)."""
    protection = m.label_protection if isinstance(m, LrSpec) else None
    return hetero_lr.LrParams(
        epochs=m.epochs,
        batch_size=m.batch_size,
        learning_rate=m.learning_rate,
        lr_decay=m.lr_decay,
        l2=m.l2,
        tol=m.tol,
        key_bits=m.key_bits,
        seed=seed,
        label_protection=(None if protection is None else (protection.epsilon, protection.delta)),
        optimizer=m.optimizer,
    )


def _train_job(
    ctx: RoleContext,
    spec: JobSpec,
    dataset: JobDataset,
    job_dir: Path,
    outcome: JobOutcome,
    params: hetero_lr.LrParams,
) -> None:
    role = outcome.role
    task = _model(spec).objective
    with outcome.timed("load"):
        table = load(ctx, role, dataset, training=True, job_party=spec.party(ctx.party), task=task)
    aligned = aligned_table(ctx, role, spec, table, dataset, outcome)
    train, val = split_rows(ctx, role, spec, aligned)
    classes = 2
    if role == "guest":
        check_split(ctx.party, labels(train), labels(val))
        if task == "multiclass":
            classes = int(labels(aligned).max()) + 1
    # fitted on this party's training rows only; never sent (only its width is, as the
    # coordinate count every data party announces)
    encoder = ImputeOneHot.fit(
        train.X, train.feature_names, train.categories, min_rows=level_rows(len(train), params)
    )
    encoded_train = encoder.transform(train.X)
    clip_share = _model(spec).clip
    clip = QuantileClipper.fit(encoded_train, clip_share) if clip_share > 0 else None
    clipped_train = encoded_train if clip is None else clip.transform(encoded_train)
    scaler = Standardizer.fit(clipped_train)
    X_train = scaler.transform(clipped_train)
    encoded_val = encoder.transform(val.X)
    X_val = scaler.transform(encoded_val if clip is None else clip.transform(encoded_val))
    # a v1 share (no encoding) only where there is nothing to keep: no categories and
    # no missing training cell (even one imputed without an indicator)
    plain = encoder.is_identity and not np.isnan(train.X).any()
    encoding = None if plain else encoder
    outcome.summary.aligned = len(aligned)
    outcome.summary.train_rows, outcome.summary.validation_rows = len(train), len(val)
    if role == "guest" and params.label_protection is not None:
        epsilon, delta = params.label_protection
        outcome.summary.label_protection = {
            "epsilon": epsilon,
            "delta": delta,
            "sigma": round(params.label_noise, 6),
        }
    y = None
    if role == "guest":
        y = labels(train) if task == "binary" else one_hot(labels(train), classes)
    with outcome.timed("train"):
        w = train_weights(ctx, outcome, X_train, y, params, task == "multiclass")
    with outcome.timed("evaluate"):
        if role == "guest":
            scores = predict.score_guest(ctx, _with_bias(X_val) @ w, step=PREDICT_VALIDATION)
            outcome.summary.validation = evaluation(task, labels(val), scores, classes)
            write_predictions(job_dir / "validation_scores.csv", val.ids, scores)
            write_confusion(job_dir / VALIDATION_FILE, outcome.summary.validation)
            commit.announce_commit(ctx)
        else:
            predict.score_host(ctx, X_val @ w, step=PREDICT_VALIDATION)
            commit.await_commit(ctx)
    outputs = 1 if w.ndim == 1 else w.shape[1]
    W = w.reshape(len(w), outputs)
    share = LrShare(
        job_id=spec.job_id,
        party=ctx.party,
        role=role,
        dataset=dataset.name,
        feature_names=table.feature_names,
        # one block of weights per class (class 0 first), the guest's bias row apart
        weights=tuple(float(v) for v in (W[:-1] if role == "guest" else W).T.ravel()),
        intercept=float(W[-1, 0]) if role == "guest" and outputs == 1 else None,
        intercepts=(tuple(float(v) for v in W[-1]) if role == "guest" and outputs > 1 else None),
        outputs=outputs,
        mean=tuple(float(v) for v in scaler.mean),
        scale=tuple(float(v) for v in scaler.scale),
        format=share_format(encoding, clip, outputs),
        encoding=encoding,
        clip=clip,
    )
    outcome.summary.model_digest = share.write(job_dir)


def score(
    ctx: RoleContext, spec: JobSpec, dataset: JobDataset, job_dir: Path, outcome: JobOutcome
) -> None:
    role = outcome.role
    share_path = model_path(job_dir, spec)
    share = LrShare.load(share_path, party=ctx.party, role=role)
    with outcome.timed("load"):
        table = load_for_scoring(ctx, role, dataset, share)
    with outcome.timed("align"):
        rows = align_rows(ctx, role, spec, table, dataset)
    with outcome.timed("read"):  # chunk by chunk: only the partial scores are kept
        u = table.map_rows(rows, share.partial_scores)
    with outcome.timed("predict"):
        if role == "guest":
            scores = predict.score_guest(ctx, u)
            write_predictions(job_dir / "scores.csv", table.ids[rows], scores)
            outcome.summary.scored = len(scores)
            y = None if table.y is None else table.y[rows]
            if y is not None and share.outputs == 1 and set(np.unique(y)) == {0.0, 1.0}:
                outcome.summary.metrics = evaluation("binary", y, scores)
            elif y is not None and share.outputs > 1 and _class_labels(y, share.outputs):
                outcome.summary.metrics = evaluation("multiclass", y, scores, share.outputs)
                write_confusion(job_dir / SCORED_FILE, outcome.summary.metrics)
        else:
            predict.score_host(ctx, u)
    outcome.summary.aligned = len(rows)


def level_rows(n_train: int, params: hetero_lr.LrParams) -> int:
    """The fewest training rows a 0/1 encoded column (category level, missing indicator)
    may cover: on average ``BATCH_FACTOR`` of them in every batch, as the batch floor asks
    per coordinate, since its gradient sums the residuals of exactly those rows."""
    per_batch = math.ceil(BATCH_FACTOR * n_train / params.batch_size)
    return max(DEFAULT_MIN_ROWS, per_batch)


def one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    """One 0/1 column per class of labels ``0 .. classes-1`` (one-vs-rest's labels)."""
    return np.eye(classes)[y.astype(np.int64)]


def _class_labels(y: np.ndarray, classes: int) -> bool:
    """Whether scored rows' labels are the model's classes (then they are evaluated)."""
    return bool(np.isin(y, np.arange(classes)).all())


def write_predictions(path: Path, ids: IdList, scores: np.ndarray) -> None:
    """``id,score`` per row for one model; ``id,p_0..p_K-1,class`` for one-vs-rest."""
    if scores.ndim == 1:
        write_scores(path, ids, scores)
    else:
        write_class_probabilities(path, ids, scores)


def _with_bias(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((X.shape[0], 1))])


KIND = JobKind("hetero_lr", LrShare, train=train, predict=score, witness=witness)
