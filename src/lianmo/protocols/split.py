"""Agreeing on the validation rows when only the label holder can draw them (stratified).

1. guest -> host_k : the aligned positions of the validation rows

Hosts learn which aligned rows are held out for validation, nothing about their labels
beyond what the per-class shares imply.
"""

from __future__ import annotations

import numpy as np

from lianmo.protocols.context import RoleContext
from lianmo.wire.convert import indices_from_msg, indices_to_msg

TAG = "split.validation_rows"


def send_validation_rows(ctx: RoleContext, mask: np.ndarray) -> None:
    """Guest side: tell every host which aligned rows are validation rows."""
    ctx.channel.broadcast(ctx.hosts, TAG, indices_to_msg(np.flatnonzero(mask)))


def receive_validation_rows(ctx: RoleContext, n_rows: int) -> np.ndarray:
    """Host side: the validation mask over this party's ``n_rows`` aligned rows."""
    rows = indices_from_msg(ctx.channel.recv(ctx.guest, TAG), ctx.guest, TAG, below=n_rows)
    mask = np.zeros(n_rows, dtype=bool)
    mask[rows] = True
    return mask
