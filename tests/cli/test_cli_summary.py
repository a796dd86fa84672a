"""The summary ``lianmo job run`` prints: each kind of model with its own metrics."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from lianmo.cli.main import metric_line, print_summary

PARTY = {
    "role": "guest",
    "phase_seconds": {"align": 1.25, "train": 3.5},
    "messages_sent": 12,
    "bytes_sent": 3 * 2**20,
}


def _metrics(**values: t.Any) -> dict[str, t.Any]:
    return {"job_id": "j", "wall_seconds": 9.87, "parties": {"broker": PARTY}, **values}


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ({"auc": 0.91234, "ks": 0.7, "rows": 114}, "validation AUC 0.9123  KS 0.7000  (114 rows)"),
        (
            {"accuracy": 0.69, "log_loss": 0.826098, "rows": 169},
            "validation accuracy 0.6900  log loss 0.8261  (169 rows)",
        ),
        (
            {"accuracy": 0.7, "log_loss": 0.5, "recall_10": 0.25, "recall_2": 1, "rows": 20},
            "validation accuracy 0.7000  log loss 0.5000  recall by class 2:1.000 10:0.250"
            "  (20 rows)",
        ),
        (
            {"rmse": 3.96, "mae": 3.24, "r2": 0.213145, "rows": 84},
            "validation RMSE 3.9600  MAE 3.2400  R² 0.2131  (84 rows)",
        ),
        ({"gini": 0.5, "rows": 3}, "validation gini 0.5  (3 rows)"),  # a future metric
    ],
    ids=["binary", "multiclass", "multiclass-recall", "regression", "other"],
)
def test_each_kind_of_model_is_shown_with_its_own_metrics(
    values: dict[str, t.Any], line: str
) -> None:
    assert metric_line("validation", values) == line


def test_a_regression_job_summary_prints_without_auc(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    print_summary(
        _metrics(
            task="train",
            validation={"rmse": 3.96, "mae": 3.24, "r2": 0.21, "rows": 84},
            loss=[20.5, 12.25],
            validation_loss=[21.0, 13.0],
            trees=2,
        ),
        tmp_path / "metrics.json",
    )
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        "validation RMSE 3.9600  MAE 3.2400  R² 0.2100  (84 rows)",
        "training loss per round: 20.50000, 12.25000",
        "validation loss per round: 21.00000, 13.00000",
        "wall time 9.9s",
    ]
    assert (
        out[4].split() == "broker guest sent 12 messages (3.0 MiB); align 1.2s, train 3.5s".split()
    )
    assert out[5] == f"metrics: {tmp_path / 'metrics.json'}"


def test_scoring_and_align_jobs_say_what_they_did(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scored = {"accuracy": 0.5, "log_loss": 1.0, "rows": 10}
    print_summary(_metrics(task="predict", scored=10, metrics=scored), tmp_path / "m.json")
    print_summary(_metrics(task="align", aligned=569), tmp_path / "m.json")
    out = capsys.readouterr().out
    assert "scored rows accuracy 0.5000  log loss 1.0000  (10 rows)" in out
    assert "aligned 569 ids common to every data party" in out


def test_a_label_protected_job_shows_its_privacy_budget(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    protection = {"epsilon": 4.0, "delta": 1e-5, "sigma": 7.331715}
    print_summary(_metrics(task="train", label_protection=protection), tmp_path / "m.json")
    print_summary(_metrics(task="train"), tmp_path / "m.json")
    out = capsys.readouterr().out
    line = (
        "label protection: epsilon 4, delta 1e-05 over the whole job (noise sigma 7.33 on "
        "the residuals hosts receive)"
    )
    assert out.count(line) == 1
