"""The raw credit files (text categories, empty cells) as numpy, read with the csv module.

A stand-in for the data layer's readers in the model and protocol tests: numeric cells
become floats, empty cells NaN, and each text column's distinct texts sorted codes
``0 .. K-1`` (the contract's training vocabulary), so tests build the inputs SecureBoost
receives from real tables without depending on the reader.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RawTable:
    ids: np.ndarray
    names: tuple[str, ...]
    X: np.ndarray  # float64, NaN = missing, category codes in categorical columns
    categories: dict[str, tuple[str, ...]]  # categorical column -> its texts in code order
    y: np.ndarray | None

    def columns(self, names: list[str]) -> RawTable:
        """The same rows with only ``names`` (in that order)."""
        at = [self.names.index(n) for n in names]
        cats = {n: c for n, c in self.categories.items() if n in names}
        return RawTable(self.ids, tuple(names), self.X[:, at], cats, self.y)

    def rows(self, keep: np.ndarray) -> RawTable:
        y = None if self.y is None else self.y[keep]
        return RawTable(self.ids[keep], self.names, self.X[keep], self.categories, y)

    @property
    def categorical(self) -> tuple[int | None, ...]:
        """Per column: its number of categories, or None if numeric."""
        return tuple(len(self.categories[n]) if n in self.categories else None for n in self.names)


def read_raw(path: Path, id_column: str, label: str | None = None) -> RawTable:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    ids = np.array([int(r[header.index(id_column)]) for r in body])
    y = None if label is None else np.array([float(r[header.index(label)]) for r in body])
    names = [c for c in header if c not in (id_column, label)]
    X = np.empty((len(body), len(names)))
    categories: dict[str, tuple[str, ...]] = {}
    for j, name in enumerate(names):
        cells = [r[header.index(name)].strip() for r in body]
        try:
            X[:, j] = [float(c) if c else np.nan for c in cells]
        except ValueError:
            texts = tuple(sorted({c for c in cells if c}))
            code = {c: float(k) for k, c in enumerate(texts)}
            X[:, j] = [code[c] if c else np.nan for c in cells]
            categories[name] = texts
    return RawTable(ids, tuple(names), X, categories, y)


def raw_credit(shared_data: Path) -> tuple[RawTable, RawTable]:
    """Broker (guest, with labels) and platform (host) on their common ids, in id order."""
    broker = read_raw(shared_data / "credit_broker_raw.csv", "client_id", "default_next_month")
    platform = read_raw(shared_data / "credit_platform_raw.csv", "client_id")
    common = np.intersect1d(broker.ids, platform.ids)
    at_b = np.searchsorted(broker.ids, common, sorter=np.argsort(broker.ids))
    at_p = np.searchsorted(platform.ids, common, sorter=np.argsort(platform.ids))
    return (
        broker.rows(np.argsort(broker.ids)[at_b]),
        platform.rows(np.argsort(platform.ids)[at_p]),
    )
