"""SecureBoost's checkpoint states: what the guest and a host keep after each boosting round."""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass

import numpy as np

from lianmo.models.tree import Tree, tree_from_dict, tree_to_dict
from lianmo.protocols.tree_route import Rules, SplitRule


def rule_rows(rules: Rules) -> list[list[t.Any]]:
    """Split rules as JSON rows ``[id, feature, threshold, tree, depth]``, in their order.

    A rule sending missing cells left adds a sixth element, 1; a categorical rule adds
    that element (0 or 1) and its left and right category codes.
    """
    rows: list[list[t.Any]] = []
    for i, r in rules.items():
        row: list[t.Any] = [int(i), int(r.feature), float(r.threshold), int(r.tree)]
        row.append(int(r.depth))
        if r.default_left or r.left_codes is not None:
            row.append(int(r.default_left))
        if r.left_codes is not None:
            row += [sorted(r.left_codes), sorted(r.right_codes)]
        rows.append(row)
    return rows


def rules_of(rows: t.Iterable[t.Sequence[t.Any]]) -> dict[int, SplitRule]:
    """The rules :func:`rule_rows` wrote (ValueError if a row has another shape)."""
    out: dict[int, SplitRule] = {}
    for row in rows:
        if len(row) not in (5, 6, 8):
            raise ValueError(f"a split rule row has {len(row)} elements, not 5, 6 or 8")
        i, f, v, tr, d = row[:5]
        rule = SplitRule(int(f), float(v), int(tr), int(d), len(row) > 5 and bool(row[5]))
        if len(row) == 8:
            left, right = (frozenset(int(c) for c in codes) for codes in row[6:])
            rule = dataclasses.replace(rule, left_codes=left, right_codes=right)
        out[int(i)] = rule
    return out


@dataclass(frozen=True)
class GuestState:
    """Checkpoint ``sb/train`` at the guest after boosting round ``round``."""

    round: int
    stopped: bool
    trees: tuple[Tree, ...]
    rules: Rules
    F: np.ndarray  # raw scores of the training rows (rows x outputs)
    F_val: np.ndarray  # raw scores of the validation rows
    best_F_val: np.ndarray  # validation raw scores at the best round so far
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    best_rounds: int
    since_best: int
    seconds: t.Mapping[str, float]  # wall clock: out of the logged digest
    counts: t.Mapping[str, int]

    def to_checkpoint(self) -> dict[str, t.Any]:
        return {
            "round": self.round,
            "stopped": self.stopped,
            "trees": [tree_to_dict(tree) for tree in self.trees],
            "rules": rule_rows(self.rules),
            "F": self.F.tolist(),
            "F_val": self.F_val.tolist(),
            "best": self.best_F_val.tolist(),
            "train_loss": list(self.train_loss),
            "val_loss": list(self.val_loss),
            "best_rounds": int(self.best_rounds),
            "since_best": int(self.since_best),
            "timing": dict(self.seconds),
            "counts": dict(self.counts),
        }

    @classmethod
    def from_checkpoint(cls, raw: t.Mapping[str, t.Any]) -> GuestState:
        return cls(
            round=int(raw["round"]),
            stopped=bool(raw["stopped"]),
            trees=tuple(tree_from_dict(tree) for tree in raw["trees"]),
            rules=rules_of(raw["rules"]),
            F=np.array(raw["F"], dtype=float),
            F_val=np.array(raw["F_val"], dtype=float),
            best_F_val=np.array(raw["best"], dtype=float),
            train_loss=tuple(float(v) for v in raw["train_loss"]),
            val_loss=tuple(float(v) for v in raw["val_loss"]),
            best_rounds=int(raw["best_rounds"]),
            since_best=int(raw["since_best"]),
            seconds={str(k): float(v) for k, v in raw["timing"].items()},
            counts={str(k): int(v) for k, v in raw["counts"].items()},
        )


@dataclass(frozen=True)
class HostState:
    """Checkpoint ``sb/train`` at a host after boosting round ``round`` (-1: none yet)."""

    round: int
    stopped: bool
    rules: Rules
    outputs: int
    key: bytes  # the guest's modulus, big-endian (empty before the first round)
    seconds: t.Mapping[str, float]
    counts: t.Mapping[str, int]

    def to_checkpoint(self) -> dict[str, t.Any]:
        return {
            "round": self.round,
            "stopped": self.stopped,
            "rules": rule_rows(self.rules),
            "outputs": self.outputs,
            "key": self.key.hex(),
            "timing": dict(self.seconds),
            "counts": dict(self.counts),
        }

    @classmethod
    def from_checkpoint(cls, raw: t.Mapping[str, t.Any]) -> HostState:
        return cls(
            round=int(raw["round"]),
            stopped=bool(raw["stopped"]),
            rules=rules_of(raw["rules"]),
            outputs=int(raw["outputs"]),
            key=bytes.fromhex(str(raw["key"])),
            seconds={str(k): float(v) for k, v in raw["timing"].items()},
            counts={str(k): int(v) for k, v in raw["counts"].items()},
        )
