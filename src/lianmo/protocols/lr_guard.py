"""What keeps the arbiter of hetero LR from decrypting anything but gradients.

A host unmasks ``X_kᵀ·4d`` for each batch: ``m`` linear combinations of the batch's
residuals, with ``m`` its coordinate count. In round 0 all weights are zero and
``4d = 2 − 4y`` exactly, so a batch of ``m`` rows or fewer is solved for its labels, and
a batch a few times larger still yields them by least squares. Three guards, each
checked where the number it needs is known:

- **batch floor**: every data party refuses a job whose smallest batch has fewer than
  ``BATCH_FACTOR`` rows per gradient coordinate (its own; the guest counts its bias),
  and the arbiter refuses any announced shape above the same floor. Measured on
  ``default_credit_hetero`` and the demo data (``scripts/lr_label_protection.py``):
  the least-squares attack's label AUC is 1.0 at 1 row per coordinate, 0.93-0.95 at 2,
  0.82-0.86 at 4, 0.76-0.79 at 8, 0.74-0.75 at 16 and 0.73 at 32, against 0.72 for a
  regression of the labels on the host's own columns (the signal the trained model is
  meant to share): 16 is where more rows stop buying much;
- **announced shapes**: before the key is sent, every data party tells the arbiter its
  coordinate count and gradient exponent (``lr.gradient_shape``); the arbiter refuses
  any ``lr.masked_gradient`` of another count or exponent, so batch-length vectors
  (``[[4d]]``, a host's ``[[u_k]]``) are never decrypted: the floor keeps every count
  far below every batch length;
- **masked window**: an honest masked value is ``g + r`` with ``|g| < 2**GRADIENT_BITS``
  and ``0 ≤ r < 2**MASK_BITS``; the arbiter refuses any decrypted value outside that
  window before returning it, which caps what one coordinate can carry at about
  ``MASK_BITS + 1`` bits instead of the whole plaintext space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lianmo.errors import ConfigError, ProtocolError

BATCH_FACTOR = 16
"""Rows per gradient coordinate the smallest batch must have (see the module docstring)."""
MASK_BITS = 256
"""Masks hide gradients below 2**GRADIENT_BITS with statistical distance under 2**-127."""
GRADIENT_BITS = 128
"""Bound on an honest gradient mantissa: features below 2**40, residuals below 2**60 and
batches below 2**28 rows stay under it with room to spare."""


@dataclass(frozen=True, slots=True)
class GradientShape:
    """What a data party announces to the arbiter: its gradient's length and exponent."""

    count: int
    exponent: int


def smallest_batch(n_rows: int, batch_size: int) -> int:
    """The fewest rows any batch of the schedule has (the remainder joins the last batch)."""
    return min(batch_size, n_rows)


def floor_rows(coordinates: int) -> int:
    """The fewest batch rows a party with ``coordinates`` gradient entries accepts."""
    return BATCH_FACTOR * coordinates


def check_batch_floor(party: str, coordinates: int, n_rows: int, batch_size: int) -> None:
    """Refuse the job at ``party`` if its smallest batch is below its floor."""
    rows = smallest_batch(n_rows, batch_size)
    need = floor_rows(coordinates)
    if rows >= need:
        return
    fewer = "" if rows == batch_size else f" (only {n_rows} training rows)"
    raise ConfigError(
        f"party '{party}' refuses model.batch_size {batch_size}{fewer}: its gradient has "
        f"{coordinates} coordinates, and batches of fewer than {BATCH_FACTOR} rows per "
        f"coordinate ({need}) let a host solve a round's gradient for the labels; set "
        f"model.batch_size to at least {need}, or use fewer features"
    )


def check_announced(party: str, shape: GradientShape, n_rows: int, batch_size: int) -> None:
    """The arbiter's view of the floor: refuse a shape the batches cannot hide."""
    try:
        check_batch_floor(party, shape.count, n_rows, batch_size)
    except ConfigError as exc:
        raise ProtocolError(
            f"arbiter refuses the job: party '{party}' announced a gradient of "
            f"{shape.count} coordinates, more than batches of "
            f"{smallest_batch(n_rows, batch_size)} rows allow ({exc})"
        ) from None


def check_masked_window(party: str, values: Sequence[int], n: int, step: int) -> None:
    """Refuse decrypted masked values no honest gradient plus mask can produce."""
    top, wrap = (1 << MASK_BITS) + (1 << GRADIENT_BITS), n - (1 << GRADIENT_BITS)
    bad = sum(1 for v in values if top <= v <= wrap)
    if bad:
        raise ProtocolError(
            f"arbiter refuses 'lr.masked_gradient' of round {step} from '{party}': {bad} of "
            f"{len(values)} values are not a gradient below 2^{GRADIENT_BITS} plus a "
            f"{MASK_BITS}-bit mask, so it is not a gradient; nothing was returned"
        )
