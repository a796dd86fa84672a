"""A served SecureBoost model's constant tables, made once per loaded version.

Per request the guest routes a few rows through every tree. Two steps of the shared code
rebuild constant data on every call, and a request of one id pays for them in full:
:meth:`~lianmo.protocols.secureboost.params.GuestModel.raw_scores` makes each tree's
table of leaf values (``Tree.values``), and
:meth:`~lianmo.protocols.online_score.Forest.host_columns` maps a host's split ids to
side-matrix columns. Here the leaf values are read when the version is loaded and a
host's columns the first time it answers with a given list of split ids. The sums are
the same, in the same order, so the scores are the same numbers (tests/serving: served
scores equal batch scores).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lianmo.protocols.online_score import Forest
from lianmo.protocols.secureboost.params import GuestModel

#: split-id lists remembered per loaded version (a host sends one list per version)
MAX_REMEMBERED = 16


@dataclass(frozen=True)
class BoostTables:
    """The guest's trees (:class:`Forest`), their leaf values and its hosts' columns."""

    model: GuestModel
    forest: Forest
    outputs: tuple[int, ...]  # per tree, the raw-score column it adds to
    values: tuple[np.ndarray, ...]  # per tree, the leaf value at each node index
    _columns: dict[tuple[str, bytes], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, model: GuestModel, forest: Forest) -> BoostTables:
        values = tuple(
            np.array([node.value for node in tree.nodes], dtype=np.float64) for tree in model.trees
        )
        return cls(model, forest, tuple(tree.output for tree in model.trees), values)

    def host_columns(self, host: str, split_ids: np.ndarray, sides: np.ndarray) -> np.ndarray:
        """``sides`` cut to the columns the trees read, as :meth:`Forest.host_columns`."""
        key = (host, np.asarray(split_ids).tobytes())
        picks = self._columns.get(key)
        if picks is None:
            # the forest's own mapping, applied to column numbers (raises if a split is missing)
            numbers = np.arange(len(split_ids))[None, :]
            picks = self.forest.host_columns(host, split_ids, numbers)[0]
            if len(self._columns) < MAX_REMEMBERED:
                self._columns[key] = picks
        return sides[:, picks]

    def raw_scores(self, leaves: np.ndarray) -> np.ndarray:
        """:meth:`GuestModel.raw_scores` from the tables: the same sums in the same order."""
        F = np.tile(self.model.init_score, (leaves.shape[1], 1))
        for t, values in enumerate(self.values):
            F[:, self.outputs[t]] += values[leaves[t]]
        return F

    def scores(self, sides: np.ndarray) -> np.ndarray:
        """Probabilities (or predictions) of rows given every party's split sides."""
        return self.model.objective.predict_proba(self.raw_scores(self.forest.leaves(sides)))
