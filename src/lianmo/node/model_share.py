"""One party's share of a trained hetero LR model: its own encoding, clipping, scaler, weights.

Three formats: ``v1`` for a party whose columns need no encoding (numbers, no missing cell
in training: the encoding is the identity) and no clipping, the file lianmo always wrote;
``v2`` adds ``"encoding"`` (:mod:`lianmo.models.encoding`): its categories' vocabulary,
kept levels and numeric medians; ``v3`` adds ``"clip"``, the bounds each encoded column
was clipped to before standardising (:class:`lianmo.models.scaler.QuantileClipper`), with
or without an encoding. ``v4`` is a one-vs-rest model of ``outputs`` classes: its
``weights`` hold one block of encoded-column weights per class (class 0 first) and the
guest's ``intercepts`` one per class, with or without encoding and clipping. Scoring
applies exactly the training transform; all four load.
"""

from __future__ import annotations

import json
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from lianmo.errors import DataError
from lianmo.models.encoding import Encoder, encoder_from_dict
from lianmo.models.scaler import QuantileClipper, Standardizer
from lianmo.node.share import ModelShare

MODEL_FORMAT = "lianmo.hetero_lr.share/v1"
#: a share that keeps an encoding (categories, missing values) of its party's columns
ENCODED_FORMAT = "lianmo.hetero_lr.share/v2"
#: a share that keeps the clipping bounds of its encoded columns (and maybe an encoding)
CLIPPED_FORMAT = "lianmo.hetero_lr.share/v3"
#: a one-vs-rest share: one weight vector (and, at the guest, one intercept) per class
CLASSES_FORMAT = "lianmo.hetero_lr.share/v4"


def share_format(
    encoding: Encoder | None, clip: QuantileClipper | None = None, outputs: int = 1
) -> str:
    """The format of a share with ``encoding`` and ``clip`` (None: the identity) and
    ``outputs`` linear models (1, or one per class)."""
    if outputs > 1:
        return CLASSES_FORMAT
    if clip is not None:
        return CLIPPED_FORMAT
    return MODEL_FORMAT if encoding is None else ENCODED_FORMAT


@dataclass(frozen=True, slots=True)
class LrShare(ModelShare):
    """What a party keeps after training; the guest's share also holds the intercept.

    ``feature_names`` are the table's columns it reads; ``encoding`` (None: the
    identity) turns them into the model's inputs, which ``clip`` (None: none) bounds and
    ``mean`` and ``scale`` standardise; ``weights`` belong to them, one per encoded column.
    """

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
    encoding: Encoder | None = None
    clip: QuantileClipper | None = None
    outputs: int = 1  # one-vs-rest: one linear model per class
    intercepts: tuple[float, ...] | None = None  # the guest's, one per class (outputs > 1)

    @classmethod
    def formats(cls) -> tuple[str, ...]:
        return (MODEL_FORMAT, ENCODED_FORMAT, CLIPPED_FORMAT, CLASSES_FORMAT)

    @property
    def weight_matrix(self) -> np.ndarray:
        """The weights as ``(encoded columns, outputs)``."""
        flat = np.asarray(self.weights, dtype=np.float64)
        return flat.reshape(self.outputs, -1).T

    @property
    def categories(self) -> Mapping[str, tuple[str, ...]]:
        """Per categorical column, the vocabulary to read scoring tables with."""
        return {} if self.encoding is None else self.encoding.categories

    def scaler(self) -> Standardizer:
        return Standardizer(mean=np.asarray(self.mean), scale=np.asarray(self.scale))

    def encode(self, X: np.ndarray) -> np.ndarray:
        """The model's inputs for raw feature rows ``X`` (encoded, not yet scaled)."""
        if self.encoding is not None:
            return self.encoding.transform(X)
        missing = np.isnan(np.asarray(X, dtype=np.float64)).any(axis=0)
        if missing.any():
            name = self.feature_names[int(np.flatnonzero(missing)[0])]
            raise DataError(
                f"column '{name}' has a missing cell, but model '{self.job_id}' was trained "
                f"on rows without missing values in this party's columns, so it has no rule "
                f"for them: fill the cell, or retrain on a table with missing cells"
            )
        return np.asarray(X, dtype=np.float64)

    def inputs(self, X: np.ndarray) -> np.ndarray:
        """The model's inputs for raw feature rows ``X``: encoded, clipped, standardised,
        exactly as training transformed this party's training rows."""
        encoded = self.encode(X)
        if self.clip is not None:
            encoded = self.clip.transform(encoded)
        return self.scaler().transform(encoded)

    def partial_scores(self, X: np.ndarray) -> np.ndarray:
        """This party's part of the linear predictor for raw feature rows ``X``: one
        value per row, or with several classes one per row and class, ``(rows, classes)``."""
        if self.outputs > 1:
            u = self.inputs(X) @ self.weight_matrix
            return np.asarray(u + np.asarray(self.intercepts or 0.0), dtype=np.float64)
        u = self.inputs(X) @ np.asarray(self.weights, dtype=np.float64)
        return np.asarray(u + (self.intercept or 0.0), dtype=np.float64)

    def to_json(self) -> bytes:
        raw: dict[str, t.Any] = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("encoding", "clip", "outputs", "intercepts")
        }
        if self.encoding is not None:  # a v1 share stays byte for byte what it was
            raw["encoding"] = self.encoding.to_dict()
        if self.clip is not None:
            raw["clip"] = self.clip.to_dict()
        if self.outputs > 1:  # one-vs-rest only: a binary share keeps its bytes
            raw["outputs"] = self.outputs
            raw["intercepts"] = self.intercepts
        return json.dumps(raw, indent=2, sort_keys=True).encode()

    @classmethod
    def from_raw(cls, raw: dict[str, t.Any]) -> LrShare:
        intercept = raw["intercept"]
        encoding = raw.get("encoding")
        clip = raw.get("clip")
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
            encoding=None if encoding is None else _encoder(encoding),
            clip=None if clip is None else _clipper(clip),
            outputs=int(raw.get("outputs", 1)),
            intercepts=(
                None
                if raw.get("intercepts") is None
                else tuple(float(v) for v in raw["intercepts"])
            ),
        )

    def problem(self, party: str, role: str) -> str:
        owner = self.ownership_problem(party, role, self.format)
        if owner:
            return owner
        if self.outputs < 1 or len(self.weights) % self.outputs:
            return f"{len(self.weights)} weights cannot be {self.outputs} classes' models"
        if self.format != share_format(self.encoding, self.clip, self.outputs):
            has = "with" if self.encoding else "without"
            clipped = "with" if self.clip else "without"
            return (
                f"format {self.format!r} {has} an encoding, {clipped} clipping bounds and "
                f"{self.outputs} model(s)"
            )
        n = len(self.feature_names)
        per_class = len(self.weights) // self.outputs
        if self.clip is not None and len(self.clip.lower) != per_class:
            return f"{len(self.clip.lower)} clipping bounds but {per_class} weights"
        if self.encoding is not None:
            if self.encoding.input_names != self.feature_names:
                return "its encoding reads other columns than its feature_names"
            width = len(self.encoding.output_names)
            if not per_class == len(self.mean) == len(self.scale) == width:
                return f"{width} encoded columns but {per_class} weights"
        elif not per_class == len(self.mean) == len(self.scale) == n:
            return f"{n} features but {per_class} weights"
        if self.outputs == 1:
            if self.intercepts is not None:
                return "per-class intercepts in a model of one class"
            if (role == "guest") != (self.intercept is not None):
                return "an intercept must be present exactly in the guest's share"
            return ""
        if self.intercept is not None:
            return "a single intercept in a one-vs-rest model"
        if role == "guest" and len(self.intercepts or ()) != self.outputs:
            return f"the guest's share needs {self.outputs} intercepts, one per class"
        if role != "guest" and self.intercepts is not None:
            return "intercepts belong in the guest's share only"
        return ""


def _clipper(raw: t.Any) -> QuantileClipper:
    if not isinstance(raw, dict):
        raise ValueError(f"'clip' is {type(raw).__name__}, expected lower and upper bounds")
    try:
        return QuantileClipper.from_dict(raw)
    except DataError as exc:  # the share loader reports ValueError as a malformed share
        raise ValueError(str(exc)) from exc


def _encoder(raw: t.Any) -> Encoder:
    try:
        return encoder_from_dict(raw)
    except DataError as exc:  # the share loader reports ValueError as a malformed share
        raise ValueError(str(exc)) from exc
