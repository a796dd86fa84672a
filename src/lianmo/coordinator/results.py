"""Typed views of a job for the coordinator and the Python API: where it stands
(:class:`JobStatus`, the content of ``coordinator.json``) and what it produced
(:class:`JobMetrics`, the content of ``metrics.json``).

Each class converts to and from the JSON of its file, so what a program reads from a
:class:`lianmo.Job` is exactly what the output folder holds.
"""

from __future__ import annotations

import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lianmo.errors import ProtocolError
from lianmo.transport.control import JobStatusInfo

#: a job's states as the coordinator records them: ``starting`` until every party is
#: reachable, ``running`` while they work, then one of the three final states
JOB_STATES = ("starting", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})

Json = t.Mapping[str, object]


@dataclass(frozen=True, slots=True)
class PartyStatus:
    """One party's last reported state of a job (``unreachable`` if it did not answer)."""

    state: str
    phase: str = ""
    step: int = 0
    total_steps: int = 0
    checkpoint_round: int = -1
    detail: str = ""
    error: str = ""
    error_kind: str = ""

    @classmethod
    def from_info(cls, info: JobStatusInfo) -> PartyStatus:
        return cls(
            state=info.state,
            phase=info.phase,
            step=info.step,
            total_steps=info.total_steps,
            checkpoint_round=info.checkpoint_round,
            detail=info.detail,
            error=info.error,
            error_kind=info.error_kind,
        )

    def to_info(self, job_id: str, party: str) -> JobStatusInfo:
        """The status record :mod:`lianmo.coordinator.run` and the progress view work on."""
        return JobStatusInfo(
            job_id=job_id,
            party=party,
            state=self.state,
            phase=self.phase,
            step=self.step,
            total_steps=self.total_steps,
            error=self.error,
            error_kind=self.error_kind,
            detail=self.detail,
            checkpoint_round=self.checkpoint_round,
        )

    def to_json(self) -> dict[str, str | int]:
        return {
            "state": self.state,
            "phase": self.phase,
            "step": self.step,
            "total_steps": self.total_steps,
            "checkpoint_round": self.checkpoint_round,
            "detail": self.detail,
            "error": self.error,
            "error_kind": self.error_kind,
        }

    @classmethod
    def from_json(cls, raw: Json) -> PartyStatus:
        return cls(
            state=str(raw.get("state", "unknown")),
            phase=str(raw.get("phase") or ""),
            step=_int(raw.get("step"), 0),
            total_steps=_int(raw.get("total_steps"), 0),
            checkpoint_round=_int(raw.get("checkpoint_round"), -1),
            detail=str(raw.get("detail") or ""),
            error=str(raw.get("error") or ""),
            error_kind=str(raw.get("error_kind") or ""),
        )


@dataclass(frozen=True, slots=True)
class JobStatus:
    """Where a job stands: its state (one of :data:`JOB_STATES`) and each party's status.

    ``last_common_round`` is the last round every data party checkpointed (-1: none), from
    which ``lianmo job resume`` goes on. ``failed_party`` and ``error`` say why a job
    stopped; ``updated`` is when this was recorded (seconds since the epoch).
    """

    job_id: str
    state: str
    parties: Mapping[str, PartyStatus] = field(default_factory=dict)
    last_common_round: int = -1
    failed_party: str | None = None
    error: str | None = None
    updated: float = 0.0

    @property
    def finished(self) -> bool:
        """True once the job can no longer change state (succeeded, failed, cancelled)."""
        return self.state in FINAL_STATES

    def to_json(self) -> dict[str, object]:
        """The content of ``coordinator.json``."""
        return {
            "job_id": self.job_id,
            "state": self.state,
            "updated": round(self.updated, 3),
            "last_common_round": self.last_common_round,
            "parties": {name: p.to_json() for name, p in self.parties.items()},
            "failed_party": self.failed_party,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, raw: Json) -> JobStatus:
        parties = raw.get("parties")
        return cls(
            job_id=str(raw.get("job_id", "")),
            state=str(raw.get("state", "unknown")),
            parties={
                str(name): PartyStatus.from_json(p)
                for name, p in (parties.items() if isinstance(parties, Mapping) else ())
                if isinstance(p, Mapping)
            },
            last_common_round=_int(raw.get("last_common_round"), -1),
            failed_party=_str_or_none(raw.get("failed_party")),
            error=_str_or_none(raw.get("error")),
            updated=float(t.cast(float, raw.get("updated") or 0.0)),
        )


def state_of_parties(parties: Mapping[str, PartyStatus]) -> tuple[str, str | None]:
    """A job's state from its parties' (and the failed party, if any): ``failed`` if one
    failed, else ``cancelled`` if one was cancelled, ``succeeded`` if all succeeded, else
    ``running``."""
    failed = next((name for name, p in parties.items() if p.state == "failed"), None)
    if failed is not None:
        return "failed", failed
    if any(p.state == "cancelled" for p in parties.values()):
        return "cancelled", None
    if parties and all(p.state == "succeeded" for p in parties.values()):
        return "succeeded", None
    return "running", None


# ---- metrics ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BinaryMetrics:
    """A binary model's evaluation: AUC and KS over ``rows`` labelled rows."""

    rows: int
    auc: float
    ks: float
    extra: Mapping[str, float] = field(default_factory=dict)  # metrics added later


@dataclass(frozen=True, slots=True)
class MulticlassMetrics:
    """A multi-class model's evaluation: accuracy and log loss over ``rows`` rows."""

    rows: int
    accuracy: float
    log_loss: float
    extra: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RegressionMetrics:
    """A regression model's evaluation: RMSE, MAE and R² over ``rows`` rows."""

    rows: int
    rmse: float
    mae: float
    r2: float
    extra: Mapping[str, float] = field(default_factory=dict)


ModelMetrics = BinaryMetrics | MulticlassMetrics | RegressionMetrics
_KINDS: tuple[tuple[type[ModelMetrics], tuple[str, ...]], ...] = (
    (BinaryMetrics, ("auc", "ks")),
    (MulticlassMetrics, ("accuracy", "log_loss")),
    (RegressionMetrics, ("rmse", "mae", "r2")),
)


def model_metrics_from_json(raw: Json) -> ModelMetrics:
    """The evaluation a guest reported (``{"auc": .., "ks": .., "rows": ..}`` and so on)."""
    for kind, names in _KINDS:
        if all(name in raw for name in names):
            values = {name: float(t.cast(float, raw[name])) for name in names}
            extra = {
                k: float(t.cast(float, v)) for k, v in raw.items() if k not in (*names, "rows")
            }
            return kind(rows=_int(raw.get("rows"), 0), extra=extra, **values)
    raise ProtocolError(
        f"the guest reported metrics {sorted(raw)}, which match no kind of model lianmo "
        "knows (binary: auc, ks; multiclass: accuracy, log_loss; regression: rmse, mae, r2); "
        "the coordinator and the guest's node may run different lianmo versions"
    )


def model_metrics_to_json(metrics: ModelMetrics) -> dict[str, float | int]:
    names = next(names for kind, names in _KINDS if isinstance(metrics, kind))
    return {
        **{name: t.cast(float, getattr(metrics, name)) for name in names},
        **metrics.extra,
        "rows": metrics.rows,
    }


@dataclass(frozen=True, slots=True)
class PartySummary:
    """What one party reported at the end: timings, traffic and its model share's digest."""

    role: str
    phase_seconds: Mapping[str, float] = field(default_factory=dict)
    protocol_seconds: Mapping[str, float] = field(default_factory=dict)
    protocol_counts: Mapping[str, int] = field(default_factory=dict)
    messages_sent: int | None = None
    bytes_sent: int | None = None
    messages_received: int | None = None
    bytes_received: int | None = None
    model_digest: str | None = None
    audit_head: str | None = None
    # a scorecard's: column counts (and the guest's Gini); a scoring job's stability
    scorecard: Mapping[str, object] | None = None
    stability: Mapping[str, object] | None = None

    def to_json(self) -> dict[str, object]:
        extra = {
            k: dict(v)
            for k, v in (("scorecard", self.scorecard), ("stability", self.stability))
            if v is not None
        }
        return extra | {
            "role": self.role,
            "phase_seconds": dict(self.phase_seconds),
            "protocol_seconds": dict(self.protocol_seconds),
            "protocol_counts": dict(self.protocol_counts),
            "messages_sent": self.messages_sent,
            "bytes_sent": self.bytes_sent,
            "messages_received": self.messages_received,
            "bytes_received": self.bytes_received,
            "model_digest": self.model_digest,
            "audit_head": self.audit_head,
        }

    @classmethod
    def from_json(cls, raw: Json) -> PartySummary:
        return cls(
            role=str(raw.get("role") or ""),
            phase_seconds=_floats(raw.get("phase_seconds")),
            protocol_seconds=_floats(raw.get("protocol_seconds")),
            protocol_counts={k: int(v) for k, v in _floats(raw.get("protocol_counts")).items()},
            messages_sent=_int_or_none(raw.get("messages_sent")),
            bytes_sent=_int_or_none(raw.get("bytes_sent")),
            messages_received=_int_or_none(raw.get("messages_received")),
            bytes_received=_int_or_none(raw.get("bytes_received")),
            model_digest=_str_or_none(raw.get("model_digest")),
            audit_head=_str_or_none(raw.get("audit_head")),
            scorecard=_mapping_or_none(raw.get("scorecard")),
            stability=_mapping_or_none(raw.get("stability")),
        )


def _mapping_or_none(raw: object) -> Mapping[str, object] | None:
    return dict(raw) if isinstance(raw, Mapping) else None


@dataclass(frozen=True, slots=True)
class JobMetrics:
    """The results of a finished job: the content of ``metrics.json``, typed.

    Fields a job of this task and model does not report are None: ``validation`` (the
    guest's evaluation of a training job), ``scored_metrics`` (a scoring job's, when the
    scored rows carry labels, in the file's ``metrics`` key), the losses of a training
    job (per epoch and per round for logistic regression, per round for SecureBoost).
    """

    job_id: str
    task: str
    wall_seconds: float
    parties: Mapping[str, PartySummary]
    validation: ModelMetrics | None = None
    scored_metrics: ModelMetrics | None = None
    scored: int | None = None
    aligned: int | None = None
    train_rows: int | None = None
    validation_rows: int | None = None
    loss: tuple[float, ...] | None = None
    loss_per_round: tuple[float, ...] | None = None
    epoch_seconds: tuple[float, ...] | None = None
    validation_loss: tuple[float, ...] | None = None
    trees: int | None = None
    best_rounds: int | None = None
    # hetero LR with model.label_protection: the guest's epsilon, delta and noise sigma
    label_protection: Mapping[str, float] | None = None

    def to_json(self) -> dict[str, object]:
        """The content of ``metrics.json`` (keys a job does not report are left out)."""
        out: dict[str, object] = {
            "job_id": self.job_id,
            "task": self.task,
            "wall_seconds": self.wall_seconds,
        }
        for key, value in _optional_fields(self):
            if isinstance(value, BinaryMetrics | MulticlassMetrics | RegressionMetrics):
                value = model_metrics_to_json(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out["metrics" if key == "scored_metrics" else key] = value
        out["parties"] = {name: p.to_json() for name, p in self.parties.items()}
        return out

    @classmethod
    def from_json(cls, raw: Json) -> JobMetrics:
        """Read what :meth:`to_json` wrote (``metrics.json``)."""
        parties = raw.get("parties")
        return cls(
            job_id=str(raw["job_id"]),
            task=str(raw.get("task", "train")),
            wall_seconds=float(t.cast(float, raw.get("wall_seconds", 0.0))),
            parties={
                str(name): PartySummary.from_json(p)
                for name, p in (parties.items() if isinstance(parties, Mapping) else ())
                if isinstance(p, Mapping)
            },
            validation=_evaluation(raw.get("validation")),
            scored_metrics=_evaluation(raw.get("metrics")),
            scored=_int_or_none(raw.get("scored")),
            aligned=_int_or_none(raw.get("aligned")),
            train_rows=_int_or_none(raw.get("train_rows")),
            validation_rows=_int_or_none(raw.get("validation_rows")),
            loss=_tuple(raw.get("loss")),
            loss_per_round=_tuple(raw.get("loss_per_round")),
            epoch_seconds=_tuple(raw.get("epoch_seconds")),
            validation_loss=_tuple(raw.get("validation_loss")),
            trees=_int_or_none(raw.get("trees")),
            best_rounds=_int_or_none(raw.get("best_rounds")),
            label_protection=_floats(raw.get("label_protection")) or None,
        )


@dataclass(frozen=True, slots=True)
class JobResult:
    """A job that succeeded: its metrics and where its output folder is."""

    job_id: str
    output: Path
    metrics: JobMetrics

    @property
    def metrics_path(self) -> Path:
        return self.output / "metrics.json"


_OPTIONAL = (
    "validation",
    "scored_metrics",
    "scored",
    "aligned",
    "train_rows",
    "validation_rows",
    "loss",
    "loss_per_round",
    "epoch_seconds",
    "validation_loss",
    "trees",
    "best_rounds",
    "label_protection",
)


def _optional_fields(metrics: JobMetrics) -> t.Iterator[tuple[str, object]]:
    for key in _OPTIONAL:
        value = getattr(metrics, key)
        if value is not None:
            yield key, value


def _evaluation(raw: object) -> ModelMetrics | None:
    return model_metrics_from_json(raw) if isinstance(raw, Mapping) else None


def _tuple(raw: object) -> tuple[float, ...] | None:
    if not isinstance(raw, list | tuple):
        return None
    return tuple(float(v) for v in raw)


def _floats(raw: object) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): float(v) for k, v in raw.items()}


def _int(raw: object, default: int) -> int:
    return int(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else default


def _int_or_none(raw: object) -> int | None:
    return int(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None


def _str_or_none(raw: object) -> str | None:
    return None if raw is None else str(raw)
