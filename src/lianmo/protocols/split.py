"""Agreeing on the validation rows when only the label holder can draw them (stratified).

1. guest -> host_k : the aligned positions of the validation rows

Hosts learn which aligned rows are held out for validation, nothing about their labels
beyond what the per-class shares imply.
"""

from __future__ import annotations

import numpy as np

from lianmo.protocols.context import RoleContext
from lianmo.wire.steps import SPLIT_VALIDATION_ROWS


def send_validation_rows(ctx: RoleContext, mask: np.ndarray) -> None:
    """Guest side: tell every host which aligned rows are validation rows."""
    ctx.broadcast(SPLIT_VALIDATION_ROWS, ctx.hosts, np.flatnonzero(mask))


def receive_validation_rows(ctx: RoleContext, n_rows: int) -> np.ndarray:
    """Host side: the validation mask over this party's ``n_rows`` aligned rows."""
    rows = ctx.recv(SPLIT_VALIDATION_ROWS, ctx.guest, below=n_rows)
    mask = np.zeros(n_rows, dtype=bool)
    mask[rows] = True
    return mask
