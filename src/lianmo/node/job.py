"""One party's side of one job, phase by phase: load, align, train, evaluate, export.

Everything here is independent of how messages travel: it gets a :class:`RoleContext`
whose channel may be in-memory or gRPC. Outputs go to the job's folder in the party's
state directory and are written atomically (temporary file, fsync, rename), so nothing
half-written ever looks complete.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from lianmo.config import BoostSpec, DatasetEntry, JobSpec, LrSpec
from lianmo.errors import ConfigError
from lianmo.fileio import write_atomic
from lianmo.models.scaler import Standardizer
from lianmo.node import boost_job
from lianmo.node.job_data import (
    JobOutcome,
    align_rows,
    aligned_table,
    binary_metrics,
    check_split,
    labels,
    load,
    model_path,
    split_rows,
    write_ids,
    write_scores,
)
from lianmo.node.model_share import LrShare
from lianmo.protocols import commit, hetero_lr, predict
from lianmo.protocols.context import RoleContext
from lianmo.wire.steps import PREDICT_VALIDATION


def run_party_job(
    ctx: RoleContext,
    spec: JobSpec,
    dataset: DatasetEntry | None,
    job_dir: Path,
) -> JobOutcome:
    """Run this party's role of ``spec``; returns the summary for the coordinator."""
    role = spec.party(ctx.party).role
    outcome = JobOutcome(role=role, record=ctx.record)
    if role == "arbiter":
        if spec.task == "train" and isinstance(spec.model, LrSpec):
            _arbiter_job(ctx, spec.model, spec.seed, outcome)
        elif spec.task == "train":
            commit.await_commit(ctx)  # SecureBoost needs no third party; it only witnesses
        return outcome  # scoring needs no key holder; the arbiter only acknowledges
    if dataset is None:
        raise ConfigError(f"party '{ctx.party}' is a {role} but has no data set for this job")
    if spec.task == "align":
        _align_job(ctx, spec, dataset, job_dir, outcome)
    elif spec.task == "predict":
        if _model_format(model_path(job_dir, spec)) == "secureboost":
            boost_job.predict(ctx, spec, dataset, job_dir, outcome)
        else:
            _predict_job(ctx, spec, dataset, job_dir, outcome)
    elif isinstance(spec.model, BoostSpec):
        boost_job.train(ctx, spec, spec.model, dataset, job_dir, outcome)
    else:
        _train_job(ctx, spec, dataset, job_dir, outcome, _lr_params(spec.model, spec.seed))
    return outcome


def _arbiter_job(ctx: RoleContext, model: LrSpec, seed: int, outcome: JobOutcome) -> None:
    with outcome.timed("train"):
        result = hetero_lr.train_arbiter(ctx, _lr_params(model, seed))
        commit.await_commit(ctx)
    outcome.values.update(
        losses=list(result.losses),
        rounds=result.rounds,
        round_losses=[round(v, 6) for v in result.round_losses],
        epoch_seconds=list(result.epoch_seconds),
    )


def _model_format(path: Path) -> str:
    """'secureboost' or 'hetero_lr', from a stored model share (missing: hetero_lr's error)."""
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return "hetero_lr"  # LrShare.load names the problem
    fmt = raw.get("format", "") if isinstance(raw, dict) else ""
    return "secureboost" if str(fmt).startswith("lianmo.secureboost") else "hetero_lr"


def _lr_params(m: LrSpec, seed: int) -> hetero_lr.LrParams:
    return hetero_lr.LrParams(
        epochs=m.epochs,
        batch_size=m.batch_size,
        learning_rate=m.learning_rate,
        lr_decay=m.lr_decay,
        l2=m.l2,
        tol=m.tol,
        key_bits=m.key_bits,
        seed=seed,
    )


def _train_job(
    ctx: RoleContext,
    spec: JobSpec,
    dataset: DatasetEntry,
    job_dir: Path,
    outcome: JobOutcome,
    params: hetero_lr.LrParams,
) -> None:
    role = outcome.role
    with outcome.timed("load"):
        table = load(ctx, role, dataset, training=True)
    aligned = aligned_table(ctx, role, spec, table, outcome)
    train, val = split_rows(ctx, role, spec, aligned)
    if role == "guest":
        check_split(ctx.party, labels(train), labels(val))
    scaler = Standardizer.fit(train.X)
    X_train, X_val = scaler.transform(train.X), scaler.transform(val.X)
    outcome.values.update(aligned=len(aligned), train_rows=len(train), validation_rows=len(val))
    with outcome.timed("train"):
        if role == "guest":
            w = hetero_lr.train_guest(ctx, _with_bias(X_train), labels(train), params)
        else:
            w = hetero_lr.train_host(ctx, X_train, params)
    with outcome.timed("evaluate"):
        if role == "guest":
            scores = predict.score_guest(ctx, _with_bias(X_val) @ w, step=PREDICT_VALIDATION)
            outcome.values["validation"] = binary_metrics(labels(val), scores)
            write_scores(job_dir / "validation_scores.csv", val.ids, scores)
            commit.announce_commit(ctx)
        else:
            predict.score_host(ctx, X_val @ w, step=PREDICT_VALIDATION)
            commit.await_commit(ctx)
    share = LrShare(
        job_id=spec.job_id,
        party=ctx.party,
        role=role,
        dataset=dataset.name,
        feature_names=table.feature_names,
        weights=tuple(float(v) for v in (w[:-1] if role == "guest" else w)),
        intercept=float(w[-1]) if role == "guest" else None,
        mean=tuple(float(v) for v in scaler.mean),
        scale=tuple(float(v) for v in scaler.scale),
    )
    data = share.to_json()
    write_atomic(job_dir / "model.json", data)
    outcome.values["model_digest"] = hashlib.sha256(data).hexdigest()


def _predict_job(
    ctx: RoleContext, spec: JobSpec, dataset: DatasetEntry, job_dir: Path, outcome: JobOutcome
) -> None:
    role = outcome.role
    share_path = model_path(job_dir, spec)
    share = LrShare.load(share_path, party=ctx.party, role=role)
    with outcome.timed("load"):
        table = load(ctx, role, dataset, training=False, feature_columns=list(share.feature_names))
    with outcome.timed("align"):
        rows = align_rows(ctx, role, spec, table)
    with outcome.timed("read"):  # chunk by chunk: only the partial scores are kept
        u = table.map_rows(rows, share.partial_scores)
    with outcome.timed("predict"):
        if role == "guest":
            scores = predict.score_guest(ctx, u)
            write_scores(job_dir / "scores.csv", table.ids[rows], scores)
            outcome.values["scored"] = len(scores)
            y = None if table.y is None else table.y[rows]
            if y is not None and set(np.unique(y)) == {0.0, 1.0}:
                outcome.values["metrics"] = binary_metrics(y, scores)
        else:
            predict.score_host(ctx, u)
    outcome.values.update(aligned=len(rows))


def _align_job(
    ctx: RoleContext, spec: JobSpec, dataset: DatasetEntry, job_dir: Path, outcome: JobOutcome
) -> None:
    """Only align: every data party learns the common ids and keeps them, in row order."""
    with outcome.timed("load"):
        table = load(ctx, outcome.role, dataset, training=False)
    with outcome.timed("align"):
        rows = align_rows(ctx, outcome.role, spec, table)
    write_ids(job_dir / "aligned_ids.csv", table.ids[rows])
    outcome.values.update(aligned=len(rows), rows=len(table))


def _with_bias(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((X.shape[0], 1))])
