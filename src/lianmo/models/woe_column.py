"""One scorecard column as its holder keeps it: bins, merge plan, WOE and IV per merged bin.

A party bins each of its own columns on its training rows
(:class:`~lianmo.models.binning.QuantileBins`), pools the bins by a
:class:`~lianmo.models.bin_merge.MergePlan` and keeps, per merged bin, the training rows
and the WOE (the guest also the events: it holds the labels). ``status`` says whether
selection kept the column and, if not, why. :meth:`WoeColumn.codes` re-bins later rows
(the scoring table, read with the column's vocabulary) and :meth:`WoeColumn.transform`
gives their WOE. A missing cell in a column that had none at training gets WOE 0, the WOE
of the overall event rate, as optbinning does for a missing value it has no bin for.

The thresholds and category names of a column (in :attr:`WoeColumn.labels`) are its
holder's: the file it lives in never leaves the party.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import numpy as np

from lianmo.models.bin_merge import MergePlan
from lianmo.models.binning import QuantileBins
from lianmo.models.woe import bin_labels

__all__ = ["KEPT", "WoeColumn"]

#: the status of a column that selection kept
KEPT = "kept"
#: the code of a cell with no bin (a missing cell in a column that had no missing bin)
NO_BIN = -1


@dataclass(frozen=True, eq=False)
class WoeColumn:
    """One column: its fitted bins (one column of a :class:`QuantileBins`), merge plan, and
    per merged bin the training rows, WOE and (guest) events; the column's IV."""

    name: str
    bins: QuantileBins
    plan: MergePlan
    counts: np.ndarray
    woe: np.ndarray
    iv: float
    events: np.ndarray | None = None
    vocabulary: tuple[str, ...] | None = None
    status: str = KEPT

    def __post_init__(self) -> None:
        n = len(self.plan.groups)
        if self.bins.n_features != 1 or self.plan.n_cells != self.bins.n_cells(0):
            raise ValueError(
                f"column {self.name!r}: a plan over {self.plan.n_cells} bins for "
                f"{self.bins.n_cells(0) if self.bins.n_features == 1 else '?'} bins"
            )
        if len(self.counts) != n or len(self.woe) != n:
            raise ValueError(
                f"column {self.name!r}: {n} merged bins but {len(self.counts)} counts and "
                f"{len(self.woe)} WOE values"
            )
        if self.events is not None and len(self.events) != n:
            raise ValueError(f"column {self.name!r}: {len(self.events)} event counts for {n} bins")

    @property
    def kept(self) -> bool:
        return self.status == KEPT

    @property
    def categorical(self) -> bool:
        return self.bins.is_categorical(0)

    def with_status(self, status: str) -> WoeColumn:
        return WoeColumn(
            self.name,
            self.bins,
            self.plan,
            self.counts,
            self.woe,
            self.iv,
            self.events,
            self.vocabulary,
            status,
        )

    @property
    def labels(self) -> tuple[str, ...]:
        """A readable name per merged bin: ``(lo, hi]``, category names, ``missing``."""
        raw = bin_labels(self.bins, 0, self.vocabulary)
        missing = self.bins.missing_bin(0)
        out = []
        for group in self.plan.groups:
            if missing is not None and group == (missing,):
                out.append("missing")
            elif self.categorical:
                out.append(", ".join(raw[b] for b in group))
            else:
                lo = raw[group[0]].split(",")[0]
                hi = raw[group[-1]].split(",", 1)[1]
                out.append(f"{lo},{hi}")
        return tuple(out)

    def codes(self, x: np.ndarray) -> np.ndarray:
        """The merged bin of each cell of ``x`` (this column); :data:`NO_BIN` for a missing
        cell when the column had no missing training cell."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
        absent = np.isnan(x[:, 0])
        out = np.full(len(x), NO_BIN, dtype=np.int64)
        if self.bins.missing[0]:
            present = np.ones(len(x), dtype=bool)
        else:
            present = ~absent
        if present.any():
            binned = self.bins.transform(x[present]).astype(np.int64)[:, 0]
            out[present] = self.plan.mapping()[binned]
        return out

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The WOE of each cell of ``x`` (0 for a cell with no bin)."""
        return self.woe_of_codes(self.codes(x))

    def woe_of_codes(self, codes: np.ndarray) -> np.ndarray:
        """The WOE of each merged bin code (0 for :data:`NO_BIN`)."""
        out = np.zeros(len(codes), dtype=np.float64)
        known = codes != NO_BIN
        out[known] = np.asarray(self.woe, dtype=np.float64)[codes[known]]
        return out

    def shares(self) -> np.ndarray:
        """Training share of rows per merged bin (the reference of its CSI)."""
        counts = np.asarray(self.counts, dtype=np.float64)
        return np.asarray(counts / max(counts.sum(), 1.0), dtype=np.float64)

    def to_records(self) -> list[dict[str, t.Any]]:
        """One dict per merged bin: label, rows, events (guest), WOE, the column's IV."""
        events = self.events
        return [
            {
                "column": self.name,
                "bin": b,
                "label": label,
                "count": int(self.counts[b]),
                "events": None if events is None else int(events[b]),
                "woe": float(self.woe[b]),
                "iv": float(self.iv),
                "status": self.status,
            }
            for b, label in enumerate(self.labels)
        ]

    def to_dict(self) -> dict[str, t.Any]:
        codes = self.bins.code_bins[0]
        return {
            "name": self.name,
            "edges": [float(v) for v in self.bins.edges[0]],
            "missing": bool(self.bins.missing[0]),
            "code_bins": None if codes is None else [int(v) for v in codes],
            "vocabulary": None if self.vocabulary is None else list(self.vocabulary),
            "plan": self.plan.to_data(),
            "counts": [int(v) for v in self.counts],
            "events": None if self.events is None else [int(v) for v in self.events],
            "woe": [float(v) for v in self.woe],
            "iv": float(self.iv),
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, raw: t.Mapping[str, t.Any]) -> WoeColumn:
        codes = raw["code_bins"]
        bins = QuantileBins(
            (np.asarray(raw["edges"], dtype=np.float64),),
            (bool(raw["missing"]),),
            (None if codes is None else np.asarray(codes, dtype=np.int64),),
        )
        vocabulary = raw.get("vocabulary")
        events = raw.get("events")
        return cls(
            name=str(raw["name"]),
            bins=bins,
            plan=MergePlan.from_data(raw["plan"]),
            counts=np.asarray(raw["counts"], dtype=np.int64),
            woe=np.asarray(raw["woe"], dtype=np.float64),
            iv=float(raw["iv"]),
            events=None if events is None else np.asarray(events, dtype=np.int64),
            vocabulary=None if vocabulary is None else tuple(str(v) for v in vocabulary),
            status=str(raw["status"]),
        )

    @classmethod
    def split(
        cls,
        name: str,
        bins: QuantileBins,
        feature: int,
        plan: MergePlan,
        counts: np.ndarray,
        woe: np.ndarray,
        iv: float,
        *,
        events: np.ndarray | None = None,
        vocabulary: tuple[str, ...] | None = None,
    ) -> WoeColumn:
        """Column ``feature`` of a many-column :class:`QuantileBins` as a :class:`WoeColumn`."""
        one = QuantileBins(
            (bins.edges[feature],), (bins.missing[feature],), (bins.code_bins[feature],)
        )
        return cls(name, one, plan, counts, woe, iv, events, vocabulary)
