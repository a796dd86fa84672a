"""Argument checks shared by :class:`~lianmo.crypto.vector.CipherVector` and its reductions."""

from __future__ import annotations

import operator

import numpy as np
import numpy.typing as npt

from lianmo.errors import CryptoError

_INT64_MIN = np.iinfo(np.int64).min


def as_int(value: object, what: str) -> int:
    """Return ``value`` as an int, raising CryptoError naming ``what`` if it is not one."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise CryptoError(f"{what} must be an int, got {type(value).__name__}")
    return operator.index(value)


def int64_matrix(Xq: object, rows: int, what: str) -> npt.NDArray[np.int64]:
    """Return ``Xq`` as a 2-D int64 array with ``rows`` rows, or raise CryptoError."""
    if not isinstance(Xq, np.ndarray) or Xq.dtype.kind not in "iu":
        kind = Xq.dtype if isinstance(Xq, np.ndarray) else type(Xq).__name__
        raise CryptoError(
            f"{what} expects an integer numpy array, got {kind}; quantise floats first "
            "(lianmo.crypto.fixedpoint.quantise)"
        )
    if Xq.ndim != 2 or Xq.shape[0] != rows:
        raise CryptoError(
            f"{what} expects shape ({rows}, n_cols) to match {rows} ciphertexts, got {Xq.shape}"
        )
    if Xq.dtype.kind == "u" and Xq.size and int(Xq.max()) > np.iinfo(np.int64).max:
        raise CryptoError(f"{what}: unsigned entries above 2**63 - 1 are not supported")
    out = Xq.astype(np.int64, copy=False)
    if out.size and int(out.min()) == _INT64_MIN:
        raise CryptoError(f"{what}: entry equal to -2**63 is not supported; rescale the data")
    return out
