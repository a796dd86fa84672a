"""SecureBoost regression and multi-class jobs through the ``lianmo`` command: a guest and a
host as ``lianmo party serve`` processes (mutual TLS on loopback, 2048-bit Paillier keys)
and ``lianmo job run`` as the coordinator. Each prints its model's own metrics: RMSE, MAE
and R² for regression, accuracy and log loss for multi-class (a regression job used to
die printing its summary with ``KeyError: 'auc'``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from lianmo.node.confusion import read_confusion

from .test_integration_cli import NodeProcess, _explain
from .two_nodes import GUEST, HOST, make_certs, run_boost_job, running_pair

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-boost")


@pytest.fixture(scope="module")
def coordinator_args(workdir: Path) -> tuple[str, ...]:
    return make_certs(workdir)


@pytest.fixture(scope="module")
def nodes(
    workdir: Path, coordinator_args: tuple[str, ...], shared_data: Path
) -> Iterator[dict[str, NodeProcess]]:
    catalogues = {
        GUEST: {
            "student_guest": (shared_data / "student_hetero_guest.csv", "id", "y"),
            "vehicle_guest": (shared_data / "vehicle_scale_hetero_guest.csv", "id", "y"),
        },
        HOST: {
            "student_host": (shared_data / "student_hetero_host.csv", "id", None),
            "vehicle_host": (shared_data / "vehicle_scale_hetero_host.csv", "id", None),
        },
    }
    with running_pair(workdir, catalogues) as running:
        yield running


def _metrics(workdir: Path, job_id: str) -> dict[str, object]:
    return dict(json.loads((workdir / "out" / job_id / "metrics.json").read_text()))


def test_a_regression_job_prints_rmse_mae_and_r2(
    workdir: Path, nodes: dict[str, NodeProcess], coordinator_args: tuple[str, ...]
) -> None:
    proc = run_boost_job(
        workdir,
        nodes,
        coordinator_args,
        "sb-student",
        ("student_guest", "student_host"),
        {"objective": "regression", "trees": 8, "depth": 3},
    )
    assert proc.returncode == 0, _explain(proc)
    assert "Traceback" not in proc.stderr
    val = _metrics(workdir, "sb-student")["validation"]
    assert isinstance(val, dict) and set(val) == {"rmse", "mae", "r2", "rows"}
    # the final grade (0-20) from demographic columns only: eight trees explain about a
    # fifth of its variance (0.21 with this seed); a constant prediction has R² <= 0
    assert val["r2"] > 0.15 and 0 < val["mae"] <= val["rmse"] < 5
    assert 60 < val["rows"] < 100
    line = next(x for x in proc.stdout.splitlines() if x.startswith("validation "))
    assert line == (
        f"validation RMSE {val['rmse']:.4f}  MAE {val['mae']:.4f}  R² {val['r2']:.4f}  "
        f"({val['rows']} rows)"
    )
    assert "AUC" not in proc.stdout
    assert "training loss per round: " in proc.stdout


def test_a_multiclass_job_prints_accuracy_and_log_loss(
    workdir: Path, nodes: dict[str, NodeProcess], coordinator_args: tuple[str, ...]
) -> None:
    proc = run_boost_job(
        workdir,
        nodes,
        coordinator_args,
        "sb-vehicle",
        ("vehicle_guest", "vehicle_host"),
        {"objective": "multiclass", "trees": 3, "depth": 2},
        stratify=True,
    )
    assert proc.returncode == 0, _explain(proc)
    assert "Traceback" not in proc.stderr
    metrics = _metrics(workdir, "sb-vehicle")
    val = metrics["validation"]
    assert isinstance(val, dict) and set(val) == {
        "accuracy",
        "log_loss",
        "rows",
        *(f"recall_{k}" for k in range(4)),
    }
    # four classes of vehicle silhouette: chance is about 0.25 accuracy, log loss ln 4
    assert val["accuracy"] > 0.5 and val["log_loss"] < math.log(4)
    assert 150 < val["rows"] < 190
    recalls = " ".join(f"{k}:{val[f'recall_{k}']:.3f}" for k in range(4))
    line = next(x for x in proc.stdout.splitlines() if x.startswith("validation "))
    assert line == (
        f"validation accuracy {val['accuracy']:.4f}  log loss {val['log_loss']:.4f}  "
        f"recall by class {recalls}  ({val['rows']} rows)"
    )
    assert metrics["trees"] == 12  # one tree per class per round
    # the confusion matrix stays in the guest's job folder; the host has none
    jobs = {n: workdir / "parties" / n / "jobs" / "sb-vehicle" for n in (GUEST, HOST)}
    matrix = read_confusion(jobs[GUEST] / "confusion.csv")
    assert sum(map(sum, matrix)) == val["rows"] and len(matrix) == 4
    assert sum(matrix[k][k] for k in range(4)) == round(val["accuracy"] * val["rows"])
    assert not (jobs[HOST] / "confusion.csv").exists()
