"""A model's evaluation on labelled rows, with the metrics that suit its task.

Binary: AUC and KS; multi-class: accuracy, log loss, recall per class (``recall_k``, for
each class ``k`` with rows) and the confusion matrix; regression: RMSE, MAE and R².

Only the guest evaluates (it holds the labels). ``values`` is what it reports (the job's
``result.json``, its audit log's ``evaluation`` record, the coordinator's summary); the
confusion matrix is not among them: the guest keeps it in its own job folder.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

import numpy as np

from lianmo.models.metrics import auc, ks


class EvaluationError(ValueError):
    """The labels cannot be evaluated for this task (one class only, unknown classes)."""


@dataclass(frozen=True)
class Evaluation:
    """Metric name -> value (rounded to 6 digits) over ``rows`` rows.

    ``confusion`` (multi-class only): ``confusion[i][j]`` rows of true class ``i``
    predicted as class ``j``; not part of the JSON form (it stays with the guest).
    """

    values: t.Mapping[str, float]
    rows: int
    confusion: tuple[tuple[int, ...], ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, float | int]:
        return {**self.values, "rows": self.rows}

    @classmethod
    def from_json(cls, raw: t.Mapping[str, t.Any]) -> Evaluation:
        return cls({k: float(v) for k, v in raw.items() if k != "rows"}, int(raw["rows"]))


def evaluate(task: str, y: np.ndarray, scores: np.ndarray, n_classes: int = 2) -> Evaluation:
    """Metrics of ``scores`` (probabilities, class probabilities or predictions) on ``y``."""
    rows = len(y)
    if task == "binary":
        if len(np.unique(y)) < 2:
            raise EvaluationError(
                "the validation split holds only one class; use a larger validation share"
            )
        return Evaluation({"auc": _r(auc(y, scores)), "ks": _r(ks(y, scores))}, rows)
    if task == "multiclass":
        if not np.isin(y, np.arange(n_classes)).all():
            raise EvaluationError("labels outside the model's classes")
        return _multiclass(y.astype(np.int64), scores, n_classes)
    residual = scores - y
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else 0.0
    return Evaluation(
        {
            "rmse": _r(float(np.sqrt(np.mean(residual**2)))),
            "mae": _r(float(np.mean(np.abs(residual)))),
            "r2": _r(r2) if total > 0 else 0.0,
        },
        rows,
    )


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """``n_classes`` x ``n_classes`` counts: row ``i``, column ``j`` = rows of true class
    ``i`` predicted as ``j`` (scikit-learn's orientation)."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (y.astype(np.int64), predicted.astype(np.int64)), 1)
    return counts


def _multiclass(y: np.ndarray, scores: np.ndarray, n_classes: int) -> Evaluation:
    """Accuracy, log loss, recall of each class present in ``y``, and the confusion matrix."""
    rows = len(y)
    picked = scores[np.arange(rows), y]
    counts = confusion_matrix(y, scores.argmax(axis=1), n_classes)
    values = {
        "accuracy": _r(float(np.trace(counts)) / rows if rows else 0.0),
        "log_loss": _r(float(-np.mean(np.log(np.clip(picked, 1e-15, None))))),
    }
    for k, row in enumerate(counts):
        if row.sum() > 0:  # a class without rows has no recall (and JSON has no NaN)
            values[f"recall_{k}"] = _r(float(row[k]) / float(row.sum()))
    return Evaluation(values, rows, tuple(tuple(int(c) for c in row) for row in counts))


def _r(value: float) -> float:
    return round(value, 6)
