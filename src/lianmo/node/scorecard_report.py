"""A party's scorecard report from its job folder: what this party learned, and nothing more.

After training, the guest's report (:func:`training_report`) holds the validation
performance it computed (AUC, KS, Gini, ROC and KS curves, lift and gain by decile, the
score by class, calibration, event rate by score band of ``pdo`` points), its own
columns' WOE/IV tables with their selection status, and its points table with the base
points. A host's holds only its own columns (rows and WOE per bin, the column's IV; its
bins' event counts are unknown to it and shown as "—"), their status and its points
table: a host has no labels, so no performance section. After scoring
(:func:`scoring_report`), the guest's report shows the score's PSI against the
validation scores, and every party the CSI of its own kept columns.

:func:`write_job_report` writes ``report.html`` and ``report.md`` (its charts in
``report-charts/``) into a job folder; the scorecard job calls it at the end of
training and scoring, and ``lianmo report`` (re)writes it.
"""

from __future__ import annotations

import csv
import json
import math
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lianmo.config import JobSpec, ScorecardSpec
from lianmo.errors import ConfigError, DataError
from lianmo.models.metrics import auc, ks
from lianmo.models.validation import calibration_table, gini, lift_table, score_bands
from lianmo.models.woe import WoeTable
from lianmo.models.woe_column import WoeColumn
from lianmo.node.job_data import model_path
from lianmo.node.scorecard_share import SCORECARD_FORMAT, ScorecardShare
from lianmo.node.share import SHARE_FILE, share_format
from lianmo.report import (
    Calibration,
    CharacteristicPoints,
    ColumnStability,
    ColumnWoe,
    DecileRow,
    KsCurve,
    Metric,
    ModelReport,
    PointsBin,
    RocCurve,
    ScoreBand,
    ScorecardPoints,
    ScoreHistogram,
    StabilityBin,
    WoeBin,
    write_report,
)

__all__ = [
    "CHART_DIR",
    "STABILITY_FILE",
    "VALIDATION_FILE",
    "Validation",
    "job_share",
    "scoring_report",
    "training_report",
    "write_job_report",
]

#: the folder, beside report.md, that holds its charts as SVG files
CHART_DIR = "report-charts"
#: the file of the guest's validation rows: id, label, probability, score
VALIDATION_FILE = "validation.csv"
#: a scoring job's stability at each party: score PSI (guest) and its columns' CSI
STABILITY_FILE = "stability.json"
_CURVE_POINTS = 400  # a curve keeps about this many points: a readable, small SVG
_MAX_BANDS = 12


@dataclass(frozen=True, eq=False)
class Validation:
    """The guest's validation rows: label (1 = event), probability and score in points."""

    y: np.ndarray
    probability: np.ndarray
    score: np.ndarray

    @classmethod
    def read(cls, path: Path) -> Validation:
        """Read ``validation.csv`` (``id,label,probability,score``) as the job wrote it."""
        try:
            with path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            data = np.array(
                [(float(r["label"]), float(r["probability"]), float(r["score"])) for r in rows]
            ).reshape(-1, 3)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"cannot read the validation rows {path}: {exc}; it should be the "
                "id,label,probability,score file a scorecard training job writes"
            ) from exc
        if not len(data):
            raise DataError(f"the validation rows {path} hold no row")
        return cls(data[:, 0].astype(np.int64), data[:, 1], data[:, 2])


# ---- training ------------------------------------------------------------------------------


def training_report(share: ScorecardShare, validation: Path | Validation | None) -> ModelReport:
    """This party's report of a trained scorecard; performance only with ``validation``
    (the guest's: a host has no labels, so pass None)."""
    if isinstance(validation, Path):
        validation = Validation.read(validation)
    guest = share.role == "guest"
    notes = [
        f"Training job {share.job_id}, dataset {share.dataset}: "
        f"{len(share.feature_names)} of {len(share.columns)} own columns in the scorecard."
    ]
    if guest and any(c.events is not None and _has_pure_bin(c) for c in share.columns):
        notes.append(
            "A bin with no events or no non-events has WOE 0 and no part in the IV (as "
            "optbinning defines them), so it scores like the average row."
        )
    if not guest:
        notes.append(
            "A host's report: its own columns' bins, WOE and points only. The model's "
            "performance and each bin's events are known to the guest alone (it holds the "
            "labels)."
        )
    perf: dict[str, t.Any] = {}
    if validation is not None:
        if not guest:
            raise ConfigError(
                f"party '{share.party}' is a host: its report shows no performance (a host "
                "has no labels), so pass no validation rows"
            )
        perf = _performance(validation, share.scaling.pdo)
        notes.append(f"Validation: {len(validation.y):,} rows held out of training.")
    return ModelReport(
        title=f"Scorecard model report: job {share.job_id}",
        party=share.party,
        role=share.role,
        columns=tuple(_column(c, share.party) for c in share.columns),
        points=_points(share),
        notes=tuple(notes),
        **perf,
    )


def _column(column: WoeColumn, party: str) -> ColumnWoe:
    counts = np.asarray(column.counts, dtype=np.int64)
    woe = np.asarray(column.woe, dtype=np.float64)
    if column.events is None:  # a host: rows and WOE per bin, not their events
        bins = tuple(
            WoeBin(label, int(n), None, None, float(w), None)
            for label, n, w in zip(column.labels, counts, woe, strict=True)
        )
    else:
        events = np.asarray(column.events, dtype=np.int64)
        table = WoeTable.from_counts(column.name, events, counts - events)
        rate = events / np.maximum(counts, 1)  # the true rate, also of a pure bin
        bins = tuple(
            WoeBin(label, int(n), int(e), float(r), float(w), float(v))
            for label, n, e, r, w, v in zip(
                column.labels, counts, events, rate, woe, table.iv_bins, strict=True
            )
        )
    return ColumnWoe(
        column.name, bins, party, information_value=float(column.iv), status=column.status
    )


def _has_pure_bin(column: WoeColumn) -> bool:
    events = np.asarray(column.events)
    counts = np.asarray(column.counts)
    return bool(((events == 0) | (events == counts)).any())


def _points(share: ScorecardShare) -> ScorecardPoints:
    table = share.points_table()
    chars = tuple(
        CharacteristicPoints(
            ch.name,
            ch.coefficient,
            tuple(
                PointsBin(label, float(w), float(p))
                for label, w, p in zip(column.labels, ch.woe, ch.points, strict=True)
            ),
        )
        for ch, column in zip(table.characteristics, share.kept, strict=True)
    )
    s = share.scaling
    scaling = (
        f"Scaling: {s.points:g} points at good:bad odds {s.odds:g}:1, {s.pdo:g} points to "
        f"double the odds (factor {s.factor:.4f}, offset {s.offset:.4f})."
    )
    return ScorecardPoints(chars, table.base, scaling)


def _performance(v: Validation, pdo: float) -> dict[str, t.Any]:
    """The guest's validation sections; higher probability = riskier, higher points = safer."""
    y, p, score = v.y, v.probability, v.score
    a = auc(y, p)
    lift = lift_table(y, p)
    cal = calibration_table(y, p)
    return {
        "metrics": (
            Metric("AUC", a),
            Metric("KS", ks(y, p)),
            Metric("Gini", gini(y, p), "2 × AUC − 1"),
            Metric("event rate", float(y.mean()), f"{int(y.sum()):,} events in {len(y):,} rows"),
        ),
        "roc": _roc(y, p, a),
        "ks": _ks_curve(y, score),
        "deciles": tuple(
            DecileRow(
                int(r["group"]),
                int(r["count"]),
                int(r["events"]),
                float(r["event_rate"]),
                float(r["lift"]),
                float(r["cumulative_capture"]),
            )
            for r in lift.to_records()
        ),
        "score_histogram": _histogram(y, score),
        "calibration": Calibration(
            tuple(float(x) for x in cal.mean_predicted),
            tuple(float(x) for x in cal.events / cal.count),
            tuple(int(x) for x in cal.count),
        ),
        "score_bands": _bands(y, score, pdo),
    }


def _thin(n: int) -> np.ndarray:
    """Indices of about :data:`_CURVE_POINTS` of ``n`` points, first and last kept."""
    step = max(1, n // _CURVE_POINTS)
    return np.unique(np.r_[np.arange(0, n, step), n - 1])


def _roc(y: np.ndarray, p: np.ndarray, area: float) -> RocCurve:
    order = np.argsort(-p, kind="mergesort")
    s = p[order]
    last = np.r_[s[1:] != s[:-1], True]  # one point per distinct threshold
    tp = np.cumsum(y[order])[last]
    fp = np.cumsum(1 - y[order])[last]
    tpr = np.r_[0.0, tp / max(tp[-1], 1)]
    fpr = np.r_[0.0, fp / max(fp[-1], 1)]
    keep = _thin(len(tpr))
    return RocCurve(tuple(map(float, fpr[keep])), tuple(map(float, tpr[keep])), area)


def _ks_curve(y: np.ndarray, score: np.ndarray) -> KsCurve:
    """Cumulative share of each class at or below each distinct score (points)."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    last = np.r_[s[1:] != s[:-1], True]
    ev = np.cumsum(y[order])[last] / max(int(y.sum()), 1)
    ne = np.cumsum(1 - y[order])[last] / max(int((1 - y).sum()), 1)
    s = s[last]
    gap = int(np.argmax(np.abs(ev - ne)))
    keep = np.unique(np.r_[_thin(len(s)), gap])
    return KsCurve(
        tuple(map(float, s[keep])),
        tuple(map(float, ev[keep])),
        tuple(map(float, ne[keep])),
        float(abs(ev[gap] - ne[gap])),
        float(s[gap]),
    )


def _histogram(y: np.ndarray, score: np.ndarray) -> ScoreHistogram:
    lo, hi = math.floor(score.min() / 10) * 10, math.ceil(score.max() / 10) * 10
    edges = np.linspace(lo, max(hi, lo + 10), 31)
    return ScoreHistogram(
        tuple(map(float, edges)),
        tuple(int(c) for c in np.histogram(score[y == 1], edges)[0]),
        tuple(int(c) for c in np.histogram(score[y == 0], edges)[0]),
        score_name="score",
    )


def _bands(y: np.ndarray, score: np.ndarray, pdo: float) -> tuple[ScoreBand, ...]:
    """Bands ``pdo`` points wide (each doubles the odds), widened to at most 12 bands."""
    width = pdo
    while (score.max() - score.min()) / width > _MAX_BANDS - 2:
        width *= 2
    edges = np.arange(math.floor(score.min() / width) + 1, math.ceil(score.max() / width)) * width
    if edges.size == 0:
        edges = np.array([float(np.median(score))])
    table = score_bands(y, score, edges)
    out = []
    for lower, upper, count, events in zip(
        table.lower, table.upper, table.count, table.events, strict=True
    ):
        if np.isinf(lower):
            label = f"< {upper:g}"
        elif np.isinf(upper):
            label = f"≥ {lower:g}"
        else:
            label = f"{lower:g}–{upper:g}"
        rate = float(events / count) if count else 0.0
        out.append(ScoreBand(label, int(count), int(events), rate))
    return tuple(out)


# ---- scoring -------------------------------------------------------------------------------


def scoring_report(
    share: ScorecardShare, stability: Mapping[str, t.Any], job_id: str = ""
) -> ModelReport:
    """This party's stability report of a scoring job, from its ``stability.json``."""
    by_name = {c.name: c for c in share.columns}
    columns: list[ColumnStability] = []
    notes = [f"Scoring job {job_id or '?'} with the scorecard of training job {share.job_id}."]
    try:
        for item in stability.get("csi", []):
            column = by_name.get(str(item["column"]))
            if column is None:
                raise DataError(
                    f"the stability file names column {item['column']!r}, which the model "
                    f"share of party '{share.party}' does not hold"
                )
            columns.append(_stability(column.name, column.labels, item, share.party))
            if int(item.get("no_bin", 0)):
                notes.append(
                    f"{int(item['no_bin']):,} scored rows of {column.name} had no bin (a "
                    "missing value where training had none): left out of its CSI."
                )
        raw_psi = stability.get("psi")
        psi = None
        if raw_psi is not None:
            edges = [float(e) for e in raw_psi["edges"]]
            psi = _stability("score", _band_labels(edges), raw_psi, share.party)
            notes.append(
                "The score's expected shares are those of the training job's validation "
                "rows, in bands at their deciles (points)."
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"party '{share.party}': the stability file is malformed ({exc!r}); it should "
            "be the stability.json a scorecard scoring job writes"
        ) from exc
    return ModelReport(
        title=f"Scorecard stability report: job {job_id or share.job_id}",
        party=share.party,
        role=share.role,
        score_psi=psi,
        column_stability=tuple(columns),
        notes=tuple(notes),
    )


def _stability(
    name: str, labels: t.Sequence[str], item: Mapping[str, t.Any], party: str
) -> ColumnStability:
    expected, actual, terms = item["expected_share"], item["actual_share"], item["terms"]
    if not len(labels) == len(expected) == len(actual) == len(terms):
        raise ValueError(
            f"{name}: {len(labels)} bins but {len(expected)} expected shares, "
            f"{len(actual)} actual shares and {len(terms)} terms"
        )
    bins = tuple(
        StabilityBin(label, float(e), float(a), float(v))
        for label, e, a, v in zip(labels, expected, actual, terms, strict=True)
    )
    return ColumnStability(name, bins, party)


def _band_labels(edges: t.Sequence[float]) -> list[str]:
    if not edges:
        return ["all"]
    inner = [f"{lo:.1f}–{hi:.1f}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return [f"< {edges[0]:.1f}", *inner, f"≥ {edges[-1]:.1f}"]


# ---- files ---------------------------------------------------------------------------------


def job_share(job_dir: Path, party: str) -> ScorecardShare:
    """The scorecard share a job of ``party`` trained, or (a predict job) scored with."""
    try:
        spec = JobSpec.from_json((job_dir / "spec.json").read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"party '{party}': {job_dir} is not a job folder (it has no spec.json); pass a "
            "job id from the party's state_dir/jobs or a job folder"
        ) from None
    me = next((p for p in spec.parties if p.name == party), None)
    if me is None:
        raise ConfigError(f"party '{party}' took no part in job '{spec.job_id}'")
    if me.role not in ("guest", "host"):
        raise ConfigError(
            f"party '{party}' is the {me.role} of job '{spec.job_id}': it holds no scorecard "
            "share, so it has no report (the guest and the hosts have one each)"
        )
    path = job_dir / SHARE_FILE if spec.task == "train" else model_path(job_dir, spec)
    found = share_format(path)
    if found is not None and found != SCORECARD_FORMAT:
        raise ConfigError(
            f"job '{spec.job_id}' of party '{party}' is not a scorecard job (its model "
            f"share {path} has format {found!r}); lianmo report writes scorecard reports"
        )
    if found is None and spec.task == "train" and not isinstance(spec.model, ScorecardSpec):
        kind = getattr(spec.model, "type", "hetero_lr")
        raise ConfigError(
            f"job '{spec.job_id}' of party '{party}' is a {kind} job, not a scorecard job; "
            "lianmo report writes scorecard reports"
        )
    return ScorecardShare.load(path, party=party, role=me.role)


def write_job_report(
    job_dir: Path, share: ScorecardShare, out: Path | None = None
) -> tuple[Path, Path]:
    """Write this party's report of the job in ``job_dir`` into ``out`` (default the job
    folder): a training job's if the folder holds ``model.json``, else a scoring job's
    from its ``stability.json``. Returns the paths of ``report.html`` and ``report.md``."""
    out = job_dir if out is None else out
    stability_file = job_dir / STABILITY_FILE
    if (job_dir / SHARE_FILE).exists():
        validation = job_dir / VALIDATION_FILE
        report = training_report(share, validation if share.role == "guest" else None)
    elif stability_file.exists():
        try:
            stability = json.loads(stability_file.read_bytes())
        except ValueError as exc:
            raise DataError(f"{stability_file} is not JSON: {exc}") from exc
        report = scoring_report(share, stability, job_id=job_dir.name)
    else:
        raise DataError(
            f"party '{share.party}': {job_dir} holds neither a model share ({SHARE_FILE}) "
            f"nor a scoring job's {STABILITY_FILE}: did the job finish?"
        )
    write_report(report, out, chart_dir=CHART_DIR)
    return out / "report.html", out / "report.md"
