"""Weight of evidence (WOE) and information value (IV) of a column's bins, from counts.

Labels are 1 = event (bad, default) and 0 = non-event (good). For bin ``b`` of a column
with ``E`` events and ``N`` non-events in all,

    WOE_b = ln( (non-events_b / N) / (events_b / E) )          (higher WOE = lower risk)
    IV_b  = (non-events_b / N - events_b / E) * WOE_b,          IV = sum_b IV_b

as optbinning 0.21's ``BinningTable`` defines them. A bin with no events or no non-events
(an empty bin too) gets WOE 0, IV contribution 0 and event rate 0, as optbinning's table
does, rather than an infinite WOE.

Everything here takes per-bin counts, never rows: the guest computes a host column's table
from the event and non-event counts it decrypted. The bins are those of
:class:`~lianmo.models.binning.QuantileBins` (value bins, then the missing bin; for a
categorical column the kept categories, "other", then the missing bin), possibly merged by
a :class:`~lianmo.models.bin_merge.MergePlan`.

:func:`woe_transform` maps rows' bin indices to WOE values. The missing bin's rows get the
missing bin's own WOE (optbinning's ``metric_missing="empirical"``); a bin index the table
has no bin for gets 0, which is the WOE optbinning gives an unknown category (the WOE of
the overall event rate); so does a bin that was empty (or pure) at fit, by the rule above.
Unseen categories of a categorical column already fall in its "other" bin.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import numpy as np

from lianmo.errors import ConfigError, DataError

__all__ = ["WoeTable", "bin_counts", "bin_labels", "scorecard_woe", "woe_transform"]


@dataclass(frozen=True, eq=False)
class WoeTable:
    """One column's bins with their event and non-event counts, WOE and IV.

    Build it with :meth:`from_counts`; ``woe``, ``iv_bins`` and ``iv`` are derived.
    ``labels[b]`` names bin ``b`` (see :func:`bin_labels`); ``missing_bin`` is the index of
    the missing bin, or None when the column had no missing training cells.
    """

    column: str
    labels: tuple[str, ...]
    events: np.ndarray
    non_events: np.ndarray
    missing_bin: int | None = None

    def __post_init__(self) -> None:
        events = np.asarray(self.events, dtype=np.int64)
        non_events = np.asarray(self.non_events, dtype=np.int64)
        n = len(self.labels)
        if events.shape != (n,) or non_events.shape != (n,):
            raise ConfigError(
                f"WOE table of column {self.column!r}: {n} bin labels but "
                f"{events.shape} event and {non_events.shape} non-event counts; "
                "give one count of each per bin"
            )
        if (events < 0).any() or (non_events < 0).any():
            raise ConfigError(f"WOE table of column {self.column!r}: a negative count")
        if self.missing_bin is not None and not 0 <= self.missing_bin < n:
            raise ConfigError(
                f"WOE table of column {self.column!r}: missing bin {self.missing_bin} "
                f"is not one of its {n} bins"
            )
        if events.sum() == 0 or non_events.sum() == 0:
            which = "events" if events.sum() == 0 else "non-events"
            raise DataError(
                f"column {self.column!r}: the training rows have no {which}, so weight of "
                "evidence is undefined; train on rows with both label values"
            )
        events.setflags(write=False)
        non_events.setflags(write=False)
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "non_events", non_events)

    @classmethod
    def from_counts(
        cls,
        column: str,
        events: t.Sequence[int] | np.ndarray,
        non_events: t.Sequence[int] | np.ndarray,
        labels: t.Sequence[str] | None = None,
        missing_bin: int | None = None,
    ) -> WoeTable:
        """The table of per-bin counts; labels default to the bin indices."""
        n = len(events)
        names = tuple(labels) if labels is not None else tuple(str(b) for b in range(n))
        return cls(column, names, np.asarray(events), np.asarray(non_events), missing_bin)

    @property
    def counts(self) -> np.ndarray:
        """Rows per bin."""
        return np.asarray(self.events + self.non_events)

    @property
    def informative(self) -> np.ndarray:
        """Bins with both events and non-events: the only ones with a nonzero WOE."""
        return (self.events > 0) & (self.non_events > 0)

    @property
    def event_rate(self) -> np.ndarray:
        """Events / rows per bin; 0 where the bin is not :attr:`informative`."""
        out = np.zeros(len(self.labels))
        ok = self.informative
        out[ok] = self.events[ok] / self.counts[ok]
        return out

    @property
    def woe(self) -> np.ndarray:
        """WOE per bin; 0 where the bin is not :attr:`informative`."""
        out = np.zeros(len(self.labels))
        ok = self.informative
        share_non = self.non_events[ok] / self.non_events.sum()
        share_ev = self.events[ok] / self.events.sum()
        out[ok] = np.log(share_non / share_ev)
        return out

    @property
    def iv_bins(self) -> np.ndarray:
        """Each bin's IV contribution (0 where the bin is not :attr:`informative`)."""
        share_non = self.non_events / self.non_events.sum()
        share_ev = self.events / self.events.sum()
        return np.where(self.informative, (share_non - share_ev) * self.woe, 0.0)

    @property
    def iv(self) -> float:
        """The column's information value."""
        return float(self.iv_bins.sum())

    def to_records(self) -> list[dict[str, t.Any]]:
        """One dict per bin (for a data frame): column, bin, label, counts, rate, WOE, IV."""
        rows, rate, woe, iv = self.counts, self.event_rate, self.woe, self.iv_bins
        return [
            {
                "column": self.column,
                "bin": b,
                "label": self.labels[b],
                "missing": b == self.missing_bin,
                "count": int(rows[b]),
                "events": int(self.events[b]),
                "non_events": int(self.non_events[b]),
                "event_rate": float(rate[b]),
                "woe": float(woe[b]),
                "iv": float(iv[b]),
            }
            for b in range(len(self.labels))
        ]

    def to_dict(self) -> dict[str, t.Any]:
        """Plain data for JSON: the counts (WOE and IV are derived from them on load)."""
        return {
            "column": self.column,
            "labels": list(self.labels),
            "events": [int(v) for v in self.events],
            "non_events": [int(v) for v in self.non_events],
            "missing_bin": self.missing_bin,
        }

    @classmethod
    def from_dict(cls, data: t.Mapping[str, t.Any]) -> WoeTable:
        """The table :meth:`to_dict` wrote."""
        try:
            missing = data["missing_bin"]
            return cls(
                str(data["column"]),
                tuple(str(label) for label in data["labels"]),
                np.asarray([int(v) for v in data["events"]], dtype=np.int64),
                np.asarray([int(v) for v in data["non_events"]], dtype=np.int64),
                None if missing is None else int(missing),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"not a WOE table: {exc!r}; expected the keys column, labels, events, "
                "non_events and missing_bin that WoeTable.to_dict writes"
            ) from exc


def scorecard_woe(
    events: np.ndarray, non_events: np.ndarray, missing_bin: int | None, min_share: float
) -> tuple[np.ndarray, float]:
    """WOE per bin and IV as a scorecard uses them: :class:`WoeTable`'s, except that a
    missing bin holding fewer than ``min_share`` of the rows gets WOE 0 and adds nothing to
    IV (optbinning's ``metric_missing=0``).

    Value bins are pooled up to ``min_share`` (:mod:`~lianmo.models.bin_merge`), the missing
    bin never is; so the WOE a host receives for its bins never tells the event rate of
    fewer rows than that, and a small missing group's noisy rate does not enter the model.
    """
    table = WoeTable.from_counts("column", events, non_events)
    woe, iv_bins = np.array(table.woe, dtype=np.float64), np.array(table.iv_bins)
    if missing_bin is not None:
        rows = np.asarray(events) + np.asarray(non_events)
        if rows[missing_bin] < min_share * rows.sum():
            woe[missing_bin], iv_bins[missing_bin] = 0.0, 0.0
    return woe, float(iv_bins.sum())


def bin_counts(bins_of_rows: np.ndarray, y: np.ndarray, n_cells: int) -> tuple[np.ndarray, ...]:
    """Events and non-events per bin (``n_cells`` bins) of one column's binned rows."""
    bins_of_rows = np.asarray(bins_of_rows, dtype=np.int64)
    y = np.asarray(y)
    if bins_of_rows.shape != y.shape or bins_of_rows.ndim != 1:
        raise ConfigError(
            f"bin indices of shape {bins_of_rows.shape} for labels of shape {y.shape}; "
            "give one bin index per labelled row"
        )
    if len(bins_of_rows) and (bins_of_rows.min() < 0 or bins_of_rows.max() >= n_cells):
        raise ConfigError(f"a bin index is outside 0 .. {n_cells - 1}")
    if not np.isin(y, (0, 1)).all():
        raise DataError("labels must be 0 (non-event) or 1 (event) for WOE")
    events = np.bincount(bins_of_rows, weights=y == 1, minlength=n_cells).astype(np.int64)
    rows = np.bincount(bins_of_rows, minlength=n_cells).astype(np.int64)
    return events, rows - events


def woe_transform(bins_of_rows: np.ndarray, table: WoeTable | np.ndarray) -> np.ndarray:
    """The WOE value of each row, from its bin index (see the module docstring for the
    missing bin and for bins the table lacks, which get 0).

    ``table`` is a :class:`WoeTable` or just its WOE per bin (what a host holds).
    """
    woe = table.woe if isinstance(table, WoeTable) else np.asarray(table, dtype=np.float64)
    bins_of_rows = np.asarray(bins_of_rows, dtype=np.int64)
    known = (bins_of_rows >= 0) & (bins_of_rows < len(woe))
    out = np.zeros(bins_of_rows.shape)
    out[known] = woe[bins_of_rows[known]]
    return out


class _Binning(t.Protocol):
    @property
    def edges(self) -> tuple[np.ndarray, ...]: ...

    @property
    def code_bins(self) -> tuple[np.ndarray | None, ...]: ...

    def n_bins(self, feature: int) -> int: ...

    def missing_bin(self, feature: int) -> int | None: ...


def bin_labels(
    bins: _Binning, feature: int, categories: t.Sequence[str] | None = None
) -> tuple[str, ...]:
    """Readable names of a column's bins: ``(lo, hi]`` intervals, or category names,
    ``other`` and ``missing``. ``categories``: a categorical column's vocabulary (codes
    are used without it). For the bins' owner only: the labels show thresholds and names.
    """
    codes = bins.code_bins[feature]
    if codes is None:
        cut = [f"{v:.10g}" for v in bins.edges[feature]]
        lows, highs = ["-inf", *cut], [*cut, "inf"]
        labels = [
            f"({lo}, {hi}]" if hi != "inf" else f"({lo}, inf)"
            for lo, hi in zip(lows, highs, strict=True)
        ]
    else:
        names = (
            list(categories) if categories is not None else [str(k) for k in range(len(codes) - 1)]
        )
        labels = []
        for b in range(bins.n_bins(feature) - 1):
            members = [names[k] for k in range(len(codes) - 1) if codes[k] == b]
            labels.append(", ".join(members))
        labels.append("other")
    if bins.missing_bin(feature) is not None:
        labels.append("missing")
    return tuple(labels)
