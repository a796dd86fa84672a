"""Compute layer: backends that run chunked kernels (the crypto layer's) on local cores."""

from __future__ import annotations

from .backend import ComputeBackend as ComputeBackend
from .backend import ProcessPoolBackend as ProcessPoolBackend
from .backend import SerialBackend as SerialBackend
from .backend import chunk_bounds as chunk_bounds
from .backend import make_backend as make_backend
