"""One party's share of a SecureBoost model: what it must keep to score, nothing more.

The guest's share holds the trees (structure, split owners, leaf weights), the start
scores and the guest's own split rules; a host's share holds only its own split rules
(feature name, threshold, default side for missing cells, tree and depth per random
split id; for a categorical split, the category names of each side). Neither holds the
other's features, thresholds or categories. Format v3 adds each rule's ``default_left``
(where a missing cell goes), categorical rules and ``categories``: the party's own
vocabulary per categorical column (names in code order), with which scoring reads new
tables so that codes mean the same; v2 shares (numeric models without missing values,
every default right) are still read. v1 shares, whose host split ids counted up,
are not read: retrain.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t
from dataclasses import dataclass, field

import numpy as np

from lianmo.errors import ConfigError
from lianmo.models.objectives import Objective
from lianmo.models.tree import Tree, tree_from_dict, tree_to_dict
from lianmo.node.share import ModelShare
from lianmo.protocols.secureboost import GuestModel
from lianmo.protocols.tree_route import Rules, SplitRule
from lianmo.wire.convert import NO_INDEX

MODEL_FORMAT = "lianmo.secureboost.share/v3"
V2_FORMAT = "lianmo.secureboost.share/v2"


@dataclass(frozen=True)
class BoostShare(ModelShare):
    """A party's share; ``trees``, ``objective`` and ``init_score`` are the guest's only."""

    FORMAT: t.ClassVar[str] = MODEL_FORMAT
    KIND: t.ClassVar[str] = "SecureBoost"

    @classmethod
    def formats(cls) -> tuple[str, ...]:
        """v3, and v2 (numeric models: no default sides, no categories) for older shares."""
        return (MODEL_FORMAT, V2_FORMAT)

    job_id: str
    party: str
    role: str
    dataset: str
    feature_names: tuple[str, ...]
    depth: int
    rules: Rules  # split id -> rule, in the order made
    importance: dict[str, dict[str, float]] = field(default_factory=dict)
    objective: str | None = None
    n_classes: int | None = None
    init_score: tuple[float, ...] | None = None
    trees: tuple[Tree, ...] = ()
    rounds_done: int | None = None
    #: this party's categorical columns: their categories in code order (names, never sent)
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)
    format: str = MODEL_FORMAT

    def guest_model(self) -> GuestModel:
        if self.objective is None or self.init_score is None or self.n_classes is None:
            raise ConfigError(f"party '{self.party}': this share holds no trees (not the guest's)")
        return GuestModel(
            Objective(self.objective, self.n_classes),
            np.asarray(self.init_score, dtype=np.float64),
            list(self.trees),
            dict(self.rules),
            self.depth,
        )

    def to_json(self) -> bytes:
        data: dict[str, t.Any] = {
            "format": self.format,
            "job_id": self.job_id,
            "party": self.party,
            "role": self.role,
            "dataset": self.dataset,
            "feature_names": list(self.feature_names),
            "depth": self.depth,
            "rules": [self._rule_json(i, r) for i, r in self.rules.items()],
            "categories": {name: list(cats) for name, cats in self.categories.items()},
            "importance": self.importance,
            "objective": self.objective,
            "n_classes": self.n_classes,
            "init_score": None if self.init_score is None else list(self.init_score),
            "trees": [tree_to_dict(tree) for tree in self.trees],
        }
        if self.rounds_done is not None:
            data["rounds_done"] = self.rounds_done
        return json.dumps(data, indent=2, sort_keys=True).encode()

    def _rule_json(self, split_id: int, r: SplitRule) -> dict[str, t.Any]:
        name = self.feature_names[r.feature]
        out: dict[str, t.Any] = {
            "id": split_id,
            "feature": name,
            "threshold": r.threshold,
            "default_left": r.default_left,
            "tree": r.tree,
            "depth": r.depth,
        }
        if r.left_codes is not None:  # categories by name: codes depend on the table read
            cats = self.categories[name]
            out["left"] = sorted(cats[c] for c in r.left_codes)
            out["right"] = sorted(cats[c] for c in r.right_codes)
        return out

    @classmethod
    def from_raw(cls, raw: dict[str, t.Any]) -> BoostShare:
        names = tuple(str(v) for v in raw["feature_names"])
        index = {name: i for i, name in enumerate(names)}
        categories = {
            str(k): tuple(str(c) for c in v) for k, v in raw.get("categories", {}).items()
        }
        return cls(
            job_id=str(raw["job_id"]),
            party=str(raw["party"]),
            role=str(raw["role"]),
            dataset=str(raw["dataset"]),
            feature_names=names,
            depth=int(raw["depth"]),
            rules=_rules(raw["rules"], index, categories),
            categories=categories,
            importance={str(k): dict(v) for k, v in raw.get("importance", {}).items()},
            objective=None if raw["objective"] is None else str(raw["objective"]),
            n_classes=None if raw["n_classes"] is None else int(raw["n_classes"]),
            init_score=None
            if raw["init_score"] is None
            else tuple(float(v) for v in raw["init_score"]),
            trees=tuple(tree_from_dict(tree) for tree in raw["trees"]),
            format=str(raw["format"]),
        )

    def problem(self, party: str, role: str) -> str:
        """Why this is not a consistent share of ``role`` ``party`` ('' if it is)."""
        owner = self.ownership_problem(party, role, self.format)
        if owner:
            return owner
        if (role == "guest") != (self.objective is not None and self.init_score is not None):
            return "trees and start scores must be present exactly in the guest's share"
        if any(not 0 <= i < NO_INDEX for i in self.rules):
            return "a split id is out of range"
        for tree in self.trees:
            for i, node in enumerate(tree.nodes):
                if node.split is None:
                    continue
                if not (i < node.left < len(tree.nodes) and i < node.right < len(tree.nodes)):
                    return f"a node's children are out of order at node {i}"
                if node.split.owner == party and node.split.split_id not in self.rules:
                    return f"node {i} names split {node.split.split_id}, which does not exist"
        return ""


def _rules(
    rows: list[dict[str, t.Any]], index: dict[str, int], categories: dict[str, tuple[str, ...]]
) -> dict[int, SplitRule]:
    """The ``rules`` of a share file by split id (ValueError if an id repeats)."""
    out: dict[int, SplitRule] = {}
    for r in rows:
        split_id = int(r["id"])
        if split_id in out:
            raise ValueError(f"split id {split_id} is repeated")
        feature = index[str(r["feature"])]
        default_left = r.get("default_left", False)  # v2: no missing values, all right
        if not isinstance(default_left, bool):
            raise ValueError(f"split {split_id}: default_left must be true or false")
        rule = SplitRule(
            feature, float(r["threshold"]), int(r["tree"]), int(r["depth"]), default_left
        )
        if "left" in r:
            code = {c: k for k, c in enumerate(categories[str(r["feature"])])}
            rule = dataclasses.replace(
                rule,
                left_codes=frozenset(code[str(c)] for c in r["left"]),
                right_codes=frozenset(code[str(c)] for c in r["right"]),
            )
        out[split_id] = rule
    return out
