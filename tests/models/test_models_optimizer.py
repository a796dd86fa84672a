"""Per-party optimisers: SGD is today's update, state resumes bit for bit, Adam converges."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lianmo.data.split import batch_schedule
from lianmo.errors import ConfigError, ProtocolError
from lianmo.models.logistic import taylor_residual, train_plaintext_taylor
from lianmo.models.optimizer import OPTIMIZERS, make_optimizer, step_weights


def _gradients(n: int, size: int, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=size) * 10 for _ in range(n)]


def test_sgd_is_the_update_lianmo_always_made_bit_for_bit() -> None:
    lr0, decay, l2, n_rows = 0.15, 0.01, 0.003, 1024
    opt = make_optimizer("sgd", lr0, decay)
    w = np.linspace(-1, 1, 7)
    expected = w.copy()
    for step, raw in enumerate(_gradients(25, 7)):
        w = step_weights(opt, w, raw, n_rows, l2, step)
        # models/logistic.py and protocols/hetero_lr.py before optimisers existed
        expected = expected - lr0 / (1.0 + decay * step) * (raw / n_rows + l2 * expected)
        assert np.array_equal(w, expected)
    assert opt.state() == {}


def test_the_plaintext_reference_with_sgd_is_unchanged_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    Xg = np.hstack([rng.normal(size=(300, 3)), np.ones((300, 1))])
    Xh = rng.normal(size=(300, 4))
    y = (rng.random(300) < 0.3).astype(float)
    settings = dict(epochs=3, batch_size=64, learning_rate=0.3, lr_decay=0.02, l2=0.01, seed=5)
    weights, _ = train_plaintext_taylor([Xg, Xh], y, tol=0.0, **settings)  # type: ignore[arg-type]
    # the loop train_plaintext_taylor ran before it took an optimiser
    w = [np.zeros(4), np.zeros(4)]
    step = 0
    for epoch in range(3):
        for batch in batch_schedule(300, 64, epoch, 5):
            z = Xg[batch] @ w[0] + Xh[batch] @ w[1]
            r = taylor_residual(z, y[batch])
            rate = 0.3 / (1.0 + 0.02 * step)
            for X, wp in zip((Xg[batch], Xh[batch]), w, strict=True):
                wp -= rate * (X.T @ r / len(batch) + 0.01 * wp)
            step += 1
    assert np.array_equal(weights[0], w[0]) and np.array_equal(weights[1], w[1])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_state_restored_from_json_continues_bit_for_bit(name: str) -> None:
    grads = _gradients(12, 5)
    straight = make_optimizer(name, 0.05, 0.01)
    w_straight = np.zeros(5)
    for step, g in enumerate(grads):
        w_straight = step_weights(straight, w_straight, g, 100, 0.001, step)

    first = make_optimizer(name, 0.05, 0.01)
    w = np.zeros(5)
    for step, g in enumerate(grads[:4]):
        w = step_weights(first, w, g, 100, 0.001, step)
    saved = json.loads(json.dumps({"w": w.tolist(), "opt": first.state()}))  # a checkpoint
    resumed = make_optimizer(name, 0.05, 0.01, saved["opt"])
    w = np.array(saved["w"])
    for step, g in enumerate(grads[4:], start=4):
        w = step_weights(resumed, w, g, 100, 0.001, step)
    assert np.array_equal(w, w_straight)
    assert resumed.state() == straight.state()


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_one_optimizer_per_party_equals_one_on_all_weights(name: str) -> None:
    """Coordinate-wise: guest and host each stepping their own part give the joint step."""
    grads = _gradients(10, 6)
    joint, guest, host = (make_optimizer(name, 0.1, 0.0) for _ in range(3))
    w = np.zeros(6)
    wg, wh = np.zeros(2), np.zeros(4)
    for step, g in enumerate(grads):
        w = step_weights(joint, w, g, 50, 0.01, step)
        wg = step_weights(guest, wg, g[:2], 50, 0.01, step)
        wh = step_weights(host, wh, g[2:], 50, 0.01, step)
    np.testing.assert_array_equal(np.concatenate([wg, wh]), w)


@pytest.mark.parametrize(("name", "rate"), [("adam", 0.05), ("momentum", 0.1), ("sgd", 0.1)])
def test_each_optimizer_converges_on_a_badly_scaled_least_squares_toy(
    name: str, rate: float
) -> None:
    rng = np.random.default_rng(1)
    A = rng.normal(size=(400, 3)) * np.array([1.0, 3.0, 0.3])
    w_true = np.array([0.5, -0.2, 2.0])
    b = A @ w_true
    opt = make_optimizer(name, rate, 0.002)
    w = np.zeros(3)
    for step in range(3000):
        w = step_weights(opt, w, A.T @ (A @ w - b), len(b), 0.0, step)
    np.testing.assert_allclose(w, w_true, atol=2e-3)


def test_adam_takes_steps_of_about_the_learning_rate_whatever_the_gradient_scale() -> None:
    for scale in (1e-4, 1.0, 1e4):
        opt = make_optimizer("adam", 0.01, 0.0)
        w = step_weights(opt, np.zeros(2), np.array([scale, -scale]), 1, 0.0, 0)
        np.testing.assert_allclose(w, [-0.01, 0.01], rtol=1e-3)


def test_an_unknown_optimizer_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"optimizer is 'lbfgs' but must be one of sgd, mom"):
        make_optimizer("lbfgs", 0.1, 0.0)
    with pytest.raises(ConfigError, match="learning_rate is -0.1"):
        make_optimizer("adam", -0.1, 0.0)


def test_a_state_of_another_optimizer_or_model_is_refused() -> None:
    adam = make_optimizer("adam", 0.1, 0.0)
    step_weights(adam, np.zeros(3), np.ones(3), 10, 0.0, 0)
    with pytest.raises(ProtocolError, match="optimizer 'adam' but the job trains with 'momentum'"):
        make_optimizer("momentum", 0.1, 0.0, adam.state())
    resumed = make_optimizer("adam", 0.1, 0.0, adam.state())
    with pytest.raises(ProtocolError, match="'m' has 3 values but the party has 4 weights"):
        step_weights(resumed, np.zeros(4), np.ones(4), 10, 0.0, 1)
    with pytest.raises(ProtocolError, match="'velocity' is not a list of numbers"):
        make_optimizer("momentum", 0.1, 0.0, {"name": "momentum", "velocity": ["x"]})
