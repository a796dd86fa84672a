"""Scorecard jobs at a node: bin, WOE/IV, select, WOE logistic regression, scale; and score.

Training runs four protocol steps in one job, each party on its own columns:

1. *WOE/IV* (:mod:`lianmo.protocols.woe`): every party bins its columns on its training
   rows; the guest computes WOE and IV of its own columns in the clear and of the hosts'
   from encrypted per-bin event sums; the merge plans (minimum bin share, optionally a
   monotonic event rate) come from counts alone. Each party keeps the WOE of its bins.
2. *Selection*: the guest ranks every party's columns by IV (``min_iv``, then ``top_k``)
   and tells each host which of *its* columns pass (``scorecard.keep``); then each party
   drops, on its own, a kept column whose WOE correlates above ``max_corr`` with a kept
   column of higher IV. Nobody learns another party's correlations or columns.
3. *WOE-LR*: coordinated hetero LR (:mod:`lianmo.protocols.hetero_lr`, the arbiter holds
   the key) on the kept columns' WOE values, unscaled, so the weights are the scorecard's
   coefficients.
4. *Scaling*: every party turns its weights and WOE into its points table; the guest
   holds the base points. Validation: the guest receives the hosts' partial log-odds on
   the validation rows (as any LR validation does), scores them in points and keeps the
   decile edges of those scores as the reference of the score's PSI.

Scoring adds stability: the guest computes the score's PSI against the reference, every
party the CSI of its own kept columns against their training shares, and every party its
own reason codes (the characteristics furthest below their best points).
"""

from __future__ import annotations

import json
import logging
import typing as t
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lianmo.config import JobSpec, ScorecardSpec
from lianmo.data.rows import Table
from lianmo.errors import ConfigError, DataError
from lianmo.fileio import write_atomic
from lianmo.models.bin_merge import column_plan
from lianmo.models.binning import QuantileBins
from lianmo.models.scorecard import PartyReasons, Scaling
from lianmo.models.validation import decile_edges, gini, psi_from_counts
from lianmo.models.woe import bin_counts, scorecard_woe
from lianmo.models.woe_column import KEPT, NO_BIN, WoeColumn
from lianmo.node import lr_job
from lianmo.node.data_use import JobDataset
from lianmo.node.job_data import (
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
    write_id_csv,
)
from lianmo.node.kind import JobKind
from lianmo.node.scorecard_report import STABILITY_FILE, VALIDATION_FILE, write_job_report
from lianmo.node.scorecard_share import ScorecardShare, ScoreReference
from lianmo.protocols import commit, predict
from lianmo.protocols.context import RoleContext
from lianmo.protocols.woe import WoeParams, guest_woe, host_woe
from lianmo.wire.steps import PREDICT_VALIDATION, SCORECARD_KEEP

_LOG = logging.getLogger("lianmo.node")


#: the checkpoint after WOE/IV and selection: a resumed job skips both
COLUMNS_CHECKPOINT = "scorecard/columns"


@dataclass(frozen=True)
class SelectedColumns:
    """Checkpoint ``scorecard/columns``: this party's columns after selection."""

    columns: tuple[WoeColumn, ...]
    host_columns: int | None

    def to_checkpoint(self) -> dict[str, t.Any]:
        return {"columns": [c.to_dict() for c in self.columns], "host_columns": self.host_columns}

    @classmethod
    def from_checkpoint(cls, raw: t.Mapping[str, t.Any]) -> SelectedColumns:
        host = raw["host_columns"]
        return cls(
            tuple(WoeColumn.from_dict(c) for c in raw["columns"]),
            None if host is None else int(host),
        )


def _model(spec: JobSpec) -> ScorecardSpec:
    if not isinstance(spec.model, ScorecardSpec):
        raise ConfigError(f"job '{spec.job_id}' is not a scorecard job")
    return spec.model


def woe_params(m: ScorecardSpec) -> WoeParams:
    return WoeParams(
        max_bins=m.max_bins,
        min_bin_share=m.min_bin_share,
        monotonic=m.monotonic,
        key_bits=m.key_bits,
    )


def scaling(m: ScorecardSpec) -> Scaling:
    return Scaling(pdo=m.pdo, odds=m.odds, points=m.points)


def witness(ctx: RoleContext, spec: JobSpec, outcome: JobOutcome) -> None:
    """The arbiter holds the LR key; it takes no part in binning or selection."""
    lr_job.arbiter_job(ctx, lr_job.lr_params(_model(spec), spec.seed), outcome)


# ---- training ------------------------------------------------------------------------------


def train(
    ctx: RoleContext, spec: JobSpec, dataset: JobDataset, job_dir: Path, outcome: JobOutcome
) -> None:
    """A data party's side of training; keeps its share (bins, WOE, weights, points)."""
    model = _model(spec)
    role = outcome.role
    with outcome.timed("load"):
        table = load(ctx, role, dataset, training=True, job_party=spec.party(ctx.party))
    aligned = aligned_table(ctx, role, spec, table, dataset, outcome)
    train_rows, val = split_rows(ctx, role, spec, aligned)
    if role == "guest":
        check_split(ctx.party, labels(train_rows), labels(val))
    outcome.summary.aligned = len(aligned)
    outcome.summary.train_rows, outcome.summary.validation_rows = len(train_rows), len(val)
    saved = ctx.checkpoints.restore(COLUMNS_CHECKPOINT, SelectedColumns)
    if saved is not None:  # resuming past selection: its result, no message moves
        columns, host_columns = list(saved.columns), saved.host_columns
    elif model.reuse is None:
        columns, host_columns = _bin_and_select(ctx, role, train_rows, model, outcome)
    else:
        columns, host_columns = _reused(ctx, role, job_dir, model.reuse, train_rows), None
    if saved is None:
        ctx.checkpoints.save(COLUMNS_CHECKPOINT, SelectedColumns(tuple(columns), host_columns))
    kept_cols = [(train_rows.feature_names.index(c.name), c) for c in columns if c.kept]
    names = tuple(c.name for _, c in kept_cols)

    def woe_of(X: np.ndarray) -> np.ndarray:
        out = np.empty((len(X), len(kept_cols)), dtype=np.float64)
        for k, (j, c) in enumerate(kept_cols):
            out[:, k] = c.transform(X[:, j])
        return out

    params = lr_job.lr_params(model, spec.seed)
    with outcome.timed("train"):
        y = labels(train_rows) if role == "guest" else None
        w = lr_job.train_weights(ctx, outcome, woe_of(train_rows.X), y, params)
    weights = tuple(float(v) for v in (w[:-1] if role == "guest" else w))
    intercept = float(w[-1]) if role == "guest" else None
    scale = scaling(model)
    reference = None
    with outcome.timed("evaluate"):
        u_val = woe_of(val.X) @ np.asarray(weights)
        if role == "guest":
            log_odds = predict.log_odds_guest(ctx, u_val + float(intercept or 0.0),
                                              step=PREDICT_VALIDATION)  # fmt: skip
            probability = 1.0 / (1.0 + np.exp(-log_odds))
            points = scale.offset - scale.factor * log_odds
            y_val = labels(val)
            result = evaluation("binary", y_val, probability)
            outcome.summary.validation = result
            outcome.summary.scorecard = _scorecard_summary(
                y_val, probability, columns, host_columns
            )
            reference = _reference(points)
            _write_validation(job_dir / VALIDATION_FILE, val.ids, y_val, probability, points)
            commit.announce_commit(ctx)
        else:
            predict.score_host(ctx, u_val, step=PREDICT_VALIDATION)
            commit.await_commit(ctx)
            outcome.summary.scorecard = {
                "columns": len(columns),
                "kept": len(kept_cols),
            }
    share = ScorecardShare(
        job_id=spec.job_id,
        party=ctx.party,
        role=role,
        dataset=dataset.name,
        feature_names=names,
        weights=weights,
        intercept=intercept,
        scaling=scale,
        columns=tuple(columns),
        reason_codes=model.reason_codes,
        score_reference=reference,
    )
    outcome.summary.model_digest = share.write(job_dir)
    _write_report(job_dir, share)


def _bin_and_select(
    ctx: RoleContext, role: str, train_rows: Table, model: ScorecardSpec, outcome: JobOutcome
) -> tuple[list[WoeColumn], int | None]:
    """Steps 1 and 2: WOE/IV of every column, IV selection, the correlation filter.

    Returns this party's columns and, at the guest, how many columns the hosts have.
    """
    kinds = [
        len(train_rows.categories[n]) if n in train_rows.categories else None
        for n in train_rows.feature_names
    ]
    vocab = [train_rows.categories.get(n) for n in train_rows.feature_names]
    with outcome.timed("woe"):
        if role == "guest":
            columns = _own_woe(ctx.party, train_rows.X, labels(train_rows), kinds, vocab,
                               train_rows.feature_names, model)  # fmt: skip
            guest = guest_woe(ctx, labels(train_rows), woe_params(model))
        else:
            found = host_woe(ctx, train_rows.X, woe_params(model), categories=kinds)
            columns = [
                WoeColumn.split(
                    name,
                    found.bins,
                    f,
                    found.plans[f],
                    found.counts[f],
                    found.woe[f],
                    float(found.iv[f]),
                    vocabulary=vocab[f],
                )  # fmt: skip
                for f, name in enumerate(train_rows.feature_names)
            ]
    with outcome.timed("select"):
        if role == "guest":
            ranked = [(c.iv, ctx.party, j) for j, c in enumerate(columns)]
            ranked += [(iv, h, j) for (h, j), iv in guest.iv().items()]
            status = select_by_iv(ranked, model, ctx.party)
            check_every_party_kept(status, [ctx.party, *ctx.hosts], model, ctx.party)
            for host in ctx.hosts:
                kept = [j for (p, j), s in status.items() if p == host and s == KEPT]
                ctx.send(SCORECARD_KEEP, host, sorted(kept))
            own = {j: s for (p, j), s in status.items() if p == ctx.party}
        else:
            chosen = {int(j) for j in ctx.recv(SCORECARD_KEEP, ctx.guest)}
            if any(j >= len(columns) for j in chosen):
                raise DataError(f"guest '{ctx.guest}' kept a column this host does not have")
            own = {j: KEPT if j in chosen else "IV below min_iv or not in the top_k"
                   for j in range(len(columns))}  # fmt: skip
        columns = [c.with_status(own[j]) for j, c in enumerate(columns)]
        columns = drop_correlated(columns, train_rows.X, model.max_corr)
    return columns, (sum(len(c) for c in guest.hosts.values()) if role == "guest" else None)


def _reused(
    ctx: RoleContext, role: str, job_dir: Path, reuse: str, train_rows: Table
) -> list[WoeColumn]:
    """The columns (bins, WOE, selection) of this party's share of scorecard job ``reuse``."""
    share = ScorecardShare.load(job_dir.parent / reuse / "model.json", party=ctx.party, role=role)
    missing = [c.name for c in share.kept if c.name not in train_rows.feature_names]
    if missing:
        raise DataError(
            f"party '{ctx.party}': model.reuse = '{reuse}' keeps columns {missing} that this "
            "job's table does not have: use the same data set and columns as that job"
        )
    for column in share.kept:
        vocab = train_rows.categories.get(column.name)
        if vocab != column.vocabulary:
            raise DataError(
                f"party '{ctx.party}': column '{column.name}' has other categories (or is "
                f"declared otherwise) than in scorecard job '{reuse}', whose bins would then "
                "read the wrong codes: reuse only on a table with the same categories"
            )
    return list(share.columns)


def _own_woe(
    party: str,
    X: np.ndarray,
    y: np.ndarray,
    kinds: list[int | None],
    vocab: list[tuple[str, ...] | None],
    names: tuple[str, ...],
    model: ScorecardSpec,
) -> list[WoeColumn]:
    """The guest's own columns: bins, plans, WOE and IV in the clear (it holds the labels)."""
    bins = QuantileBins.fit(X, model.max_bins, kinds)
    binned = bins.transform(X)
    out = []
    for f, name in enumerate(names):
        events, nonevents = bin_counts(binned[:, f], y.astype(np.int64), bins.n_cells(f))
        plan = column_plan(
            events,
            nonevents,
            bins.n_bins(f),
            categorical=bins.is_categorical(f),
            min_share=model.min_bin_share,
            monotonic=model.monotonic,
        )
        e, ne = plan.apply(events), plan.apply(nonevents)
        missing = len(e) - 1 if bins.missing[f] else None
        woe, iv = scorecard_woe(e, ne, missing, model.min_bin_share)
        out.append(
            WoeColumn.split(
                name,
                bins,
                f,
                plan,
                e + ne,
                woe,
                iv,
                events=e,
                vocabulary=vocab[f],
            )  # fmt: skip
        )
    return out


def select_by_iv(
    ranked: list[tuple[float, str, int]], model: ScorecardSpec, guest: str
) -> dict[tuple[str, int], str]:
    """The status of every (party, column): kept, or why IV selection dropped it."""
    status: dict[tuple[str, int], str] = {}
    passing = []
    for iv, party, j in ranked:
        if iv >= model.min_iv:
            passing.append((iv, party, j))
        else:
            status[(party, j)] = f"IV {iv:.4f} below min_iv {model.min_iv:g}"
    # highest IV first; ties: the guest's, then the hosts' in order, then column order
    passing.sort(key=lambda r: (-r[0], r[1] != guest, r[1], r[2]))
    top = len(passing) if model.top_k is None else model.top_k
    for rank, (_iv, party, j) in enumerate(passing):
        status[(party, j)] = KEPT if rank < top else f"not in the top_k ({model.top_k}) by IV"
    if not passing:
        best = max((r[0] for r in ranked), default=0.0)
        raise DataError(
            f"party '{guest}': no column of any party has an IV of at least model.min_iv = "
            f"{model.min_iv:g} (the highest is {best:.4f}); lower model.min_iv"
        )
    return status


def check_every_party_kept(
    status: dict[tuple[str, int], str], parties: list[str], model: ScorecardSpec, guest: str
) -> None:
    """WOE-LR needs a characteristic at every data party: refuse a selection that leaves a
    party none (correlation filtering never does: it keeps each party's best column)."""
    empty = [p for p in parties if not any(q == p and s == KEPT for (q, _), s in status.items())]
    if empty:
        raise DataError(
            f"party '{guest}': IV selection (model.min_iv = {model.min_iv:g}, model.top_k = "
            f"{model.top_k}) keeps no column of {', '.join(repr(p) for p in empty)}; every data "
            "party needs a characteristic in the scorecard: lower min_iv, raise top_k, or "
            "leave that party out of the job"
        )


def drop_correlated(columns: list[WoeColumn], X: np.ndarray, max_corr: float) -> list[WoeColumn]:
    """Drop, in order of IV, a kept column whose training WOE correlates above ``max_corr``
    with a kept column of higher IV (this party's columns only)."""
    order = sorted((j for j, c in enumerate(columns) if c.kept), key=lambda j: -columns[j].iv)
    woe = {j: columns[j].transform(X[:, j]) for j in order}
    chosen: list[int] = []
    out = list(columns)
    for j in order:
        worst = None
        for k in chosen:
            r = _corr(woe[j], woe[k])
            if abs(r) > max_corr and (worst is None or abs(r) > abs(worst[1])):
                worst = (k, r)
        if worst is None:
            chosen.append(j)
        else:
            k, r = worst
            out[j] = columns[j].with_status(
                f"correlated with {columns[k].name} (r = {r:.3f}, above max_corr {max_corr:g})"
            )
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = a.std(), b.std()
    if sa == 0 or sb == 0:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def _reference(points: np.ndarray) -> ScoreReference:
    edges = decile_edges(points)
    counts = np.bincount(np.searchsorted(edges, points, side="right"), minlength=len(edges) + 1)
    return ScoreReference(tuple(float(e) for e in edges), tuple(int(c) for c in counts))


def _scorecard_summary(
    y: np.ndarray, probability: np.ndarray, columns: list[WoeColumn], host_columns: int | None
) -> dict[str, object]:
    out: dict[str, object] = {
        "gini": round(gini(y, probability), 6),
        "columns": len(columns),
        "kept": sum(c.kept for c in columns),
    }
    return out if host_columns is None else {**out, "host_columns": host_columns}


def _write_validation(
    path: Path, ids: t.Sequence[str], y: np.ndarray, probability: np.ndarray, points: np.ndarray
) -> None:
    """The guest's validation rows: ``id,label,probability,score`` (its report reads them)."""

    def cells(block: np.ndarray) -> list[str]:
        return [f"{int(y[i])},{probability[i]:.10f},{points[i]:.6f}" for i in block]

    write_id_csv(path, ("id", "label", "probability", "score"), ids, np.arange(len(ids)), cells)


def _with_bias(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((X.shape[0], 1))])


# ---- scoring -------------------------------------------------------------------------------


def score(
    ctx: RoleContext, spec: JobSpec, dataset: JobDataset, job_dir: Path, outcome: JobOutcome
) -> None:
    """Score with a stored scorecard share: points, own reason codes, PSI and CSI."""
    role = outcome.role
    share = ScorecardShare.load(model_path(job_dir, spec), party=ctx.party, role=role)
    with outcome.timed("load"):
        table = load_for_scoring(ctx, role, dataset, share)
    with outcome.timed("align"):
        rows = align_rows(ctx, role, spec, table, dataset)
    with outcome.timed("read"):
        X = table.read_rows(rows).X
        codes = share.codes(X)
        u = share.partial_scores_of_codes(codes)
    ids = table.ids[rows]
    k = share.reason_codes
    reasons = party_reasons(share, codes, k) if k and len(share.feature_names) else None
    stability: dict[str, object] = {"csi": _csi(share, codes)}
    with outcome.timed("predict"):
        if role == "guest":
            log_odds = predict.log_odds_guest(ctx, u)
            probability = 1.0 / (1.0 + np.exp(-log_odds))
            scale = share.scaling
            score_points = scale.offset - scale.factor * log_odds
            _write_scores(job_dir / "scores.csv", ids, probability, score_points, reasons)
            outcome.summary.scored = len(probability)
            y = None if table.y is None else table.y[rows]
            if y is not None and set(np.unique(y)) == {0.0, 1.0}:
                outcome.summary.metrics = evaluation("binary", y, probability)
            if share.score_reference is not None and len(score_points):
                stability["psi"] = _psi(share.score_reference, score_points)
        else:
            predict.score_host(ctx, u)
            if reasons is not None:
                _write_reasons(job_dir / "reasons.csv", ids, reasons)
    write_atomic(job_dir / STABILITY_FILE, json.dumps(stability, indent=2).encode())
    csi_values = [c["csi"] for c in stability["csi"]]  # type: ignore[attr-defined]
    outcome.summary.stability = {
        **({"score_psi": stability["psi"]["psi"]} if "psi" in stability else {}),  # type: ignore[index]
        "max_csi": round(max(csi_values), 6) if csi_values else 0.0,
        "columns_over_0.25": sum(v > 0.25 for v in csi_values),
    }
    outcome.summary.aligned = len(rows)
    _write_report(job_dir, share)


def _write_report(job_dir: Path, share: ScorecardShare) -> None:
    """This party's report.html/md in the job folder; a report that fails is logged, and
    the job goes on: the model and the scores are what matter (``lianmo report`` can
    write it again)."""
    try:
        write_job_report(job_dir, share)
    except Exception as exc:  # noqa: BLE001 - any report failure must leave the job whole
        _LOG.warning(
            "job %s: party %s could not write its model report (%s: %s); the job goes on, "
            "and `lianmo report` can write it later",
            job_dir.name, share.party, type(exc).__name__, exc,
        )  # fmt: skip


def party_reasons(share: ScorecardShare, codes: np.ndarray, k: int) -> PartyReasons:
    """This party's top ``k`` reasons per row; a cell with no bin scores 0 points (WOE 0)."""
    table = share.points_table()
    points = np.column_stack(
        [
            np.where(codes[:, j] == NO_BIN, 0.0, ch.points[np.maximum(codes[:, j], 0)])
            for j, ch in enumerate(table.characteristics)
        ]  # fmt: skip
    )
    return table.reasons_of_points(points, k)


def _csi(share: ScorecardShare, codes: np.ndarray) -> list[dict[str, object]]:
    out = []
    for j, column in enumerate(share.kept):
        expected = np.asarray(column.counts, dtype=np.float64)
        col = codes[:, j]
        actual = np.bincount(col[col != NO_BIN], minlength=len(expected)).astype(np.float64)
        if len(expected) < 2 or actual.sum() == 0:
            value, terms = 0.0, [0.0] * len(expected)
        else:
            found = psi_from_counts(expected, actual)
            value, terms = found.value, [float(v) for v in found.contribution]
        out.append({
            "column": column.name,
            "csi": round(float(value), 6),
            "expected_share": [float(v) for v in expected / max(expected.sum(), 1.0)],
            "actual_share": [float(v) for v in actual / max(actual.sum(), 1.0)],
            "terms": terms,
            "no_bin": int((col == NO_BIN).sum()),
        })  # fmt: skip
    return out


def _psi(ref: ScoreReference, points: np.ndarray) -> dict[str, object]:
    edges = np.asarray(ref.edges)
    actual = np.bincount(np.searchsorted(edges, points, side="right"), minlength=len(edges) + 1)
    found = psi_from_counts(np.asarray(ref.counts), actual)
    return {
        "psi": round(float(found.value), 6),
        "edges": list(ref.edges),
        "expected_share": [float(v) for v in found.expected_share],
        "actual_share": [float(v) for v in found.actual_share],
        "terms": [float(v) for v in found.contribution],
    }


def _write_scores(
    path: Path,
    ids: np.ndarray,
    probability: np.ndarray,
    points: np.ndarray,
    reasons: PartyReasons | None,
) -> None:
    """``id,probability,score`` and the guest's own reasons (``reason_1`` ...) per row."""
    width = 0 if reasons is None else reasons.names.shape[1]
    header = ["id", "probability", "score"] + [f"reason_{r + 1}" for r in range(width)]

    def cells(block: np.ndarray) -> list[str]:
        return [
            f"{float(probability[i])!r},{points[i]:.4f}"
            + "".join(f",{n}" for n in ([] if reasons is None else reasons.names[i]))
            for i in block
        ]

    write_id_csv(path, header, ids, np.arange(len(ids)), cells)


def _write_reasons(path: Path, ids: np.ndarray, reasons: PartyReasons) -> None:
    """A host's own reasons per scored row, ``id,reason_1,...`` (they stay with the host)."""
    header = ["id"] + [f"reason_{r + 1}" for r in range(reasons.names.shape[1])]
    names = reasons.names
    write_id_csv(path, header, ids, np.arange(len(ids)),
                 lambda block: [",".join(names[i]) for i in block])  # fmt: skip


KIND = JobKind("scorecard", ScorecardShare, train=train, predict=score, witness=witness)

__all__ = [
    "KIND",
    "STABILITY_FILE",
    "VALIDATION_FILE",
    "check_every_party_kept",
    "drop_correlated",
    "select_by_iv",
]
