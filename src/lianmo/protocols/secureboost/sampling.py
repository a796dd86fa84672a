"""Every random choice of SecureBoost, drawn from the party's job DRBG (so it replays)."""

from __future__ import annotations

import typing as t

import numpy as np

from lianmo.protocols.context import RoleContext
from lianmo.wire.convert import NO_INDEX


def numpy_rng(ctx: RoleContext, label: str) -> np.random.Generator:
    """A numpy generator seeded from this party's job DRBG (replayable)."""
    return np.random.default_rng(int.from_bytes(ctx.rng.child(label).random_bytes(32), "big"))


def permutation(ctx: RoleContext, n: int, label: str) -> np.ndarray:
    return numpy_rng(ctx, label).permutation(n)


def sample_rows(ctx: RoleContext, n: int, share: float, t: int) -> np.ndarray:
    """The rows tree ``t`` is grown on (all of them unless ``subsample < 1``), sorted."""
    if share >= 1.0:
        return np.arange(n)
    size = max(1, int(round(share * n)))
    return np.sort(numpy_rng(ctx, f"sb/rows/{t}").choice(n, size=size, replace=False))


def sample_features(ctx: RoleContext, n: int, share: float, t: int) -> np.ndarray:
    """This party's columns tree ``t`` may split on (all unless ``colsample < 1``), sorted."""
    if share >= 1.0 or n == 0:
        return np.arange(n)
    size = max(1, int(round(share * n)))
    return np.sort(numpy_rng(ctx, f"sb/features/{t}").choice(n, size=size, replace=False))


def new_split_id(ctx: RoleContext, taken: t.Container[int], t_: int, depth: int, j: int) -> int:
    """A host's id for its split at node ``j`` of level ``depth`` of tree ``t_``.

    Uniform among the 32-bit indices the wire carries (the "no index" value aside) and
    unused in ``taken``; drawn from a DRBG stream of that node, so a resumed or replayed
    job draws the same id. The guest cannot tell from ids which splits share a feature,
    nor in which order they were made.
    """
    stream = ctx.rng.child(f"sb/split-id/{t_}/{depth}/{j}")
    while True:
        split_id = stream.randbelow(NO_INDEX)
        if split_id not in taken:
            return split_id
