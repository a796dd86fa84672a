"""Reductions of many ciphertexts into few, split into chunks for a compute backend.

The matrix-vector product, the histogram per (node, feature, bin) and shift-packing
behind :meth:`CipherVector.matvec_t <lianmo.crypto.vector.CipherVector.matvec_t>`,
:meth:`~lianmo.crypto.vector.CipherVector.histogram` and
:meth:`~lianmo.crypto.vector.CipherVector.pack`: each checks its arguments, cuts the
work into :mod:`lianmo.crypto._kernels` tasks and combines the chunks' results. They take
and return raw ciphertexts (``gmpy2.mpz``) under one modulus ``n**2``; the results are
not re-randomised.
"""

from __future__ import annotations

import typing as t

import gmpy2
import numpy as np
import numpy.typing as npt

from lianmo.compute.backend import ComputeBackend, SerialBackend, chunk_bounds
from lianmo.crypto import _kernels
from lianmo.crypto._checks import as_int, int64_matrix
from lianmo.errors import CryptoError

if t.TYPE_CHECKING:
    from lianmo.crypto.packing import Packing

__all__ = ["histogram", "matvec_t", "shift_pack"]

Mpz = t.Any  # gmpy2.mpz has no type stubs
_SERIAL = SerialBackend()
_MIN_ROWS = 256  # fewest rows worth a chunk of their own


def matvec_t(
    values: list[Mpz],
    nsquare: Mpz,
    Xq: npt.NDArray[np.integer[t.Any]],
    backend: ComputeBackend | None,
) -> list[Mpz]:
    """``prod_i values[i] ** Xq[i, j] mod nsquare`` for each column ``j`` of ``Xq``.

    Chunks are groups of columns, or groups of rows (whose partial products are then
    multiplied) when there are fewer columns than workers.
    """
    columns = np.ascontiguousarray(int64_matrix(Xq, len(values), "matvec_t").T)
    backend = backend or _SERIAL
    k = columns.shape[0]
    if k >= backend.workers or len(values) < 2 * _MIN_ROWS:
        tasks = [
            _kernels.MatvecTask(nsquare, values, columns[a:b])
            for a, b in chunk_bounds(k, backend.workers)
        ]
        out = backend.map_concat(_kernels.matvec, tasks)
    else:  # few columns, many rows: split rows and multiply the partial products
        tasks = [
            _kernels.MatvecTask(nsquare, values[a:b], columns[:, a:b])
            for a, b in chunk_bounds(len(values), backend.workers, _MIN_ROWS)
        ]
        parts = backend.map(_kernels.matvec, tasks)
        out = [_product(column, nsquare) for column in zip(*parts, strict=True)]
    return out or [gmpy2.mpz(1)] * k


def histogram(
    values: list[Mpz],
    nsquare: Mpz,
    bins: npt.NDArray[np.integer[t.Any]],
    n_bins: int,
    nodes: npt.NDArray[np.integer[t.Any]] | None,
    n_nodes: int,
    backend: ComputeBackend | None,
) -> list[Mpz]:
    """Products of ``values`` per (node, feature, bin), node-major then feature then bin.

    Chunks are groups of rows; each gives a partial product per cell, and the cells'
    partial products are multiplied.
    """
    n_bins = as_int(n_bins, "n_bins")
    n_nodes = as_int(n_nodes, "n_nodes")
    if n_bins < 1 or n_nodes < 1:
        raise CryptoError(f"histogram needs n_bins >= 1 and n_nodes >= 1, got {n_bins}, {n_nodes}")
    slots = _histogram_slots(bins, n_bins, nodes, n_nodes, len(values))
    n_features = slots.shape[0]
    backend = backend or _SERIAL
    width = n_nodes * n_bins
    tasks = [
        _kernels.HistogramTask(nsquare, values[a:b], slots[:, a:b], width)
        for a, b in chunk_bounds(len(values), backend.workers, _MIN_ROWS)
    ]
    parts = backend.map(_kernels.histogram, tasks)
    if not parts:
        per_feature = [[gmpy2.mpz(1)] * width for _ in range(n_features)]
    else:
        per_feature = [
            [_product(cells, nsquare) for cells in zip(*feature, strict=True)]
            for feature in zip(*parts, strict=True)
        ]
    return [
        per_feature[f][node_id * n_bins + b]
        for node_id in range(n_nodes)
        for f in range(n_features)
        for b in range(n_bins)
    ]


def _histogram_slots(
    bins: npt.NDArray[np.integer[t.Any]],
    n_bins: int,
    nodes: npt.NDArray[np.integer[t.Any]] | None,
    n_nodes: int,
    rows: int,
) -> npt.NDArray[np.int64]:
    """Check ``bins`` and ``nodes``; return each row's slot per feature (``-1``: left out)."""
    table = int64_matrix(bins, rows, "histogram")
    if table.size and (int(table.min()) < 0 or int(table.max()) >= n_bins):
        raise CryptoError(
            f"histogram: bin indices must lie in [0, {n_bins}), got range "
            f"[{int(table.min())}, {int(table.max())}]"
        )
    slots = table.T.copy()
    if nodes is None:
        return slots
    node = np.asarray(nodes)
    if node.shape != (rows,) or node.dtype.kind not in "iu":
        raise CryptoError(
            f"histogram: nodes must be an integer array of shape ({rows},), "
            f"got {node.dtype} {node.shape}"
        )
    node = node.astype(np.int64)
    if node.size and (int(node.min()) < -1 or int(node.max()) >= n_nodes):
        raise CryptoError(
            f"histogram: node ids must lie in [-1, {n_nodes}), got range "
            f"[{int(node.min())}, {int(node.max())}]"
        )
    return np.where(node >= 0, slots + node * n_bins, -1)


def shift_pack(
    values: list[Mpz], n: Mpz, nsquare: Mpz, packing: Packing, backend: ComputeBackend | None
) -> list[Mpz]:
    """Pack each ``packing.per_plaintext(n)`` consecutive ciphertexts into one.

    Chunks are runs of whole groups, at least four groups each.
    """
    per_ct = packing.per_plaintext(int(n))
    backend = backend or _SERIAL
    groups = -(-len(values) // per_ct)
    tasks = [
        _kernels.ShiftPackTask(nsquare, values[a * per_ct : b * per_ct], per_ct, packing.total_bits)
        for a, b in chunk_bounds(groups, backend.workers, 4)
    ]
    return backend.map_concat(_kernels.shift_pack, tasks)


def _product(values: t.Iterable[Mpz], modulus: Mpz) -> Mpz:
    """Return the product of ``values`` modulo ``modulus``, skipping the ones."""
    total: Mpz | None = None
    for value in values:
        if value != 1:
            total = value if total is None else total * value % modulus
    return gmpy2.mpz(1) if total is None else total
