"""One party's side of one job, phase by phase: load, align, train, evaluate, export.

Everything here is independent of how messages travel: it gets a :class:`RoleContext`
whose channel may be in-memory or gRPC. Outputs go to the job's folder in the party's
state directory and are written atomically (temporary file, fsync, rename), so nothing
half-written ever looks complete.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lianmo.config import DatasetEntry, JobSpec
from lianmo.data.split import validation_mask
from lianmo.data.table import Table, check_binary_labels, load_table
from lianmo.errors import ConfigError, DataError
from lianmo.fileio import write_atomic
from lianmo.models.metrics import auc, ks
from lianmo.models.scaler import Standardizer
from lianmo.node.model_share import LrShare
from lianmo.protocols import commit, hetero_lr, predict, psi
from lianmo.protocols.context import RoleContext


@dataclass
class JobOutcome:
    """A party's result summary, reported to the coordinator (no rows, no weights)."""

    role: str
    values: dict[str, object] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phase_seconds[phase] = round(
                self.phase_seconds.get(phase, 0.0) + time.perf_counter() - start, 3
            )


def run_party_job(
    ctx: RoleContext,
    spec: JobSpec,
    dataset: DatasetEntry | None,
    job_dir: Path,
) -> JobOutcome:
    """Run this party's role of ``spec``; returns the summary for the coordinator."""
    role = spec.party(ctx.party).role
    outcome = JobOutcome(role=role)
    params = _lr_params(spec)
    if role == "arbiter" and spec.task == "predict":
        return outcome  # scoring needs no key holder; the arbiter only acknowledges
    if role == "arbiter":
        with outcome.timed("train"):
            result = hetero_lr.train_arbiter(ctx, params)
            commit.await_commit(ctx)
        outcome.values.update(
            losses=list(result.losses),
            rounds=result.rounds,
            round_losses=[round(v, 6) for v in result.round_losses],
            epoch_seconds=list(result.epoch_seconds),
        )
        return outcome
    if dataset is None:
        raise ConfigError(f"party '{ctx.party}' is a {role} but has no data set for this job")
    if spec.task == "predict":
        _predict_job(ctx, spec, dataset, job_dir, outcome)
    else:
        _train_job(ctx, spec, dataset, job_dir, outcome, params)
    return outcome


def _lr_params(spec: JobSpec) -> hetero_lr.LrParams:
    m = spec.model
    return hetero_lr.LrParams(
        epochs=m.epochs,
        batch_size=m.batch_size,
        learning_rate=m.learning_rate,
        lr_decay=m.lr_decay,
        l2=m.l2,
        tol=m.tol,
        key_bits=m.key_bits,
        seed=spec.seed,
    )


def _load(
    ctx: RoleContext,
    role: str,
    dataset: DatasetEntry,
    *,
    training: bool,
    feature_columns: list[str] | None = None,
) -> Table:
    """Load this party's table; the guest's labels are required for training only."""
    label = dataset.label_column if role == "guest" else None
    if training and role == "guest" and label is None:
        raise ConfigError(
            f"party '{ctx.party}': data set '{dataset.name}' has no label_column in the "
            "catalogue, but the guest must hold the labels"
        )
    table = load_table(
        dataset.path,
        id_column=dataset.id_column,
        label_column=label,
        party=ctx.party,
        feature_columns=feature_columns,
    )
    if training and table.y is not None:
        check_binary_labels(table, party=ctx.party)
    return table


def _align(ctx: RoleContext, role: str, spec: JobSpec, table: Table) -> Table:
    minimum = spec.alignment.min_intersection
    if role == "guest":
        rows = psi.align_guest(ctx, table.ids, min_intersection=minimum)
    else:
        rows = psi.align_host(ctx, table.ids, min_intersection=minimum)
    return table.select(rows)


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
        table = _load(ctx, role, dataset, training=True)
    with outcome.timed("align"):
        aligned = _align(ctx, role, spec, table)
    is_val = validation_mask(aligned.ids, spec.validation.share, spec.seed)
    train, val = aligned.select(np.flatnonzero(~is_val)), aligned.select(np.flatnonzero(is_val))
    if role == "guest":
        _check_split(ctx.party, _labels(train), _labels(val))
    scaler = Standardizer.fit(train.X)
    X_train, X_val = scaler.transform(train.X), scaler.transform(val.X)
    outcome.values.update(aligned=len(aligned), train_rows=len(train), validation_rows=len(val))
    with outcome.timed("train"):
        if role == "guest":
            w = hetero_lr.train_guest(ctx, _with_bias(X_train), _labels(train), params)
        else:
            w = hetero_lr.train_host(ctx, X_train, params)
    with outcome.timed("evaluate"):
        if role == "guest":
            scores = predict.score_guest(ctx, _with_bias(X_val) @ w, tag="predict.validation")
            outcome.values["validation"] = _metrics(_labels(val), scores)
            _write_scores(job_dir / "validation_scores.csv", val.ids, scores)
            commit.announce_commit(ctx)
        else:
            predict.score_host(ctx, X_val @ w, tag="predict.validation")
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


def _check_split(party: str, y_train: np.ndarray, y_val: np.ndarray) -> None:
    """Refuse before training what would fail at evaluation: no rows or one class."""
    for name, y in (("training", y_train), ("validation", y_val)):
        if len(np.unique(y)) < 2:
            raise DataError(
                f"party '{party}': the {name} split has {len(y)} rows and not both classes; "
                "change validation.share or the seed, or use a larger intersection"
            )


def _predict_job(
    ctx: RoleContext, spec: JobSpec, dataset: DatasetEntry, job_dir: Path, outcome: JobOutcome
) -> None:
    role = outcome.role
    share_path = job_dir.parent / str(spec.model_job) / "model.json"
    share = LrShare.load(share_path, party=ctx.party, role=role)
    with outcome.timed("load"):
        table = _load(ctx, role, dataset, training=False, feature_columns=list(share.feature_names))
    with outcome.timed("align"):
        aligned = _align(ctx, role, spec, table)
    u = share.partial_scores(aligned.X)
    with outcome.timed("predict"):
        if role == "guest":
            scores = predict.score_guest(ctx, u)
            _write_scores(job_dir / "scores.csv", aligned.ids, scores)
            outcome.values["scored"] = len(scores)
            y = aligned.y
            if y is not None and set(np.unique(y)) == {0.0, 1.0}:
                outcome.values["metrics"] = _metrics(y, scores)
        else:
            predict.score_host(ctx, u)
    outcome.values.update(aligned=len(aligned))


def _labels(table: Table) -> np.ndarray:
    if table.y is None:
        raise DataError(f"{table.source}: the guest's table has no labels")
    return table.y


def _with_bias(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((X.shape[0], 1))])


def _metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    if len(np.unique(y)) < 2:
        raise DataError("the validation split holds only one class; use a larger validation share")
    return {"auc": round(auc(y, scores), 6), "ks": round(ks(y, scores), 6), "rows": len(y)}


def _write_scores(path: Path, ids: tuple[str, ...], scores: np.ndarray) -> None:
    lines = ["id,score"] + [f"{i},{s:.8f}" for i, s in zip(ids, scores, strict=True)]
    write_atomic(path, ("\n".join(lines) + "\n").encode())
