"""Each task's evaluation equals scikit-learn's metrics on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from lianmo.models.evaluation import Evaluation, EvaluationError, evaluate

RNG = np.random.default_rng(7)


def test_binary_gives_auc_and_ks() -> None:
    y = RNG.integers(0, 2, 200).astype(float)
    p = np.clip(0.3 * y + RNG.random(200) * 0.7, 0, 1)
    ev = evaluate("binary", y, p)
    assert set(ev.values) == {"auc", "ks"} and ev.rows == 200
    assert ev.values["auc"] == pytest.approx(sk.roc_auc_score(y, p), abs=1e-6)


def test_multiclass_gives_accuracy_and_log_loss() -> None:
    y = RNG.integers(0, 3, 150)
    p = RNG.dirichlet([1, 1, 1], 150)
    ev = evaluate("multiclass", y, p, n_classes=3)
    assert ev.values["accuracy"] == pytest.approx(sk.accuracy_score(y, p.argmax(1)), abs=1e-6)
    assert ev.values["log_loss"] == pytest.approx(sk.log_loss(y, p, labels=[0, 1, 2]), abs=1e-6)
    with pytest.raises(EvaluationError, match="outside the model's classes"):
        evaluate("multiclass", np.array([0, 3]), np.full((2, 3), 1 / 3), n_classes=3)


def test_multiclass_gives_recall_per_class_and_the_confusion_matrix() -> None:
    y = RNG.integers(0, 4, 300)
    y[y == 2] = 1  # class 2 has no rows: no recall_2, an empty row in the matrix
    p = RNG.dirichlet([1, 1, 1, 1], 300)
    ev = evaluate("multiclass", y, p, n_classes=4)
    predicted = p.argmax(1)
    recall = sk.recall_score(y, predicted, labels=[0, 1, 3], average=None)
    assert [ev.values[f"recall_{k}"] for k in (0, 1, 3)] == pytest.approx(recall, abs=1e-6)
    assert "recall_2" not in ev.values
    assert ev.confusion == tuple(
        map(tuple, sk.confusion_matrix(y, predicted, labels=[0, 1, 2, 3]).tolist())
    )
    assert ev.values["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted), abs=1e-6)
    # the matrix stays with the guest: not in the JSON form it reports
    assert Evaluation.from_json(ev.to_json()).confusion == ()
    assert set(ev.to_json()) == {"accuracy", "log_loss", "recall_0", "recall_1", "recall_3", "rows"}


def test_regression_gives_rmse_mae_r2() -> None:
    y = RNG.normal(size=100)
    pred = y + RNG.normal(scale=0.3, size=100)
    ev = evaluate("regression", y, pred)
    assert ev.values["r2"] == pytest.approx(sk.r2_score(y, pred), abs=1e-6)
    assert ev.values["mae"] == pytest.approx(sk.mean_absolute_error(y, pred), abs=1e-6)
    assert ev.values["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, pred)), abs=1e-6)


def test_one_class_cannot_be_evaluated_and_json_round_trips() -> None:
    with pytest.raises(EvaluationError, match="only one class"):
        evaluate("binary", np.zeros(5), np.linspace(0, 1, 5))
    ev = Evaluation({"auc": 0.75, "ks": 0.5}, 10)
    assert ev.to_json() == {"auc": 0.75, "ks": 0.5, "rows": 10}
    assert Evaluation.from_json(ev.to_json()) == ev
