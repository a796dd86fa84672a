"""Coordinated one-vs-rest LR: one binary hetero LR model per class, trained in turn.

A job with ``model.objective: multiclass`` and an arbiter trains, for each class ``c`` of
the guest's labels ``0 .. K-1``, the coordinated protocol of
:mod:`lianmo.protocols.hetero_lr` on the labels ``y == c``, with the same batches, keys
and checks as a binary job (scikit-learn's and FATE's one-vs-rest):

0. guest -> hosts, arbiter ``lr.models``: ``K``, the number of classes (kept in the
   ``lr/models`` checkpoint, so a resumed party does not ask again)
1. for c in 0 .. K-1: the protocol of :mod:`lianmo.protocols.hetero_lr`, its round
   checkpoint named ``lr/train/class-c``; a party resuming skips the classes it finished

What each party learns is what it learns in ``K`` binary jobs on the same rows; hosts and
the arbiter also learn ``K``. (Two-party LR trains the ``K`` models side by side in one
run instead: :mod:`lianmo.protocols.two_party_lr`.)
"""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass

import numpy as np

from lianmo.protocols import hetero_lr
from lianmo.protocols.context import RoleContext
from lianmo.wire.steps import LR_MODELS

PLAN = "lr/models"


@dataclass(frozen=True, slots=True)
class ModelsPlan:
    """Checkpoint ``lr/models``: how many classes (models) the job trains."""

    models: int

    def to_checkpoint(self) -> dict[str, t.Any]:
        return {"models": self.models}

    @classmethod
    def from_checkpoint(cls, raw: t.Mapping[str, t.Any]) -> ModelsPlan:
        return cls(int(raw["models"]))


def class_params(params: hetero_lr.LrParams, c: int) -> hetero_lr.LrParams:
    """Class ``c``'s run: the job's parameters with a round checkpoint of its own."""
    return dataclasses.replace(params, checkpoint=f"{hetero_lr.CHECKPOINT}/class-{c}")


def _plan(ctx: RoleContext, models: int | None) -> int:
    """Step 0: the guest sends ``models``, the others receive it; checkpointed."""
    saved = ctx.checkpoints.restore(PLAN, ModelsPlan)
    if saved is not None:
        return saved.models
    if models is not None:
        ctx.broadcast(LR_MODELS, [*ctx.hosts, *([ctx.arbiter] if ctx.arbiter else [])], models)
    else:
        models = ctx.recv(LR_MODELS, ctx.guest)
    ctx.checkpoints.save(PLAN, ModelsPlan(models))
    return models


def train_guest(
    ctx: RoleContext, X: np.ndarray, Y: np.ndarray, params: hetero_lr.LrParams
) -> np.ndarray:
    """Guest side: ``Y`` holds one 0/1 column per class; weights ``(m, classes)``."""
    models = _plan(ctx, Y.shape[1])
    return np.column_stack(
        [hetero_lr.train_guest(ctx, X, Y[:, c], class_params(params, c)) for c in range(models)]
    )


def train_host(ctx: RoleContext, X: np.ndarray, params: hetero_lr.LrParams) -> np.ndarray:
    """Host side: weights ``(m, classes)``."""
    models = _plan(ctx, None)
    return np.column_stack(
        [hetero_lr.train_host(ctx, X, class_params(params, c)) for c in range(models)]
    )


def train_arbiter(ctx: RoleContext, params: hetero_lr.LrParams) -> hetero_lr.ArbiterResult:
    """Arbiter side: one key-holder run per class; the losses come back summed over the
    classes per epoch (a class that stopped early counts with its last loss)."""
    models = _plan(ctx, None)
    runs = [hetero_lr.train_arbiter(ctx, class_params(params, c)) for c in range(models)]
    epochs = max(len(r.losses) for r in runs)
    losses = tuple(
        sum(r.losses[min(e, len(r.losses) - 1)] for r in runs if r.losses) for e in range(epochs)
    )
    seconds = tuple(
        sum(r.epoch_seconds[e] for r in runs if e < len(r.epoch_seconds)) for e in range(epochs)
    )
    return hetero_lr.ArbiterResult(
        losses=losses,
        rounds=sum(r.rounds for r in runs),
        round_losses=tuple(v for r in runs for v in r.round_losses),
        epoch_seconds=tuple(round(v, 3) for v in seconds),
    )
