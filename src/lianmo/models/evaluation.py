"""A model's evaluation on labelled rows, with the metrics that suit its task.

Binary: AUC and KS; multi-class: accuracy and log loss; regression: RMSE, MAE and R².
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import numpy as np

from lianmo.models.metrics import auc, ks


class EvaluationError(ValueError):
    """The labels cannot be evaluated for this task (one class only, unknown classes)."""


@dataclass(frozen=True)
class Evaluation:
    """Metric name -> value (rounded to 6 digits) over ``rows`` rows."""

    values: t.Mapping[str, float]
    rows: int

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
        picked = scores[np.arange(rows), y.astype(np.int64)]
        accuracy = float(np.mean(scores.argmax(axis=1) == y))
        log_loss = float(-np.mean(np.log(np.clip(picked, 1e-15, None))))
        return Evaluation({"accuracy": _r(accuracy), "log_loss": _r(log_loss)}, rows)
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


def _r(value: float) -> float:
    return round(value, 6)
