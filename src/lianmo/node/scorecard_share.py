"""One party's share of a trained scorecard: its columns' bins and WOE, weights and points.

Every party keeps all of its own columns (:class:`~lianmo.models.woe_column.WoeColumn`:
bins, merge plan, WOE and IV per merged bin, and whether selection kept it), the LR
weights of the kept ones, in ``feature_names`` order, and the scaling, so it holds the
points table of its own characteristics (:meth:`ScorecardShare.points_table`). The
guest's share also holds the intercept (so the base points) and ``score_reference``: the
decile edges of the validation scores and the share of rows in each band, against which
later scoring jobs compute the score's PSI. A column's CSI reference is its training
share of rows per merged bin, in the column itself.
"""

from __future__ import annotations

import json
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from lianmo.models.scorecard import PointsTable, Scaling
from lianmo.models.woe_column import WoeColumn
from lianmo.node.share import ModelShare

SCORECARD_FORMAT = "lianmo.scorecard.share/v1"


@dataclass(frozen=True)
class ScoreReference:
    """The validation scores' decile edges (points) and the share of rows in each band."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    def to_dict(self) -> dict[str, t.Any]:
        return {"edges": list(self.edges), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, t.Any]) -> ScoreReference:
        return cls(tuple(float(v) for v in raw["edges"]), tuple(int(v) for v in raw["counts"]))


@dataclass(frozen=True)
class ScorecardShare(ModelShare):
    """What a party keeps after training a scorecard (see the module docstring)."""

    FORMAT: t.ClassVar[str] = SCORECARD_FORMAT
    KIND: t.ClassVar[str] = "scorecard"

    job_id: str
    party: str
    role: str
    dataset: str
    feature_names: tuple[str, ...]  # the kept columns, in the order of ``weights``
    weights: tuple[float, ...]
    intercept: float | None
    scaling: Scaling
    columns: tuple[WoeColumn, ...]  # every column of the party, kept or not
    reason_codes: int = 3
    score_reference: ScoreReference | None = None
    format: str = SCORECARD_FORMAT

    @property
    def kept(self) -> tuple[WoeColumn, ...]:
        """The kept columns, in ``feature_names`` order."""
        by_name = {c.name: c for c in self.columns}
        return tuple(by_name[n] for n in self.feature_names)

    @property
    def categories(self) -> Mapping[str, tuple[str, ...]]:
        """Per kept categorical column, the vocabulary to read scoring tables with."""
        return {c.name: c.vocabulary for c in self.kept if c.vocabulary is not None}

    def codes(self, X: np.ndarray) -> np.ndarray:
        """Merged bin per row and kept column of ``X`` (columns = ``feature_names``)."""
        X = np.asarray(X, dtype=np.float64)
        out = np.empty(X.shape, dtype=np.int64)
        for j, column in enumerate(self.kept):
            out[:, j] = column.codes(X[:, j])
        return out

    def woe(self, X: np.ndarray) -> np.ndarray:
        """WOE per row and kept column of ``X`` (columns = ``feature_names``)."""
        return self.woe_of_codes(self.codes(X))

    def woe_of_codes(self, codes: np.ndarray) -> np.ndarray:
        """WOE per row and kept column from :meth:`codes`."""
        out = np.empty(codes.shape, dtype=np.float64)
        for j, column in enumerate(self.kept):
            out[:, j] = column.woe_of_codes(codes[:, j])
        return out

    def partial_scores(self, X: np.ndarray) -> np.ndarray:
        """This party's part of the log-odds of the event for raw rows ``X``."""
        return self.partial_scores_of_codes(self.codes(X))

    def partial_scores_of_codes(self, codes: np.ndarray) -> np.ndarray:
        """As :meth:`partial_scores`, from :meth:`codes` (scoring bins the rows once)."""
        u = self.woe_of_codes(codes) @ np.asarray(self.weights, dtype=np.float64)
        return np.asarray(u + (self.intercept or 0.0), dtype=np.float64)

    def points_table(self) -> PointsTable:
        """Points per merged bin of each kept column; the base points on the guest's."""
        return PointsTable.build(
            self.feature_names,
            self.weights,
            [c.woe for c in self.kept],
            self.scaling,
            intercept=self.intercept,
        )

    def to_json(self) -> bytes:
        raw: dict[str, t.Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        raw["scaling"] = {"pdo": self.scaling.pdo, "odds": self.scaling.odds,
                          "points": self.scaling.points}  # fmt: skip
        raw["columns"] = [c.to_dict() for c in self.columns]
        ref = self.score_reference
        raw["score_reference"] = None if ref is None else ref.to_dict()
        return json.dumps(raw, indent=2, sort_keys=True).encode()

    @classmethod
    def from_raw(cls, raw: dict[str, t.Any]) -> ScorecardShare:
        intercept, ref = raw["intercept"], raw.get("score_reference")
        scaling = raw["scaling"]
        return cls(
            job_id=str(raw["job_id"]),
            party=str(raw["party"]),
            role=str(raw["role"]),
            dataset=str(raw["dataset"]),
            feature_names=tuple(str(v) for v in raw["feature_names"]),
            weights=tuple(float(v) for v in raw["weights"]),
            intercept=None if intercept is None else float(intercept),
            scaling=Scaling(
                float(scaling["pdo"]), float(scaling["odds"]), float(scaling["points"])
            ),  # fmt: skip
            columns=tuple(WoeColumn.from_dict(c) for c in raw["columns"]),
            reason_codes=int(raw["reason_codes"]),
            score_reference=None if ref is None else ScoreReference.from_dict(ref),
            format=str(raw["format"]),
        )

    def problem(self, party: str, role: str) -> str:
        owner = self.ownership_problem(party, role, self.format)
        if owner:
            return owner
        names = [c.name for c in self.columns]
        kept = [c.name for c in self.columns if c.kept]
        if len(set(names)) != len(names):
            return "a column appears twice"
        if sorted(kept) != sorted(self.feature_names):
            return "its kept columns and its feature_names differ"
        if len(self.weights) != len(self.feature_names):
            return f"{len(self.feature_names)} kept columns but {len(self.weights)} weights"
        if (role == "guest") != (self.intercept is not None):
            return "an intercept must be present exactly in the guest's share"
        return ""
