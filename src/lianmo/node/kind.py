"""A kind of model job: how a party trains it, witnesses it, scores with it, and its share.

Each model type (``hetero_lr``, ``secureboost``) is one :class:`JobKind`; the node picks
it by the job spec's model type for training, and by the stored share's format for
scoring, never by testing roles and types in a chain of ifs.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from pathlib import Path

from lianmo.config import JobSpec
from lianmo.node.data_use import JobDataset
from lianmo.node.job_data import JobOutcome
from lianmo.node.share import ModelShare
from lianmo.protocols.context import RoleContext


class PartyStep(t.Protocol):
    """A data party's side of a job (training or scoring)."""

    def __call__(
        self,
        ctx: RoleContext,
        spec: JobSpec,
        dataset: JobDataset,
        job_dir: Path,
        outcome: JobOutcome,
    ) -> None: ...


class WitnessStep(t.Protocol):
    """The arbiter's side of a training job (key holder or mere witness)."""

    def __call__(self, ctx: RoleContext, spec: JobSpec, outcome: JobOutcome) -> None: ...


@dataclass(frozen=True)
class JobKind:
    """One model type's jobs, as the node runs them."""

    name: str
    share: type[ModelShare]
    train: PartyStep
    predict: PartyStep
    witness: WitnessStep
