"""Label protection for hetero LR: Gaussian noise on the residuals hosts compute with.

With ``model.label_protection`` the guest sends ``[[4d + e]]``, ``e ~ N(0, σ²)`` per row and
fresh per batch, and updates its own weights with the same noisy residual. Changing one
row's label moves ``4d`` by exactly 4 in that row (given everything released before), so
each batch is a Gaussian mechanism of L2 sensitivity 4 on the labels, i.e.
``ρ = 8 / σ²`` zero-concentrated DP (Bun and Steinke 2016). A row sits in one batch per
epoch, so ``E`` epochs compose to ``ρ = 8E / σ²``, and ρ-zCDP implies
``(ρ + 2·sqrt(ρ·ln(1/δ)), δ)``-DP. Everything a host ever sees (its unmasked gradients, so
its weights) is computed from these noisy residuals and its own data: a post-processing,
even for a host that asks the arbiter to decrypt parts of ``[[4d + e]]`` itself.

The noise is drawn from the guest's job DRBG (Box–Muller on 53-bit uniforms), so replay
reproduces it, and rounded to the residual's 2^-24 grid: as ``4d`` lies on that grid,
the rounded release is a post-processing of the continuous mechanism.
"""

from __future__ import annotations

import math

import numpy as np

from lianmo.crypto.drbg import Drbg

SENSITIVITY = 4.0
"""How far one label flip moves one row's ``4d`` (``4d = z + 2 − 4y``)."""


def rho_for(epsilon: float, delta: float) -> float:
    """The largest zCDP ρ whose (ε, δ) conversion stays within ``epsilon``."""
    log_term = math.log(1.0 / delta)
    return (math.sqrt(log_term + epsilon) - math.sqrt(log_term)) ** 2


def sigma_for(epsilon: float, delta: float, epochs: int) -> float:
    """The noise σ that keeps ``epochs`` epochs of residuals (ε, δ)-DP for the labels."""
    return math.sqrt(epochs * SENSITIVITY**2 / (2.0 * rho_for(epsilon, delta)))


def epsilon_for(sigma: float, delta: float, epochs: int) -> float:
    """The ε that ``epochs`` epochs at noise ``sigma`` spend, at ``delta``."""
    rho = epochs * SENSITIVITY**2 / (2.0 * sigma**2)
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def gaussian(rng: Drbg, count: int, sigma: float) -> np.ndarray:
    """``count`` draws of N(0, σ²) from ``rng`` (Box–Muller on 53-bit uniforms)."""
    raw = np.frombuffer(rng.random_bytes(16 * count), dtype=">u8").astype(np.uint64) >> 11
    u = (raw.astype(np.float64) + 0.5) / float(1 << 53)  # in (0, 1): log never sees 0
    u1, u2 = u[:count], u[count:]
    return np.asarray(sigma * np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2))
