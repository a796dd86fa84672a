"""One party's share of a trained hetero LR model: its own weights and scaler, nothing else."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lianmo.errors import ConfigError
from lianmo.models.scaler import Standardizer

MODEL_FORMAT = "lianmo.hetero_lr.share/v1"


@dataclass(frozen=True, slots=True)
class LrShare:
    """What a party keeps after training; the guest's share also holds the intercept."""

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
    def load(cls, path: Path, *, party: str, role: str) -> LrShare:
        """Read and check a share file: right format, party and role, consistent sizes."""
        try:
            raw = json.loads(path.read_bytes())
            intercept = raw["intercept"]
            share = cls(
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
        except FileNotFoundError:
            raise ConfigError(
                f"party '{party}' has no model share at {path}: was model_job trained with "
                "this party, and did it succeed?"
            ) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"party '{party}': model share {path} is malformed: {exc}") from exc
        n = len(share.feature_names)
        if (
            share.format != MODEL_FORMAT
            or share.role != role
            or share.party != party
            or not len(share.weights) == len(share.mean) == len(share.scale) == n
            or (role == "guest") != (share.intercept is not None)
        ):
            raise ConfigError(
                f"party '{party}': {path} is not a consistent {role} share of a hetero LR "
                f"model for '{party}'"
            )
        return share
