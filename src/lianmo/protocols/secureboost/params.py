"""SecureBoost's hyperparameters, what each side ends with, and its timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lianmo.models.objectives import Objective
from lianmo.models.tree import Tree, TreeParams
from lianmo.protocols.tree_route import SplitRule

PHASE = "train"
CHECKPOINT = "sb/train"


@dataclass(frozen=True, slots=True)
class BoostParams:
    """Hyperparameters every party of the job shares (from the job spec)."""

    rounds: int = 30
    tree: TreeParams = field(default_factory=TreeParams)
    max_bins: int = 32
    subsample: float = 1.0
    colsample: float = 1.0
    early_stopping_rounds: int | None = None
    objective: str = "binary"
    class_weights: tuple[float, ...] | str | None = None
    key_bits: int = 2048
    insecure_test_key: bool = False  # unit tests only: allows keys below 2048 bits


@dataclass
class Timings:
    """Seconds per phase and operation counts on one party (for the benchmark)."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, phase: str, started: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started

    def count(self, what: str, k: int) -> None:
        self.counts[what] = self.counts.get(what, 0) + int(k)


@dataclass
class GuestModel:
    """What the guest keeps: the objective, start scores, trees and its own split rules."""

    objective: Objective
    init_score: np.ndarray
    trees: list[Tree]
    rules: dict[int, SplitRule]  # own splits by id (0, 1, ... in the order made)
    depth: int

    def raw_scores(self, leaves: np.ndarray) -> np.ndarray:
        """Raw scores from the leaf index of every row in every tree (trees x rows)."""
        F = np.tile(self.init_score, (leaves.shape[1], 1))
        for t, tree in enumerate(self.trees):
            F[:, tree.output] += tree.values(leaves[t])
        return F


@dataclass
class GuestResult:
    model: GuestModel
    train_loss: list[float]
    validation_loss: list[float]
    best_rounds: int
    importance: dict[str, dict[str, float]]
    validation_scores: np.ndarray
    timings: Timings


@dataclass
class HostResult:
    rules: dict[int, SplitRule]  # own splits by their random ids, in the order made
    importance: dict[str, dict[str, float]]
    trees: int
    timings: Timings


def add_importance(table: dict[str, dict[str, float]], key: str, gain: float | None) -> None:
    """Count one split (and its gain, where the party knows it) for ``key``."""
    entry = table.setdefault(key, {"splits": 0.0, "gain": 0.0})
    entry["splits"] += 1
    if gain is not None:
        entry["gain"] += gain
