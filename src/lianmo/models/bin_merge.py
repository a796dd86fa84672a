"""Merge plans: which of a column's bins to pool, computed from per-bin counts only.

A column has ``n_value`` value bins (numeric: in value order; categorical: the kept
categories and "other") and possibly one missing bin after them. A :class:`MergePlan` is a
list of groups of those bins; merged bin ``g`` is group ``g``. Numeric groups are runs of
adjacent value bins in order; categorical groups any sets of value bins; the missing bin is
always a group of its own, last, and never pooled with value bins.

The guest computes a plan for a host column from the event and non-event counts it
decrypted and sends only the plan (groups of bin indices); the host checks it with
:meth:`MergePlan.check` and applies it to its own rows with :meth:`MergePlan.mapping`.

Two plans, composable with :meth:`MergePlan.then`:

* :func:`min_share_plan`: while some value group holds fewer than ``min_share`` of the
  rows, pool the smallest such group with a neighbour: for a numeric column the adjacent
  group whose event rate is closer (ties and empty groups: the smaller neighbour), for a
  categorical one the group with the closest event rate. The missing bin is exempt (it
  is never merged), so it may stay below ``min_share``.
* :func:`monotonic_plan` (numeric): pool adjacent groups until the event rate, and so the
  WOE, is strictly monotonic, by pool-adjacent-violators on the event rates weighted by
  rows: the least-squares monotonic fit, a simple stand-in for optbinning's MIP solver
  (which maximises IV under the same constraint and may keep a different set of bins).
  First, groups with no events or no non-events (whose WOE is 0 by convention and would
  break the order) are pooled into their neighbour. ``trend="auto"`` fits both directions
  and keeps the one with the smaller weighted squared error (ties: ascending).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import numpy as np

from lianmo.errors import ConfigError

__all__ = ["MergePlan", "best_trend", "column_plan", "min_share_plan", "monotonic_plan"]

Trend = t.Literal["ascending", "descending"]


@dataclass(frozen=True)
class MergePlan:
    """Groups of a column's bins; merged bin ``g`` pools the bins of ``groups[g]``."""

    groups: tuple[tuple[int, ...], ...]

    @classmethod
    def identity(cls, n_cells: int) -> MergePlan:
        """Every bin alone."""
        return cls(tuple((b,) for b in range(n_cells)))

    @property
    def n_cells(self) -> int:
        """Bins before merging."""
        return sum(len(g) for g in self.groups)

    def mapping(self) -> np.ndarray:
        """``mapping[b]``: the merged bin of old bin ``b``; ``mapping[bins]`` re-bins rows."""
        out = np.empty(self.n_cells, dtype=np.int64)
        for g, members in enumerate(self.groups):
            out[list(members)] = g
        return out

    def apply(self, counts: np.ndarray) -> np.ndarray:
        """Per-bin counts (or any additive per-bin values) of the merged bins."""
        counts = np.asarray(counts)
        if len(counts) != self.n_cells:
            raise ConfigError(f"merge plan over {self.n_cells} bins given {len(counts)} counts")
        return np.array([counts[list(g)].sum() for g in self.groups], dtype=counts.dtype)

    def then(self, later: MergePlan) -> MergePlan:
        """This plan followed by ``later`` (a plan over this plan's merged bins)."""
        if later.n_cells != len(self.groups):
            raise ConfigError(
                f"cannot chain a merge plan over {later.n_cells} bins after one giving "
                f"{len(self.groups)}"
            )
        return MergePlan(
            tuple(tuple(sorted(b for g in grp for b in self.groups[g])) for grp in later.groups)
        )

    def check(self, n_value: int, n_cells: int, categorical: bool) -> MergePlan:
        """Refuse a plan that is not a valid merge of these bins (as a host must, for a
        plan it received); returns the plan."""
        flat = sorted(b for g in self.groups for b in g)
        problem = ""
        if flat != list(range(n_cells)) or any(not g for g in self.groups):
            problem = f"its groups do not cover bins 0 .. {n_cells - 1} exactly once"
        elif n_cells > n_value and self.groups[-1] != (n_value,):
            problem = f"the missing bin {n_value} is not a group of its own, last"
        elif not categorical and any(
            list(g) != list(range(g[0], g[0] + len(g))) for g in self.groups
        ):
            problem = "a group of a numeric column is not a run of adjacent bins"
        elif not categorical and [g[0] for g in self.groups] != sorted(g[0] for g in self.groups):
            problem = "the groups of a numeric column are not in bin order"
        if problem:
            raise ConfigError(f"merge plan {self.to_data()} refused: {problem}")
        return self

    def to_data(self) -> list[list[int]]:
        """Plain data (JSON, or the message a guest sends a host)."""
        return [list(g) for g in self.groups]

    @classmethod
    def from_data(cls, data: t.Sequence[t.Sequence[int]]) -> MergePlan:
        return cls(tuple(tuple(int(b) for b in g) for g in data))


def min_share_plan(
    events: np.ndarray,
    non_events: np.ndarray,
    n_value: int,
    min_share: float,
    *,
    categorical: bool = False,
) -> MergePlan:
    """Pool value bins until each holds at least ``min_share`` of all rows (see the module
    docstring); ``events``/``non_events``: counts per bin, value bins then the missing bin."""
    ev, nev = _check_counts(events, non_events, n_value)
    if not 0 <= min_share < 1:
        raise ConfigError(f"min_share must be at least 0 and below 1, got {min_share}")
    floor = min_share * (ev.sum() + nev.sum())
    groups = [[b] for b in range(n_value)]
    while len(groups) > 1:
        rows = [_rows(ev, nev, g) for g in groups]
        small = [i for i in range(len(groups)) if rows[i] < floor]
        if not small:
            break
        i = min(small, key=lambda k: (rows[k], k))
        if categorical:
            others = [k for k in range(len(groups)) if k != i]
        else:
            others = [k for k in (i - 1, i + 1) if 0 <= k < len(groups)]
        j = min(others, key=lambda k: (_rate_gap(ev, nev, groups[i], groups[k]), rows[k], k))
        _pool(groups, i, j, keep_order=not categorical)
    return _plan(groups, len(ev), n_value)


def best_trend(events: np.ndarray, non_events: np.ndarray, n_value: int) -> Trend:
    """The direction of event rate over the value bins (pure and empty ones pooled first,
    as :func:`monotonic_plan` does) whose monotonic fit is closer."""
    ev, nev = _check_counts(events, non_events, n_value)
    return _best_trend(ev, nev, _pool_pure(ev, nev, n_value))


def _best_trend(ev: np.ndarray, nev: np.ndarray, groups: list[list[int]]) -> Trend:
    rows = np.array([_rows(ev, nev, g) for g in groups], dtype=np.float64)
    rate = np.nan_to_num([_rate(ev, nev, g) for g in groups])
    errors = {}
    for trend in ("ascending", "descending"):
        pooled_rate = {}
        for pooled in _pav(ev, nev, groups, trend):
            pooled_rate.update(dict.fromkeys(pooled, _rate(ev, nev, pooled)))
        fitted = np.nan_to_num([pooled_rate[g[0]] for g in groups])
        errors[trend] = float((rows * (rate - fitted) ** 2).sum())
    return "ascending" if errors["ascending"] <= errors["descending"] else "descending"


def monotonic_plan(
    events: np.ndarray,
    non_events: np.ndarray,
    n_value: int,
    trend: Trend | t.Literal["auto"] = "auto",
) -> MergePlan:
    """Pool adjacent value bins of a numeric column until the event rate (and WOE) is
    strictly monotonic in ``trend`` ("ascending" event rate = descending WOE)."""
    ev, nev = _check_counts(events, non_events, n_value)
    if trend not in ("auto", "ascending", "descending"):
        raise ConfigError(f"trend must be auto, ascending or descending, got {trend!r}")
    groups = _pool_pure(ev, nev, n_value)
    direction = _best_trend(ev, nev, groups) if trend == "auto" else trend
    return _plan(_pav(ev, nev, groups, direction), len(ev), n_value)


def _pool_pure(ev: np.ndarray, nev: np.ndarray, n_value: int) -> list[list[int]]:
    """Value bins with pure or empty groups pooled into a neighbour: their WOE is 0 by
    convention, which would break a monotonic order."""
    groups = [[b] for b in range(n_value)]
    while len(groups) > 1:
        pure = [i for i, g in enumerate(groups) if min(ev[g].sum(), nev[g].sum()) == 0]
        if not pure:
            break
        i = pure[0]
        j = min(
            (k for k in (i - 1, i + 1) if 0 <= k < len(groups)),
            key=lambda k: (_rate_gap(ev, nev, groups[i], groups[k]), _rows(ev, nev, groups[k]), k),
        )
        _pool(groups, i, j, keep_order=True)
    return groups


def _pav(ev: np.ndarray, nev: np.ndarray, groups: list[list[int]], trend: str) -> list[list[int]]:
    """Pool adjacent violators: merge neighbours until their rates strictly follow ``trend``."""
    sign = 1.0 if trend == "ascending" else -1.0
    out: list[list[int]] = []
    for g in groups:
        out.append(list(g))
        while len(out) > 1 and sign * (_rate(ev, nev, out[-1]) - _rate(ev, nev, out[-2])) <= 0:
            last = out.pop()
            out[-1].extend(last)
    return out


def _check_counts(
    events: np.ndarray, non_events: np.ndarray, n_value: int
) -> tuple[np.ndarray, ...]:
    ev = np.asarray(events, dtype=np.int64)
    nev = np.asarray(non_events, dtype=np.int64)
    if ev.ndim != 1 or ev.shape != nev.shape:
        raise ConfigError(f"event counts {ev.shape} and non-event counts {nev.shape} differ")
    if not 1 <= n_value <= len(ev) <= n_value + 1:
        raise ConfigError(
            f"{len(ev)} bins with {n_value} value bins: a column has its value bins and at "
            "most one missing bin"
        )
    return ev, nev


def _rows(ev: np.ndarray, nev: np.ndarray, group: list[int]) -> int:
    return int(ev[group].sum() + nev[group].sum())


def _rate(ev: np.ndarray, nev: np.ndarray, group: list[int]) -> float:
    rows = _rows(ev, nev, group)
    return float(ev[group].sum() / rows) if rows else float("nan")


def _rate_gap(ev: np.ndarray, nev: np.ndarray, a: list[int], b: list[int]) -> float:
    gap = abs(_rate(ev, nev, a) - _rate(ev, nev, b))
    return float("inf") if np.isnan(gap) else gap


def _pool(groups: list[list[int]], i: int, j: int, *, keep_order: bool) -> None:
    """Pool group ``i`` into group ``j`` (adjacent ones when ``keep_order``)."""
    merged = sorted(groups[i] + groups[j])
    lo, hi = min(i, j), max(i, j)
    groups[lo] = merged
    del groups[hi]
    if not keep_order:
        groups.sort(key=lambda g: g[0])


def _plan(groups: list[list[int]], n_cells: int, n_value: int) -> MergePlan:
    tail = [(n_value,)] if n_cells > n_value else []
    return MergePlan(tuple(tuple(g) for g in groups) + tuple(tail))


def column_plan(
    events: np.ndarray,
    non_events: np.ndarray,
    n_value: int,
    *,
    categorical: bool,
    min_share: float,
    monotonic: bool = False,
) -> MergePlan:
    """The scorecard's plan for one column: :func:`min_share_plan`, then (numeric columns,
    with ``monotonic``) :func:`monotonic_plan` on the pooled bins. The same function serves
    the guest's own columns and, from decrypted counts, a host's."""
    plan = min_share_plan(events, non_events, n_value, min_share, categorical=categorical)
    if monotonic and not categorical:
        n_groups = len(plan.groups) - (len(events) - n_value)
        later = monotonic_plan(plan.apply(events), plan.apply(non_events), n_groups)
        plan = plan.then(later)
    return plan


def value_groups_below(plan: MergePlan, counts: np.ndarray, n_value: int, min_share: float) -> bool:
    """True if a plan leaves a value group (not the missing bin) under ``min_share`` of the
    rows while it has more than one: what a host refuses, since the guest tells it each
    group's WOE, i.e. its event rate."""
    merged = plan.apply(np.asarray(counts, dtype=np.int64))
    n_groups = len(plan.groups) - (len(counts) - n_value)
    values = merged[:n_groups]
    return n_groups > 1 and bool((values < min_share * merged.sum() - 1e-9).any())
