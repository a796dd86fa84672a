"""Coordinated hetero LR over in-memory channels equals the plaintext Taylor reference."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from lianmo.crypto.fixedpoint import quantise
from lianmo.data.table import load_table
from lianmo.models.logistic import taylor_gradient, train_plaintext_taylor
from lianmo.models.scaler import Standardizer
from lianmo.protocols.context import RoleContext
from lianmo.protocols.hetero_lr import X_EXP, LrParams, train_arbiter, train_guest, train_host

from .conftest import run_roles

# Unit tests only: 1024-bit keys keep the suite fast. Every real path refuses them.
SMALL_TEST_KEY_BITS = 1024


@pytest.fixture(scope="module")
def breast(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    guest = load_table(shared_data / "breast_hetero_guest.csv", id_column="id", label_column="y")
    host = load_table(shared_data / "breast_hetero_host.csv", id_column="id")
    host = host.select(np.array([host.index_of()[i] for i in guest.ids]))
    Xg = Standardizer.fit(guest.X).transform(guest.X)
    Xg = np.hstack([Xg, np.ones((len(Xg), 1))])
    Xh = Standardizer.fit(host.X).transform(host.X)
    assert guest.y is not None
    return Xg, Xh, guest.y


def _params(**overrides: float) -> LrParams:
    base = dict(
        epochs=2,
        batch_size=128,
        learning_rate=0.3,
        lr_decay=0.01,
        l2=0.001,
        tol=0.0,
        key_bits=SMALL_TEST_KEY_BITS,
        seed=7,
        insecure_test_key=True,
    )
    base.update(overrides)
    return LrParams(**base)  # type: ignore[arg-type]


def _host(ctx: RoleContext, *, X: np.ndarray, params: LrParams) -> np.ndarray:
    return train_host(ctx, X, params)


def _train(params: LrParams, Xg: np.ndarray, y: np.ndarray, *hosts: np.ndarray) -> dict:  # type: ignore[type-arg]
    """Run arbiter 'a', guest 'g' and hosts 'h1', 'h2', ... over in-memory channels."""
    names = tuple(f"h{i + 1}" for i in range(len(hosts)))
    roles = {
        "a": lambda ctx: train_arbiter(ctx, params),
        "g": lambda ctx: train_guest(ctx, Xg, y, params),
    }
    for name, X in zip(names, hosts, strict=True):
        roles[name] = functools.partial(_host, X=X, params=params)
    return run_roles(roles, guest="g", hosts=names, arbiter="a")


def test_one_round_gradient_equals_plaintext_taylor_gradient(breast) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = breast
    params = _params(epochs=1, batch_size=len(y), learning_rate=1.0, lr_decay=0.0, l2=0.0)
    out = _train(params, Xg, y, Xh)
    z = np.zeros(len(y))
    # With w0 = 0 and lr = 1 the new weights are minus the first gradient.
    for X, w in ((Xg, out["g"]), (Xh, out["h1"])):
        exact_q = taylor_gradient(quantise(X, X_EXP) * 16.0**X_EXP, z, y)
        np.testing.assert_allclose(-w, exact_q, atol=1e-6)
        np.testing.assert_allclose(-w, taylor_gradient(X, z, y), atol=1e-3)


def test_training_follows_the_plaintext_reference(breast) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = breast
    params = _params()
    out = _train(params, Xg, y, Xh)
    ref_w, ref_loss = train_plaintext_taylor(
        [Xg, Xh],
        y,
        epochs=2,
        batch_size=128,
        learning_rate=0.3,
        lr_decay=0.01,
        l2=0.001,
        seed=7,
        tol=0.0,
    )
    np.testing.assert_allclose(out["g"], ref_w[0], atol=2e-3)
    np.testing.assert_allclose(out["h1"], ref_w[1], atol=2e-3)
    np.testing.assert_allclose(out["a"].losses, ref_loss, rtol=1e-3)
    assert out["a"].rounds == 2 * int(np.ceil(len(y) / 128))


def test_guest_with_two_hosts_matches_reference_including_loss(breast) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = breast
    X1, X2 = Xh[:, :12], Xh[:, 12:]
    params = _params(epochs=1, batch_size=200)
    out = _train(params, Xg, y, X1, X2)
    ref_w, ref_loss = train_plaintext_taylor(
        [Xg, X1, X2],
        y,
        epochs=1,
        batch_size=200,
        learning_rate=0.3,
        lr_decay=0.01,
        l2=0.001,
        seed=7,
        tol=0.0,
    )
    for got, want in zip((out["g"], out["h1"], out["h2"]), ref_w, strict=True):
        np.testing.assert_allclose(got, want, atol=2e-3)
    np.testing.assert_allclose(out["a"].losses, ref_loss, rtol=1e-3)


def test_early_stopping_on_loss_stops_every_party(breast) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = breast
    params = _params(epochs=10, batch_size=300, tol=10.0)  # any change is below tol
    out = _train(params, Xg, y, Xh)
    assert len(out["a"].losses) == 2
    assert out["a"].rounds == 2 * 2
