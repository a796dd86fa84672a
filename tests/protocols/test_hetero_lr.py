"""Coordinated hetero LR over in-memory channels equals the plaintext Taylor reference."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from lianmo.crypto.fixedpoint import choose_exponent, quantise
from lianmo.data.table import load_table
from lianmo.models.logistic import taylor_gradient, train_plaintext_taylor
from lianmo.models.metrics import auc
from lianmo.models.scaler import Standardizer
from lianmo.protocols.context import RoleContext
from lianmo.protocols.hetero_lr import LrParams, train_arbiter, train_guest, train_host

from .conftest import run_roles

# Unit tests only: 1024-bit keys keep the suite fast. Every real path refuses them.
SMALL_TEST_KEY_BITS = 1024


@pytest.fixture(scope="module")
def breast(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    guest = load_table(shared_data / "breast_hetero_guest.csv", id_column="id", label_column="y")
    host = load_table(shared_data / "breast_hetero_host.csv", id_column="id")
    index = host.index_of()
    host = host.select(np.array([index[i] for i in guest.ids]))
    Xg = Standardizer.fit(guest.X).transform(guest.X)
    Xg = np.hstack([Xg, np.ones((len(Xg), 1))])
    Xh = Standardizer.fit(host.X).transform(host.X)
    assert guest.y is not None
    return Xg, Xh, guest.y


# Batches need 16 rows per gradient coordinate (lr_guard.BATCH_FACTOR): the guest's 11
# (with the bias) need 176, so these tests give the host 8 of its 20 breast columns.
HOST_COLUMNS = slice(0, 8)


def _params(**overrides: float) -> LrParams:
    base = dict(
        epochs=2,
        batch_size=180,
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
        e = choose_exponent(X)
        exact_q = taylor_gradient(quantise(X, e) * 16.0**e, z, y)
        np.testing.assert_allclose(-w, exact_q, atol=1e-6)
        np.testing.assert_allclose(-w, taylor_gradient(X, z, y), atol=1e-3)


def test_training_follows_the_plaintext_reference(breast) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = breast
    Xh = Xh[:, HOST_COLUMNS]
    params = _params()
    out = _train(params, Xg, y, Xh)
    ref_w, ref_loss = train_plaintext_taylor(
        [Xg, Xh],
        y,
        epochs=2,
        batch_size=180,
        learning_rate=0.3,
        lr_decay=0.01,
        l2=0.001,
        seed=7,
        tol=0.0,
    )
    np.testing.assert_allclose(out["g"], ref_w[0], atol=2e-3)
    np.testing.assert_allclose(out["h1"], ref_w[1], atol=2e-3)
    np.testing.assert_allclose(out["a"].losses, ref_loss, rtol=1e-3)
    assert out["a"].rounds == 2 * (len(y) // 180)  # the remainder joins the last batch


def test_guest_with_two_hosts_matches_reference_including_loss(breast) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = breast
    X1, X2 = Xh[:, :6], Xh[:, 6:12]
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
    params = _params(epochs=10, batch_size=284, tol=10.0)  # any change is below tol
    out = _train(params, Xg, y, Xh[:, HOST_COLUMNS])
    assert len(out["a"].losses) == 2
    assert out["a"].rounds == 2 * 2


def test_quantised_path_reaches_the_float_path_validation_auc(shared_data: Path) -> None:
    """The encrypted, fixed-point LR (features quantised at the exponent chosen from the
    data) ends within 0.001 validation AUC of float64 training on the same schedule."""
    guest = load_table(
        shared_data / "default_credit_hetero_guest.csv", id_column="id", label_column="y"
    )
    host = load_table(shared_data / "default_credit_hetero_host.csv", id_column="id")
    index = host.index_of()
    host = host.select(np.array([index[i] for i in guest.ids]))
    assert guest.y is not None
    train, val = slice(0, 6000), slice(6000, 9000)
    g_scale, h_scale = Standardizer.fit(guest.X[train]), Standardizer.fit(host.X[train])
    Xg = np.hstack([g_scale.transform(guest.X), np.ones((len(guest.y), 1))])
    Xh = h_scale.transform(host.X)
    y = guest.y
    settings = dict(epochs=2, batch_size=1024, learning_rate=0.15, lr_decay=0.0, l2=0.0, seed=3)
    params = _params(**settings, tol=0.0)
    out = _train(params, Xg[train], y[train], Xh[train])
    float_w, _ = train_plaintext_taylor([Xg[train], Xh[train]], y[train], tol=0.0, **settings)  # type: ignore[arg-type]
    federated = auc(y[val], Xg[val] @ out["g"] + Xh[val] @ out["h1"])
    reference = auc(y[val], Xg[val] @ float_w[0] + Xh[val] @ float_w[1])
    # the model learned something, so the comparison means something (0.69998: five
    # batches per epoch since the 880 rows left over join the last one)
    assert reference > 0.69
    assert abs(federated - reference) <= 0.001
