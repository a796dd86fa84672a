"""The pooled baselines of issue 21's acceptance run (scripts/lr_check.py), on small slices.

The script's jobs run through real nodes (``.ci/run``); here only what they are judged
against: pooled LR's AUC and pooled one-vs-rest LR's accuracy on the job's validation
rows, with every column standardised on the training rows alone, and the bars.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import typing as t
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lianmo.data.split import validation_mask
from lianmo.protocols.lr_guard import floor_rows

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lr_check.py"


@pytest.fixture(scope="module")
def check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lr_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lr_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _slice(ds: t.Any, rows: int) -> t.Any:
    """The first ``rows`` rows, their validation marks kept (they depend on the ids only)."""
    return dataclasses.replace(
        ds, Xg=ds.Xg[:rows], Xh=ds.Xh[:rows], y=ds.y[:rows], val=ds.val[:rows], ids=ds.ids[:rows]
    )


def _by_hand(ds: t.Any) -> tuple[np.ndarray, np.ndarray]:
    """Both parties' columns side by side, and the validation marks."""
    return np.hstack([ds.Xg, ds.Xh]), ds.val


def test_the_split_is_the_jobs_and_pooled_auc_scores_the_validation_rows(
    check: ModuleType, shared_data: Path
) -> None:
    ds = _slice(check.data_sets(shared_data, ["credit"])["credit"], 3000)
    assert ds.files["guest"][0].name == "default_credit_hetero_guest.csv"  # what nodes read
    np.testing.assert_array_equal(ds.val, validation_mask([str(i) for i in ds.ids], 0.2, 42))
    X, val = _by_hand(ds)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(X[~val], ds.y[~val])
    expected = roc_auc_score(ds.y[val], model.decision_function(X[val]))
    got = check.pooled(ds, "auc")
    assert got == pytest.approx(expected, abs=1e-6)
    assert 0.65 < got < 0.8  # the data README's pooled LR is 0.714 on all 30,000 rows


def test_pooled_ovr_accuracy_is_one_binary_lr_per_class_and_the_argmax(
    check: ModuleType, shared_data: Path
) -> None:
    ds = _slice(check.data_sets(shared_data, ["vehicle"])["vehicle"], 400)
    X, val = _by_hand(ds)
    X = StandardScaler().fit(X[~val]).transform(X)
    y = ds.y.astype(int)
    scores = np.column_stack(
        [
            LogisticRegression(max_iter=5000)
            .fit(X[~val], (y[~val] == c).astype(int))
            .decision_function(X[val])
            for c in range(4)
        ]
    )
    expected = float(np.mean(scores.argmax(axis=1) == y[val]))
    got = check.pooled(ds, "accuracy")
    assert got == pytest.approx(expected)
    assert got > 0.6  # four classes: chance is about 0.25


def test_the_bars_and_the_runs_are_issue_21s(check: ModuleType) -> None:
    run = next(r for r in check.runs() if r.name == "vehicle-two-party")
    assert check.judge(run, 0.78, 0.79)["pass"]  # exactly at pooled - 0.01
    assert not check.judge(run, 0.779, 0.79)["pass"]
    assert check.judge(run, 0.779, 0.79)["gap"] == pytest.approx(0.011)
    protocols = {(r.data, r.arbiter) for r in check.runs()}
    assert protocols == {("credit", False), ("demo", False), ("vehicle", True), ("vehicle", False)}
    assert [r.name for r in check.runs() if r.audit] == ["credit"]
    assert all(r.model["key_bits"] == 2048 for r in check.runs())
    # the guest's 9 columns, its bias and the 4 label columns: 14 gradient coordinates
    assert check.VEHICLE_MODEL["batch_size"] >= floor_rows(9 + 1 + 4)
