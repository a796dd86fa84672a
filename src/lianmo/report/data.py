"""What a model report shows, as plain typed data: metrics, curves, WOE/IV and stability tables.

Every section is optional, so one renderer serves every holder: the guest's report has
the global performance (metrics, ROC, KS, lift/gain, score distribution, calibration,
score bands, score PSI) and its own columns; a host's report only its own columns' WOE/IV
and CSI. A report shows exactly what it is given: the caller passes only what its
holder already learned.

Labels: 1 = event (bad), 0 = non-event (good). Every type validates its shape once on
construction, and the tables have ``to_records()`` (a list of dicts) for a notebook's
DataFrame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "Calibration",
    "ColumnStability",
    "ColumnWoe",
    "DecileRow",
    "KsCurve",
    "Metric",
    "CharacteristicPoints",
    "ModelReport",
    "PointsBin",
    "RocCurve",
    "ScoreBand",
    "ScoreHistogram",
    "ScorecardPoints",
    "StabilityBin",
    "WoeBin",
]

Record = dict[str, str | int | float]


def _same_length(owner: str, **arrays: Sequence[float]) -> None:
    lengths = {name: len(values) for name, values in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{owner}: the arrays must have the same length, got {lengths}")
    if 0 in lengths.values():
        raise ValueError(f"{owner}: needs at least one point, got none")


@dataclass(frozen=True)
class Metric:
    """One line of the summary table: ``AUC 0.7712`` with an optional note."""

    name: str
    value: float
    note: str = ""


@dataclass(frozen=True)
class RocCurve:
    """False and true positive rates at every threshold, from (0, 0) to (1, 1)."""

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    auc: float

    def __post_init__(self) -> None:
        _same_length("RocCurve", fpr=self.fpr, tpr=self.tpr)


@dataclass(frozen=True)
class KsCurve:
    """Cumulative shares of events and non-events at or below each score.

    KS is the largest gap between the two, reached at ``ks_score``.
    """

    score: tuple[float, ...]
    event_share: tuple[float, ...]
    nonevent_share: tuple[float, ...]
    ks: float
    ks_score: float

    def __post_init__(self) -> None:
        _same_length(
            "KsCurve",
            score=self.score,
            event_share=self.event_share,
            nonevent_share=self.nonevent_share,
        )


@dataclass(frozen=True)
class DecileRow:
    """One decile of rows ranked from the riskiest (decile 1) down."""

    decile: int
    count: int
    events: int
    event_rate: float
    lift: float  # event rate of the decile / overall event rate
    cumulative_gain: float  # share of all events in deciles 1..this one


@dataclass(frozen=True)
class ScoreHistogram:
    """Rows per score bin, separately for events and non-events."""

    edges: tuple[float, ...]  # len(events) + 1 increasing edges
    events: tuple[int, ...]
    nonevents: tuple[int, ...]
    score_name: str = "score"

    def __post_init__(self) -> None:
        _same_length("ScoreHistogram", events=self.events, nonevents=self.nonevents)
        if len(self.edges) != len(self.events) + 1:
            raise ValueError(
                f"ScoreHistogram: {len(self.events)} bins need {len(self.events) + 1} edges, "
                f"got {len(self.edges)}"
            )


@dataclass(frozen=True)
class Calibration:
    """Mean predicted event probability against the observed event rate, per decile."""

    predicted: tuple[float, ...]
    observed: tuple[float, ...]
    count: tuple[int, ...]

    def __post_init__(self) -> None:
        _same_length(
            "Calibration", predicted=self.predicted, observed=self.observed, count=self.count
        )

    def to_records(self) -> list[Record]:
        return [
            {"decile": i, "count": c, "mean_predicted": p, "observed_rate": o}
            for i, (p, o, c) in enumerate(
                zip(self.predicted, self.observed, self.count, strict=True), 1
            )
        ]


@dataclass(frozen=True)
class ScoreBand:
    """Rows and event rate in one band of the score (``[lower, upper)``)."""

    label: str
    count: int
    events: int
    event_rate: float


@dataclass(frozen=True)
class WoeBin:
    """One bin of a column: its label (e.g. ``[30, 45)``, ``missing``), counts, WOE, IV.

    ``events``, ``event_rate`` and ``iv`` are None where the holder does not know them:
    a host holds its bins' rows and WOE, not their label counts (rendered as "—").
    """

    label: str
    count: int
    events: int | None
    event_rate: float | None
    woe: float
    iv: float | None


@dataclass(frozen=True)
class ColumnWoe:
    """A column's WOE/IV table; ``party`` names its holder.

    ``information_value`` is the column's IV when its bins do not carry their own terms
    (a host's); ``status`` whether a selection kept the column and, if not, why (its
    report then has a column-status table).
    """

    name: str
    bins: tuple[WoeBin, ...]
    party: str = ""
    information_value: float | None = None
    status: str = ""

    def __post_init__(self) -> None:
        if not self.bins:
            raise ValueError(f"ColumnWoe {self.name!r}: needs at least one bin, got none")
        if self.information_value is None and any(b.iv is None for b in self.bins):
            raise ValueError(
                f"ColumnWoe {self.name!r}: a bin has no IV term, so pass the column's "
                "information_value"
            )

    @property
    def iv(self) -> float:
        if self.information_value is not None:
            return self.information_value
        return math.fsum(b.iv for b in self.bins if b.iv is not None)

    def to_records(self) -> list[Record]:
        return [{"column": self.name, "party": self.party, **vars(b)} for b in self.bins]


@dataclass(frozen=True)
class PointsBin:
    """One bin of a characteristic in the scorecard: its label, WOE and points."""

    label: str
    woe: float
    points: float


@dataclass(frozen=True)
class CharacteristicPoints:
    """A kept column's scorecard row: its LR coefficient and points per bin."""

    name: str
    coefficient: float
    bins: tuple[PointsBin, ...]

    def __post_init__(self) -> None:
        if not self.bins:
            raise ValueError(
                f"CharacteristicPoints {self.name!r}: needs at least one bin, got none"
            )


@dataclass(frozen=True)
class ScorecardPoints:
    """The holder's part of the points table; ``base`` (the base points) at the guest only.

    ``scaling`` is printed above the table (e.g. ``600 points at odds 50:1, 20 points
    to double the odds``).
    """

    characteristics: tuple[CharacteristicPoints, ...]
    base: float | None = None
    scaling: str = ""

    def to_records(self) -> list[Record]:
        return [
            {
                "characteristic": c.name,
                "coefficient": c.coefficient,
                "bin": b.label,
                "woe": b.woe,
                "points": b.points,
            }
            for c in self.characteristics
            for b in c.bins
        ]


@dataclass(frozen=True)
class StabilityBin:
    """A bin's share of rows in the expected (training) and actual (later) sample."""

    label: str
    expected_share: float
    actual_share: float
    psi: float  # (actual - expected) * ln(actual / expected)


@dataclass(frozen=True)
class ColumnStability:
    """PSI of the score, or CSI of one column, with its per-bin terms."""

    name: str
    bins: tuple[StabilityBin, ...]
    party: str = ""

    def __post_init__(self) -> None:
        if not self.bins:
            raise ValueError(f"ColumnStability {self.name!r}: needs at least one bin, got none")

    @property
    def psi(self) -> float:
        return math.fsum(b.psi for b in self.bins)

    def to_records(self) -> list[Record]:
        return [{"name": self.name, "party": self.party, **vars(b)} for b in self.bins]


@dataclass(frozen=True)
class ModelReport:
    """Everything one holder's report shows; each section is shown only if given.

    ``role`` is ``guest`` or ``host`` (free text: it is printed). ``score_psi`` is the
    stability of the score between training and a later sample; ``column_stability``
    the CSI of the holder's own columns.
    """

    title: str
    party: str
    role: str
    metrics: tuple[Metric, ...] = ()
    roc: RocCurve | None = None
    ks: KsCurve | None = None
    deciles: tuple[DecileRow, ...] = ()
    score_histogram: ScoreHistogram | None = None
    calibration: Calibration | None = None
    score_bands: tuple[ScoreBand, ...] = ()
    columns: tuple[ColumnWoe, ...] = ()
    points: ScorecardPoints | None = None
    score_psi: ColumnStability | None = None
    column_stability: tuple[ColumnStability, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for kind, items in (("column", self.columns), ("stability", self.column_stability)):
            names = [c.name for c in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"ModelReport: {kind} names must be unique, repeated: {dupes}")
