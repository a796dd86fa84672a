"""Every random choice of SecureBoost, drawn from the party's job DRBG (so it replays)."""

from __future__ import annotations

import numpy as np

from lianmo.protocols.context import RoleContext


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


def opaque_feature_ids(ctx: RoleContext, n: int) -> np.ndarray:
    """A host's stand-in ids for its columns, as the guest sees them in importance."""
    return permutation(ctx, n, "sb/opaque-features")
