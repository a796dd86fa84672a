"""Boosting objectives: first and second derivatives of the loss, start scores, outputs.

Raw scores ``F`` have one column per output: 1 for binary and regression, ``K`` for
multi-class softmax (one tree per class per round). Derivatives are taken with respect
to ``F`` per row, optionally times a per-row weight (class weights).

- ``binary``: logistic loss, ``g = p - y``, ``h = p (1 - p)``, ``p = sigmoid(F)``.
- ``multiclass``: softmax cross-entropy, ``g_k = p_k - [y = k]``, ``h_k = p_k (1 - p_k)``
  (the diagonal of the Hessian).
- ``regression``: squared error ``(F - y)**2 / 2``, ``g = F - y``, ``h = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lianmo.errors import ConfigError, DataError
from lianmo.models.logistic import sigmoid

__all__ = ["OBJECTIVES", "Objective"]

OBJECTIVES = ("binary", "multiclass", "regression")
_EPS = 1e-15


@dataclass(frozen=True, slots=True)
class Objective:
    """One of :data:`OBJECTIVES`; ``n_classes`` is the class count (1 for regression)."""

    name: str
    n_classes: int = 2

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {list(OBJECTIVES)}, got {self.name!r}")
        if self.name == "binary" and self.n_classes != 2:
            raise ConfigError("a binary objective has exactly 2 classes")
        if self.name == "multiclass" and self.n_classes < 2:
            raise ConfigError(f"multiclass needs at least 2 classes, got {self.n_classes}")

    @classmethod
    def for_labels(cls, name: str, y: np.ndarray, *, where: str) -> Objective:
        """The objective ``name`` for training labels ``y``; checks they suit it.

        ``where`` names the party and file in errors. Multi-class labels must be the
        integers ``0 .. K-1``; binary labels 0 and 1, both present.
        """
        y = np.asarray(y, dtype=np.float64)
        if name == "regression":
            return cls("regression", 1)
        if name not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {list(OBJECTIVES)}, got {name!r}")
        bad = ~np.isin(y, np.arange(256)) if name == "multiclass" else ~np.isin(y, (0.0, 1.0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            allowed = "integers 0, 1, ..., K-1" if name == "multiclass" else "0 or 1"
            raise DataError(
                f"{where}: label {float(y[row]):g} in aligned row {row} does not suit a {name} "
                f"objective; labels must be {allowed}"
            )
        classes = np.unique(y)
        if len(classes) < 2:
            raise DataError(f"{where}: the training labels hold only one class")
        if name == "binary":
            return cls("binary", 2)
        return cls("multiclass", int(classes.max()) + 1)

    @property
    def outputs(self) -> int:
        """Raw score columns: trees per boosting round."""
        return self.n_classes if self.name == "multiclass" else 1

    def init_score(self, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The start score per output, from the weighted label distribution."""
        w = weights / weights.sum()
        if self.name == "regression":
            return np.array([float(np.dot(w, y))])
        if self.name == "binary":
            p = float(np.clip(np.dot(w, y), 1e-6, 1 - 1e-6))
            return np.array([np.log(p / (1 - p))])
        prior = np.array([w[y == k].sum() for k in range(self.n_classes)])
        logp = np.log(np.clip(prior, 1e-6, None))
        return np.asarray(logp - logp.mean())

    def grad_hess(self, y: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(g, h)``, each of shape ``F.shape``."""
        if self.name == "regression":
            return F - y[:, None], np.ones_like(F)
        p = self.predict_proba(F)
        if self.name == "binary":
            p = p[:, None]
            return p - y[:, None], p * (1.0 - p)
        onehot = np.eye(self.n_classes)[y.astype(np.int64)]
        return p - onehot, p * (1.0 - p)

    def predict_proba(self, F: np.ndarray) -> np.ndarray:
        """Binary: P(y = 1) per row; multi-class: row-wise softmax; regression: F."""
        if self.name == "regression":
            return np.asarray(F[:, 0], dtype=np.float64)
        if self.name == "binary":
            return np.asarray(sigmoid(F[:, 0]), dtype=np.float64)
        z = F - F.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)

    def loss(self, y: np.ndarray, F: np.ndarray) -> float:
        """Mean loss: log loss, multi-class log loss, or mean squared error."""
        if self.name == "regression":
            return float(np.mean((F[:, 0] - y) ** 2))
        p = self.predict_proba(F)
        if self.name == "binary":
            p = np.clip(p, _EPS, 1 - _EPS)
            return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        picked = p[np.arange(len(y)), y.astype(np.int64)]
        return float(-np.mean(np.log(np.clip(picked, _EPS, None))))

    def row_weights(
        self, y: np.ndarray, class_weights: tuple[float, ...] | str | None
    ) -> np.ndarray:
        """Per-row weights: 1, the given weight per class, or ``"balanced"``."""
        if class_weights is None or self.name == "regression":
            if class_weights is not None:
                raise ConfigError("class_weights apply to binary and multiclass objectives only")
            return np.ones(len(y))
        labels = y.astype(np.int64)
        if class_weights == "balanced":
            counts = np.bincount(labels, minlength=self.n_classes).astype(np.float64)
            per_class = len(y) / (self.n_classes * np.maximum(counts, 1.0))
        else:
            per_class = np.asarray(class_weights, dtype=np.float64)
            if len(per_class) != self.n_classes:
                raise ConfigError(
                    f"class_weights has {len(per_class)} entries but the labels have "
                    f"{self.n_classes} classes; give one weight per class, lowest label first"
                )
        return np.asarray(per_class[labels], dtype=np.float64)
