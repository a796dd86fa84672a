"""A party's scorecard tables for a notebook: WOE/IV, selection, points, lift, stability.

Each party reads its *own* job folders (``state_dir/jobs/JOB``); nothing here talks to
another party, and nothing shows more than the folder's owner already holds::

    import lianmo
    import pandas as pd

    tables = lianmo.ScorecardTables.open("broker-state/jobs/credit-scorecard")
    pd.DataFrame(tables.woe_iv())       # per own column and merged bin: rows, WOE, IV
    pd.DataFrame(tables.points())       # the points table of its own characteristics
    pd.DataFrame(tables.lift())         # guest: lift and gain by decile of validation rows
    later = lianmo.ScorecardTables.open("broker-state/jobs/credit-score-2027-01",
                                 model="broker-state/jobs/credit-scorecard")
    pd.DataFrame(later.stability())     # CSI per own column (and the score's PSI: guest)

Every method returns records (a list of dicts, one per row), which ``pandas.DataFrame``
takes as they are; the arrays behind them are in :attr:`ScorecardTables.share` and
:attr:`ScorecardTables.validation`. A method whose table this party does not hold (lift at
a host, stability of a training job) raises :class:`~lianmo.errors.ConfigError` saying so.
"""

from __future__ import annotations

import csv
import json
import typing as t
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lianmo.errors import ConfigError
from lianmo.models.validation import calibration_table, lift_table, score_bands
from lianmo.node.scorecard_job import STABILITY_FILE, VALIDATION_FILE
from lianmo.node.scorecard_share import ScorecardShare
from lianmo.node.share import SHARE_FILE

Record = dict[str, t.Any]


@dataclass(frozen=True)
class Validation:
    """The guest's validation rows of a training job: labels, probabilities, points."""

    ids: tuple[str, ...]
    y: np.ndarray
    probability: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class ScorecardTables:
    """One party's tables of one scorecard job (training, or a later scoring job)."""

    folder: Path
    share: ScorecardShare
    validation: Validation | None
    stability_data: t.Mapping[str, t.Any] | None

    @classmethod
    def open(cls, job: str | Path, *, model: str | Path | None = None) -> ScorecardTables:
        """The tables in job folder ``job``; for a scoring job, ``model`` is the folder of
        the training job whose share it scored with (default: ``job`` itself)."""
        folder = Path(job)
        if not folder.is_dir():
            raise ConfigError(f"{folder} is not a job folder (state_dir/jobs/JOB_ID)")
        share_path = Path(model or folder) / SHARE_FILE
        raw = _json(share_path)
        share = ScorecardShare.load(
            share_path, party=str(raw.get("party")), role=str(raw.get("role"))
        )
        stability = folder / STABILITY_FILE
        return cls(
            folder,
            share,
            _validation(folder / VALIDATION_FILE),
            _json(stability) if stability.exists() else None,
        )

    def woe_iv(self) -> list[Record]:
        """Per own column and merged bin: label, rows, events (guest), WOE, IV, status."""
        return [r for c in self.share.columns for r in c.to_records()]

    def selection(self) -> list[Record]:
        """Per own column: IV and whether selection kept it, or why not."""
        return [{"column": c.name, "iv": c.iv, "status": c.status} for c in self.share.columns]

    def points(self) -> list[Record]:
        """Per kept characteristic and bin: label, coefficient, WOE, points; the guest's
        base points as a row of characteristic ``(base)``."""
        table = self.share.points_table()
        labels = {c.name: c.labels for c in self.share.kept}
        out = [{**r, "label": labels[r["characteristic"]][r["bin"]]} for r in table.to_records()]
        if table.base is not None:
            out.append({"characteristic": "(base)", "bin": None, "label": "", "coefficient":
                        self.share.intercept, "woe": None, "points": table.base})  # fmt: skip
        return out

    def lift(self) -> list[Record]:
        """Guest: lift and cumulative gain by decile of validation probability."""
        v = self._validation("lift")
        return lift_table(v.y, v.probability).to_records()

    def calibration(self) -> list[Record]:
        """Guest: mean predicted probability and observed bad rate by decile."""
        v = self._validation("calibration")
        return calibration_table(v.y, v.probability).to_records()

    def score_bands(self, edges: t.Sequence[float] | None = None) -> list[Record]:
        """Guest: count and bad rate per band of points (default: the points' deciles)."""
        v = self._validation("score bands")
        return score_bands(v.y, v.score, edges).to_records()

    def stability(self) -> list[Record]:
        """A scoring job: CSI per own kept column, and (guest) the score's PSI, per bin."""
        if self.stability_data is None:
            raise ConfigError(
                f"{self.folder} holds no {STABILITY_FILE}: stability belongs to a scoring "
                "job (lianmo predict with the scorecard's model_job)"
            )
        out = []
        psi = self.stability_data.get("psi")
        rows = ([("(score)", psi)] if psi else []) + [
            (c["column"], c) for c in self.stability_data.get("csi", [])
        ]
        for name, item in rows:
            for b, (e, a, term) in enumerate(
                zip(item["expected_share"], item["actual_share"], item["terms"], strict=True)
            ):
                value = item["psi"] if name == "(score)" else item["csi"]
                out.append({"name": name, "bin": b, "expected_share": e, "actual_share": a,
                            "term": term, "total": value})  # fmt: skip
        return out

    def _validation(self, what: str) -> Validation:
        if self.validation is None:
            raise ConfigError(
                f"{self.folder} holds no {VALIDATION_FILE}: the {what} table is the guest's, "
                "from a training job (a host never sees labels or scores)"
            )
        return self.validation


def _json(path: Path) -> dict[str, t.Any]:
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: is this a scorecard job's folder?") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return raw


def _validation(path: Path) -> Validation | None:
    if not path.exists():
        return None
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return Validation(
        tuple(r["id"] for r in rows),
        np.array([float(r["label"]) for r in rows]),
        np.array([float(r["probability"]) for r in rows]),
        np.array([float(r["score"]) for r in rows]),
    )


__all__ = ["ScorecardTables", "Validation"]
