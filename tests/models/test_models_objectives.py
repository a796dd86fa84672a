"""Boosting objectives: derivatives match finite differences; labels and weights are checked."""

from __future__ import annotations

import numpy as np
import pytest

from lianmo.errors import ConfigError, DataError
from lianmo.models.objectives import Objective


def _loss_per_row(obj: Objective, y: np.ndarray, F: np.ndarray) -> np.ndarray:
    return np.array([obj.loss(y[i : i + 1], F[i : i + 1]) for i in range(len(y))])


@pytest.mark.parametrize(
    ("name", "y", "outputs"),
    [
        ("binary", np.array([0.0, 1.0, 1.0, 0.0]), 1),
        ("multiclass", np.array([0.0, 2.0, 1.0, 2.0]), 3),
        ("regression", np.array([1.5, -2.0, 0.25, 3.0]), 1),
    ],
)
def test_gradient_and_hessian_match_finite_differences(
    name: str, y: np.ndarray, outputs: int
) -> None:
    obj = Objective.for_labels(name, y, where="party 'broker'")
    assert obj.outputs == outputs
    F = np.random.default_rng(1).normal(size=(len(y), outputs))
    g, h = obj.grad_hess(y, F)
    scale = 2.0 if name == "regression" else 1.0  # loss() is the MSE, g is for (F - y)^2 / 2
    eps = 1e-5
    for k in range(outputs):
        step = np.zeros_like(F)
        step[:, k] = eps
        up, mid, down = (_loss_per_row(obj, y, F + s) for s in (step, 0 * step, -step))
        np.testing.assert_allclose(g[:, k] * scale, (up - down) / (2 * eps), atol=1e-6)
        np.testing.assert_allclose(h[:, k] * scale, (up - 2 * mid + down) / eps**2, atol=1e-3)


def test_start_scores_reproduce_the_label_distribution() -> None:
    y = np.array([0.0] * 30 + [1.0] * 10)
    obj = Objective.for_labels("binary", y, where="x")
    p = obj.predict_proba(np.tile(obj.init_score(y, np.ones(40)), (1, 1)))
    assert p[0] == pytest.approx(0.25)
    y3 = np.array([0.0] * 20 + [1.0] * 10 + [2.0] * 10)
    obj3 = Objective.for_labels("multiclass", y3, where="x")
    probs = obj3.predict_proba(obj3.init_score(y3, np.ones(40))[None, :])
    np.testing.assert_allclose(probs[0], [0.5, 0.25, 0.25])


def test_class_weights_balanced_and_explicit() -> None:
    y = np.array([0.0, 0.0, 0.0, 1.0])
    obj = Objective.for_labels("binary", y, where="x")
    np.testing.assert_allclose(obj.row_weights(y, "balanced"), [2 / 3, 2 / 3, 2 / 3, 2.0])
    np.testing.assert_allclose(obj.row_weights(y, (1.0, 5.0)), [1, 1, 1, 5])
    with pytest.raises(ConfigError, match="one weight per class"):
        obj.row_weights(y, (1.0, 2.0, 3.0))


@pytest.mark.parametrize(
    ("name", "y", "message"),
    [
        ("binary", [0.0, 2.0], "label 2 in aligned row 1 does not suit a binary"),
        ("multiclass", [0.0, 1.5], "label 1.5 in aligned row 1"),
        ("binary", [1.0, 1.0], "only one class"),
    ],
)
def test_labels_that_do_not_suit_the_objective_are_refused(
    name: str, y: list[float], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        Objective.for_labels(name, np.array(y), where="party 'broker'")
