"""Train/validation splits and the mini-batch schedule.

The plain split and the batches are derived alike by every party from public ids and
the job seed; the stratified split is drawn by the label holder alone, in secret.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from lianmo.crypto.drbg import Drbg
from lianmo.errors import ConfigError

__all__ = ["batch_count", "batch_schedule", "stratified_validation_mask", "validation_mask"]

_SPLIT_DOMAIN = "lianmo-split-v1"


def validation_mask(ids: Sequence[str], share: float, seed: int) -> np.ndarray:
    """Mark the rows that belong to the validation set, from their ids alone.

    Row ``i`` is in validation iff the first 8 bytes of
    ``sha256(f"lianmo-split-v1|{seed}|{ids[i]}")`` (UTF-8), read as a big-endian unsigned
    integer and divided by ``2**64``, are below ``share``. The decision depends only on
    the id, the seed and the share, so parties holding the same ids in any order derive
    the same split without exchanging anything.

    Parameters
    ----------
    ids : sequence of str
        Row ids.
    share : float
        Expected fraction of rows put in validation, ``0 <= share < 1``.
    seed : int
        Split seed agreed in the job spec.

    Returns
    -------
    numpy.ndarray
        Boolean array of ``len(ids)``; True marks a validation row.

    Raises
    ------
    ConfigError
        If ``share`` is outside ``[0, 1)``.
    """
    if not isinstance(share, int | float) or not (math.isfinite(share) and 0 <= share < 1):
        raise ConfigError(
            f"validation share is {share!r} but must be a number with 0 <= share < 1; "
            f"use e.g. 0.2 for a 20% validation set, or 0 for none"
        )
    return np.array([key / 2**64 < share for key in _id_keys(ids, seed)], dtype=np.bool_)


def _id_keys(ids: Sequence[str], seed: int) -> list[int]:
    """Per id, the first 8 bytes of ``sha256("lianmo-split-v1|seed|id")`` as an integer."""
    prefix = f"{_SPLIT_DOMAIN}|{seed}|"
    return [
        int.from_bytes(hashlib.sha256((prefix + i).encode("utf-8")).digest()[:8], "big")
        for i in ids
    ]


def batch_schedule(n_rows: int, batch_size: int, epoch: int, seed: int) -> list[np.ndarray]:
    """Return the shuffled mini-batches of one epoch, identical on every party.

    The row positions ``0 .. n_rows - 1`` are permuted with
    ``numpy.random.default_rng(numpy.random.SeedSequence([seed, epoch]))`` and cut into
    :func:`batch_count` consecutive batches of ``batch_size``; the ``n_rows mod
    batch_size`` rows left over join the last batch, so no batch is smaller than
    ``batch_size`` (fewer rows than that make one batch of all of them). A short final
    batch would hand hetero LR's hosts a gradient over a few rows, which they could solve
    for those rows' labels; merging keeps every row in every epoch, where dropping the
    remainder would leave rows out of training. The shuffle is public (it orders already
    aligned rows), so a seeded numpy generator is appropriate.

    Parameters
    ----------
    n_rows : int
        Number of aligned rows, at least 0.
    batch_size : int
        Rows per batch, at least 1.
    epoch : int
        Epoch number, at least 0.
    seed : int
        Job seed, at least 0.

    Returns
    -------
    list of numpy.ndarray
        Integer row positions of each batch; together they cover every row exactly once,
        and each has ``batch_size`` to ``2 * batch_size - 1`` rows (or all ``n_rows``).

    Raises
    ------
    ConfigError
        If an argument is negative or ``batch_size`` is below 1.
    """
    for name, value, least in (
        ("n_rows", n_rows, 0),
        ("batch_size", batch_size, 1),
        ("epoch", epoch, 0),
        ("seed", seed, 0),
    ):
        if value < least:
            raise ConfigError(f"{name} is {value} but must be at least {least}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch]))
    order = rng.permutation(n_rows)
    cuts = [i * batch_size for i in range(1, batch_count(n_rows, batch_size))]
    return list(np.split(order, cuts)) if n_rows else []


def batch_count(n_rows: int, batch_size: int) -> int:
    """How many batches :func:`batch_schedule` makes of ``n_rows`` rows per epoch."""
    return max(n_rows // batch_size, 1) if n_rows > 0 else 0


def stratified_validation_mask(labels: np.ndarray, share: float, rng: Drbg) -> np.ndarray:
    """Mark exactly ``round(share * n_c)`` rows of every label value ``c``, drawn at random.

    Within each class, the rows are chosen uniformly at random with the label holder's
    own secret DRBG: each row gets 64 random bits and the class's rows with the lowest
    draws are taken. Only the guest can compute it, and nothing the other parties know
    (ids, the job seed) predicts which rows were taken, so the split they are told tells
    them nothing about labels beyond the class shares. (A split keyed on a public hash
    would: a host could find the per-class cut-off hashes and read the labels of every
    row between them.) The same DRBG stream gives the same split again, for replay.

    Parameters
    ----------
    labels : numpy.ndarray
        Label per row; each distinct value is one stratum.
    share : float
        Fraction of each class put in validation, ``0 <= share < 1``.
    rng : Drbg
        The guest's secret generator for this purpose (``ctx.rng.child(...)``).

    Returns
    -------
    numpy.ndarray
        Boolean array of ``len(labels)``; True marks a validation row.
    """
    validation_mask([], share, 0)  # the same checks on share
    draws = np.frombuffer(rng.random_bytes(8 * len(labels)), dtype=">u8")
    mask = np.zeros(len(labels), dtype=np.bool_)
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        take = int(round(share * len(rows)))
        mask[rows[np.argsort(draws[rows], kind="stable")[:take]]] = True
    return mask
