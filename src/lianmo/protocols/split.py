"""The stratified validation split: drawn by the label holder in secret, told to the hosts.

1. guest -> host_k : the aligned positions of the validation rows

The guest draws ``round(share · n_class)`` rows of each class uniformly at random with
its own job DRBG (:func:`lianmo.data.split.stratified_validation_mask`). Hosts learn
which aligned rows are held out and how many there are; since the draw uses randomness
they never see, membership tells them nothing about a row's label beyond the class
shares the counts imply.
"""

from __future__ import annotations

import numpy as np

from lianmo.data.split import stratified_validation_mask
from lianmo.protocols.context import RoleContext
from lianmo.wire.steps import SPLIT_VALIDATION_ROWS

SPLIT_RNG = "split/validation"
"""Label of the guest's DRBG stream the stratified split is drawn from."""


def send_validation_rows(ctx: RoleContext, labels: np.ndarray, share: float) -> np.ndarray:
    """Guest side: draw the stratified split, tell every host, return the validation mask."""
    mask = stratified_validation_mask(labels, share, ctx.rng.child(SPLIT_RNG))
    ctx.broadcast(SPLIT_VALIDATION_ROWS, ctx.hosts, np.flatnonzero(mask))
    return mask


def receive_validation_rows(ctx: RoleContext, n_rows: int) -> np.ndarray:
    """Host side: the validation mask over this party's ``n_rows`` aligned rows."""
    rows = ctx.recv(SPLIT_VALIDATION_ROWS, ctx.guest, below=n_rows)
    mask = np.zeros(n_rows, dtype=bool)
    mask[rows] = True
    return mask
