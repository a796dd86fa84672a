"""One party's share of a trained hetero LR model: its own weights and scaler, nothing else."""

from __future__ import annotations

import json
import typing as t
from dataclasses import asdict, dataclass

import numpy as np

from lianmo.models.scaler import Standardizer
from lianmo.node.share import ModelShare

MODEL_FORMAT = "lianmo.hetero_lr.share/v1"


@dataclass(frozen=True, slots=True)
class LrShare(ModelShare):
    """What a party keeps after training; the guest's share also holds the intercept."""

    FORMAT: t.ClassVar[str] = MODEL_FORMAT
    KIND: t.ClassVar[str] = "hetero LR"

    job_id: str
    party: str
    role: str
    dataset: str
    feature_names: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float | None
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    format: str = MODEL_FORMAT

    def scaler(self) -> Standardizer:
        return Standardizer(mean=np.asarray(self.mean), scale=np.asarray(self.scale))

    def partial_scores(self, X: np.ndarray) -> np.ndarray:
        """This party's part of the linear predictor for raw feature rows ``X``."""
        u = self.scaler().transform(X) @ np.asarray(self.weights, dtype=np.float64)
        return np.asarray(u + (self.intercept or 0.0), dtype=np.float64)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_raw(cls, raw: dict[str, t.Any]) -> LrShare:
        intercept = raw["intercept"]
        return cls(
            job_id=str(raw["job_id"]),
            party=str(raw["party"]),
            role=str(raw["role"]),
            dataset=str(raw["dataset"]),
            feature_names=tuple(str(v) for v in raw["feature_names"]),
            weights=tuple(float(v) for v in raw["weights"]),
            intercept=None if intercept is None else float(intercept),
            mean=tuple(float(v) for v in raw["mean"]),
            scale=tuple(float(v) for v in raw["scale"]),
            format=str(raw["format"]),
        )

    def problem(self, party: str, role: str) -> str:
        owner = self.ownership_problem(party, role, self.format)
        if owner:
            return owner
        n = len(self.feature_names)
        if not len(self.weights) == len(self.mean) == len(self.scale) == n:
            return f"{n} features but {len(self.weights)} weights"
        if (role == "guest") != (self.intercept is not None):
            return "an intercept must be present exactly in the guest's share"
        return ""
