"""Validation and stability tables of a binary score: Gini, lift, bands, calibration, PSI, CSI.

For the lift table, scores follow :mod:`lianmo.models.metrics`: higher means more likely an
event (label 1, bad), as a probability of default is; pass a points score negated (higher
points mean lower risk). Bands and PSI work on either orientation.

Deciles (:func:`lift_table`, :func:`calibration_table`) keep tied scores together: a row
goes to group ``floor(n_groups * r / n)``, ``r`` the number of rows ranked strictly before
it, so a run of ties lands in the group where it starts. With distinct scores every group
holds ``n / n_groups`` rows (give or take one); a run of ties longer than a group leaves the
next group empty, and empty groups are left out of the table (each row keeps its ``group``
number, so a gap shows).

Bands (:func:`score_bands`, :func:`psi`) are given by increasing interior edges
``e_0 < ... < e_{m-1}``: band ``i`` is ``[e_{i-1}, e_i)`` with ``e_{-1} = -inf`` and
``e_m = +inf``, so every later score falls in some band. :func:`decile_edges` takes the
distinct 10%, ..., 90% quantiles of a sample (the training scores, for PSI).

Stability: ``PSI = sum_b (a_b - e_b) ln(a_b / e_b)`` over the bins' shares of the
expected (training) sample ``e`` and the actual (later) sample ``a``. An empty bin would
make a term infinite; as is usual, a share of 0 is replaced by :data:`EMPTY_SHARE`
(0.0001) in that formula only (the table still shows the true 0). CSI is the same formula
on the bin counts of one characteristic. The usual reading: below 0.1 stable, 0.1 to 0.25
worth a look, above 0.25 shifted.
"""

from __future__ import annotations

import typing as t
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from lianmo.models.metrics import auc

__all__ = [
    "EMPTY_SHARE",
    "BandTable",
    "CalibrationTable",
    "LiftTable",
    "Stability",
    "calibration_table",
    "csi",
    "decile_edges",
    "gini",
    "lift_table",
    "psi",
    "psi_from_counts",
    "score_bands",
]

#: share used in place of an empty bin's 0 in the PSI/CSI formula
EMPTY_SHARE = 1e-4

Record = dict[str, t.Any]


def gini(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Gini coefficient ``2 AUC - 1`` (accuracy ratio); errors as :func:`metrics.auc`."""
    return 2.0 * auc(y_true, scores) - 1.0


class _Table:
    """Records of a table whose fields are equal-length arrays, plus derived columns."""

    def _columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def to_records(self) -> list[Record]:
        """One dict per row (NaN as None), ready for ``pandas.DataFrame(records)``."""
        cols = self._columns()
        n = len(next(iter(cols.values())))
        return [{k: _plain(v[i]) for k, v in cols.items()} for i in range(n)]


@dataclass(frozen=True, eq=False)
class LiftTable(_Table):
    """Lift and cumulative gain by score group; group 1 holds the highest scores."""

    group: np.ndarray
    min_score: np.ndarray
    max_score: np.ndarray
    count: np.ndarray
    events: np.ndarray

    def _columns(self) -> dict[str, np.ndarray]:
        rate = self.events / self.count
        overall = self.events.sum() / self.count.sum()
        cum_count = np.cumsum(self.count)
        cum_events = np.cumsum(self.events)
        return {
            **super()._columns(),
            "event_rate": rate,
            "lift": rate / overall,
            "cumulative_count": cum_count,
            "cumulative_events": cum_events,
            "cumulative_capture": cum_events / cum_events[-1],
            "cumulative_lift": (cum_events / cum_count) / overall,
        }


@dataclass(frozen=True, eq=False)
class CalibrationTable(_Table):
    """Mean predicted probability against observed event rate by group of predictions."""

    group: np.ndarray
    count: np.ndarray
    events: np.ndarray
    mean_predicted: np.ndarray

    def _columns(self) -> dict[str, np.ndarray]:
        return {**super()._columns(), "observed_rate": self.events / self.count}


@dataclass(frozen=True, eq=False)
class BandTable(_Table):
    """Count and bad rate per score band ``[lower, upper)``; an empty band's rate is None."""

    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray
    events: np.ndarray

    def _columns(self) -> dict[str, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(self.count > 0, self.events / np.maximum(self.count, 1), np.nan)
        return {**super()._columns(), "bad_rate": rate, "share": self.count / self.count.sum()}


@dataclass(frozen=True, eq=False)
class Stability(_Table):
    """PSI (or CSI) per bin and in ``value``; shares are the true ones, 0 for an empty bin."""

    expected_count: np.ndarray
    actual_count: np.ndarray
    expected_share: np.ndarray
    actual_share: np.ndarray
    contribution: np.ndarray
    value: float

    def _columns(self) -> dict[str, np.ndarray]:
        cols = super()._columns()
        del cols["value"]
        return {"bin": np.arange(self.expected_count.size), **cols}


def lift_table(y_true: np.ndarray, scores: np.ndarray, n_groups: int = 10) -> LiftTable:
    """Count, events, lift and cumulative capture by group (deciles), highest scores first."""
    y, s = _check_labelled(y_true, scores)
    if not y.any():
        raise ValueError("the rows hold no event (label 1); lift and capture need events")
    group = _groups(-s, n_groups)
    kept = np.unique(group)
    return LiftTable(
        group=kept + 1,
        min_score=np.array([s[group == g].min() for g in kept]),
        max_score=np.array([s[group == g].max() for g in kept]),
        count=np.bincount(group)[kept],
        events=np.bincount(group, weights=y, minlength=n_groups)[kept].astype(np.int64),
    )


def calibration_table(
    y_true: np.ndarray, probabilities: np.ndarray, n_groups: int = 10
) -> CalibrationTable:
    """Mean predicted probability and observed event rate by group, lowest predictions first."""
    y, p = _check_labelled(y_true, probabilities)
    if (p < 0).any() or (p > 1).any():
        raise ValueError("calibration needs predicted probabilities in [0, 1]")
    group = _groups(p, n_groups)
    kept = np.unique(group)
    count = np.bincount(group)[kept]
    return CalibrationTable(
        group=kept + 1,
        count=count,
        events=np.bincount(group, weights=y)[kept].astype(np.int64),
        mean_predicted=np.bincount(group, weights=p)[kept] / count,
    )


def decile_edges(scores: np.ndarray, n_groups: int = 10) -> np.ndarray:
    """The distinct interior quantiles ``1/n_groups, ..., (n_groups-1)/n_groups`` of ``scores``."""
    s = _check_scores(scores, "scores")
    _check_groups(n_groups)
    return np.unique(np.quantile(s, np.arange(1, n_groups) / n_groups))


def score_bands(
    y_true: np.ndarray, scores: np.ndarray, edges: Sequence[float] | np.ndarray | None = None
) -> BandTable:
    """Count and bad rate per band of ``edges`` (default: the scores' own deciles)."""
    y, s = _check_labelled(y_true, scores)
    e = decile_edges(s) if edges is None else _check_edges(edges)
    band = np.searchsorted(e, s, side="right")
    m = e.size + 1
    return BandTable(
        lower=np.r_[-np.inf, e],
        upper=np.r_[e, np.inf],
        count=np.bincount(band, minlength=m),
        events=np.bincount(band, weights=y, minlength=m).astype(np.int64),
    )


def psi_from_counts(expected_counts: np.ndarray, actual_counts: np.ndarray) -> Stability:
    """PSI of two samples' counts over the same bins (see the module docstring)."""
    e = np.asarray(expected_counts)
    a = np.asarray(actual_counts)
    if e.ndim != 1 or e.shape != a.shape or e.size < 2:
        raise ValueError(
            f"bin counts have shapes {e.shape} and {a.shape}; pass two 1-D arrays over the "
            "same (at least 2) bins"
        )
    if (e < 0).any() or (a < 0).any() or e.sum() == 0 or a.sum() == 0:
        raise ValueError("bin counts must be non-negative and each sample must have rows")
    e_share = e / e.sum()
    a_share = a / a.sum()
    e_safe = np.where(e_share > 0, e_share, EMPTY_SHARE)
    a_safe = np.where(a_share > 0, a_share, EMPTY_SHARE)
    terms = (a_safe - e_safe) * np.log(a_safe / e_safe)
    return Stability(e, a, e_share, a_share, terms, float(terms.sum()))


def psi(
    expected: np.ndarray, actual: np.ndarray, edges: Sequence[float] | np.ndarray | None = None
) -> Stability:
    """PSI of a score between the training sample ``expected`` and a later one ``actual``.

    ``edges``: the fixed bins; default the training scores' deciles (:func:`decile_edges`).
    """
    e_scores = _check_scores(expected, "expected scores")
    a_scores = _check_scores(actual, "actual scores")
    e = decile_edges(e_scores) if edges is None else _check_edges(edges)
    m = e.size + 1
    return psi_from_counts(
        np.bincount(np.searchsorted(e, e_scores, side="right"), minlength=m),
        np.bincount(np.searchsorted(e, a_scores, side="right"), minlength=m),
    )


def csi(expected_codes: np.ndarray, actual_codes: np.ndarray, n_bins: int) -> Stability:
    """CSI of one characteristic: PSI of its bin codes (``0 .. n_bins-1``) in two samples."""
    counts = []
    for name, codes in (("expected", expected_codes), ("actual", actual_codes)):
        c = np.asarray(codes)
        if c.ndim != 1 or (c.size and not np.issubdtype(c.dtype, np.integer)):
            raise ValueError(f"{name} bin codes must be a 1-D integer array")
        if c.size and (c.min() < 0 or c.max() >= n_bins):
            raise ValueError(
                f"{name} bin codes must lie in 0..{n_bins - 1}; bin both samples with the "
                "training bins"
            )
        counts.append(np.bincount(c, minlength=n_bins))
    return psi_from_counts(counts[0], counts[1])


def _groups(ascending_key: np.ndarray, n_groups: int) -> np.ndarray:
    """Group ``floor(n_groups * r / n)``, ``r`` = rows with a strictly smaller key."""
    _check_groups(n_groups)
    n = ascending_key.size
    before = np.searchsorted(np.sort(ascending_key), ascending_key, side="left")
    return (before * n_groups) // n


def _check_groups(n_groups: int) -> None:
    if n_groups < 2:
        raise ValueError(f"the number of groups must be at least 2, got {n_groups}")


def _check_scores(scores: np.ndarray, what: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D array, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return s


def _check_labelled(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = _check_scores(scores, "scores")
    y = np.asarray(y_true)
    if y.shape != s.shape:
        raise ValueError(f"y_true has shape {y.shape} and scores {s.shape}; pass equal lengths")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 and 1 (or False and True)")
    return y.astype(np.float64), s


def _check_edges(edges: Sequence[float] | np.ndarray) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size == 0 or not np.isfinite(e).all() or (np.diff(e) <= 0).any():
        raise ValueError(
            f"band edges must be finite and strictly increasing, got {e.tolist()}; give the "
            "interior cut points (the outer bands are open)"
        )
    return e


def _plain(value: t.Any) -> t.Any:
    """A numpy scalar as a Python int/float, NaN as None."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if np.isnan(value) else float(value)
    return value
