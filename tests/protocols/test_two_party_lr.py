"""Two-party hetero LR (no arbiter) over in-memory channels equals the plaintext Taylor
reference, and its layout and product steps are what the protocol says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lianmo.crypto.fixedpoint import choose_exponent, quantise
from lianmo.data.table import load_table
from lianmo.errors import ConfigError
from lianmo.models.logistic import taylor_gradient, train_plaintext_taylor
from lianmo.models.scaler import Standardizer
from lianmo.protocols.hetero_lr import LrParams
from lianmo.protocols.two_party_lr import Layout, train_guest, train_host

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
    # batches need 16 rows per coordinate the other side learns: the guest's 12 (10
    # columns, the bias, the label column) need 192
    return Xg, Xh[:, :8], guest.y


def _params(**overrides: float) -> LrParams:
    base = dict(
        epochs=2,
        batch_size=200,
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


def _train(params: LrParams, Xg: np.ndarray, y: np.ndarray, Xh: np.ndarray, **kw) -> dict:  # type: ignore[no-untyped-def, type-arg]
    roles = {
        "g": lambda ctx: train_guest(ctx, Xg, y, params),
        "h": lambda ctx: train_host(ctx, Xh, params),
    }
    return run_roles(roles, guest="g", hosts=("h",), **kw)


def test_first_gradient_equals_plaintext_taylor_gradient(breast) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = breast
    params = _params(epochs=1, batch_size=len(y), learning_rate=1.0, lr_decay=0.0, l2=0.0)
    out = _train(params, Xg, y, Xh)
    z = np.zeros(len(y))
    # with w0 = 0 and lr = 1 the new weights are minus the first gradient; the guest's
    # comes from its own float rows (u_H = 0), the host's from its packed, quantised rows
    np.testing.assert_allclose(-out["g"].weights, taylor_gradient(Xg, z, y), atol=1e-12)
    e = choose_exponent(Xh)
    exact_q = taylor_gradient(quantise(Xh, e) * 16.0**e, z, y)
    np.testing.assert_allclose(-out["h"].weights, exact_q, atol=1e-6)
    np.testing.assert_allclose(-out["h"].weights, taylor_gradient(Xh, z, y), atol=1e-3)


def test_training_and_loss_follow_the_plaintext_reference(breast) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = breast
    params = _params()
    out = _train(params, Xg, y, Xh)
    ref_w, ref_loss = train_plaintext_taylor(
        [Xg, Xh],
        y,
        epochs=2,
        batch_size=200,
        learning_rate=0.3,
        lr_decay=0.01,
        l2=0.001,
        seed=7,
        tol=0.0,
    )
    np.testing.assert_allclose(out["g"].weights, ref_w[0], atol=1e-4)
    np.testing.assert_allclose(out["h"].weights, ref_w[1], atol=1e-4)
    np.testing.assert_allclose(out["g"].losses, ref_loss, rtol=1e-5)
    assert out["g"].rounds == 2 * (len(y) // 200)


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_each_optimizer_follows_the_plaintext_reference(breast, optimizer: str) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = breast
    params = _params(optimizer=optimizer, learning_rate=0.05)
    out = _train(params, Xg, y, Xh)
    ref_w, ref_loss = train_plaintext_taylor(
        [Xg, Xh], y, epochs=2, batch_size=200, learning_rate=0.05, lr_decay=0.01, l2=0.001,
        seed=7, tol=0.0, optimizer=optimizer,
    )  # fmt: skip
    np.testing.assert_allclose(out["g"].weights, ref_w[0], atol=1e-4)
    np.testing.assert_allclose(out["h"].weights, ref_w[1], atol=1e-4)
    np.testing.assert_allclose(out["g"].losses, ref_loss, rtol=1e-5)


def test_early_stop_on_loss_stops_both(breast) -> None:  # type: ignore[no-untyped-def]
    Xg, Xh, y = breast
    out = _train(_params(epochs=10, batch_size=284, tol=10.0), Xg, y, Xh)
    assert len(out["g"].losses) == 2
    assert out["g"].rounds == 2 * 2


def test_layout_splits_wide_tables_into_groups() -> None:
    n = (1 << 2047) + 1
    layout = Layout(count=60, bits=17, max_batch=2000, n=n)
    assert layout.slot_bits == 17 + 28 + 11 + 1
    assert layout.groups == 2 and layout.per_group == (2046 - 128) // 57
    assert list(layout.group_columns(1)) == list(range(layout.per_group, 60))


def test_one_vs_rest_trains_one_model_per_class_like_the_plaintext_reference(
    shared_data: Path,
) -> None:
    guest = load_table(
        shared_data / "vehicle_scale_hetero_guest.csv", id_column="id", label_column="y"
    )
    host = load_table(shared_data / "vehicle_scale_hetero_host.csv", id_column="id")
    index = host.index_of()
    host = host.select(np.array([index[i] for i in guest.ids]))
    assert guest.y is not None
    Xg = Standardizer.fit(guest.X).transform(guest.X)
    Xg = np.hstack([Xg, np.ones((len(Xg), 1))])
    Xh = Standardizer.fit(host.X).transform(host.X)
    Y = np.eye(4)[guest.y.astype(int)]  # one 0/1 column per class
    params = _params(epochs=2, batch_size=256)
    out = _train(params, Xg, Y, Xh)
    assert out["g"].weights.shape == (Xg.shape[1], 4)
    assert out["h"].weights.shape == (Xh.shape[1], 4)
    total_loss = np.zeros(2)
    for c in range(4):
        ref_w, ref_loss = train_plaintext_taylor(
            [Xg, Xh],
            Y[:, c],
            epochs=2,
            batch_size=256,
            learning_rate=0.3,
            lr_decay=0.01,
            l2=0.001,
            seed=7,
            tol=0.0,
        )
        np.testing.assert_allclose(out["g"].weights[:, c], ref_w[0], atol=1e-4)
        np.testing.assert_allclose(out["h"].weights[:, c], ref_w[1], atol=1e-4)
        total_loss += ref_loss
    # the loss the guest reports is the classes' summed Taylor loss
    np.testing.assert_allclose(out["g"].losses, total_loss, rtol=1e-5)
    scores = Xg @ out["g"].weights + Xh @ out["h"].weights
    assert (scores.argmax(axis=1) == guest.y).mean() > 0.6  # it learned the classes


def test_a_layout_too_wide_for_64_bit_slots_names_the_party() -> None:
    n = (1 << 2047) + 1
    fits = Layout(count=5, bits=27, max_batch=200, n=n)
    assert fits.slot_bits == 64 and fits.group_packing(0).slot_bits == (64,) * 5
    fits.check("p")
    with pytest.raises(ConfigError, match=r"party 'p': its quantised features need 28 bits"):
        Layout(count=5, bits=28, max_batch=200, n=n).check("p")
