"""One-vs-rest LR through in-process nodes: coordinated (an arbiter) and two-party.

A 4-class job on ``vehicle_scale_hetero`` (the guest's labels 0..3, 9 columns each side):
the model matches per-class plaintext references, the guest's metrics are multi-class,
its validation file holds class probabilities, each share keeps one weight vector per
class (v4), and a scoring job with those shares gives the training job's probabilities.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lianmo.config import JobSpec
from lianmo.errors import ConfigError
from lianmo.node.model_share import CLASSES_FORMAT, LrShare
from tests.node.inprocess_nodes import (
    ARBITER,
    GUEST,
    HOST,
    make_nodes,
    party_config,
    run_in_process,
)

GUEST_FILE, HOST_FILE = "vehicle_scale_hetero_guest.csv", "vehicle_scale_hetero_host.csv"
MODEL = {
    "type": "hetero_lr",
    "objective": "multiclass",
    "epochs": 3,
    "batch_size": 256,  # the guest's 9 columns, bias and 4 label columns need 224 rows
    "learning_rate": 0.3,
    "key_bits": 2048,
}


def _spec(job_id: str, arbiter: bool, task: str = "train", **model: object) -> JobSpec:
    parties = [
        {"name": GUEST, "role": "guest", "address": "-", "dataset": "vehicle_guest"},
        {"name": HOST, "role": "host", "address": "-", "dataset": "vehicle_host"},
    ]
    if arbiter:
        parties.append({"name": ARBITER, "role": "arbiter", "address": "-"})
    raw: dict[str, object] = {
        "job_id": job_id,
        "seed": 5,
        "parties": parties,
        "alignment": {"min_intersection": 100},
        "validation": {"share": 0.2},
        "model": {**MODEL, **model},
    }
    if task == "predict":
        raw |= {"task": "predict", "model_job": "vehicle-ovr"}
    return JobSpec.from_dict(raw)


def _nodes(tmp_path: Path, shared_data: Path, arbiter: bool) -> dict[str, object]:
    configs = {
        GUEST: party_config(tmp_path, GUEST, shared_data, vehicle_guest=(GUEST_FILE, "y")),
        HOST: party_config(tmp_path, HOST, shared_data, vehicle_host=(HOST_FILE, None)),
    }
    if arbiter:
        configs[ARBITER] = party_config(tmp_path, ARBITER, shared_data)
    return make_nodes(tmp_path, shared_data, configs=configs)  # type: ignore[return-value]


def _csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("arbiter", [True, False], ids=["coordinated", "two-party"])
def test_a_four_class_job_trains_one_model_per_class_and_scores_with_them(
    tmp_path: Path, shared_data: Path, arbiter: bool
) -> None:
    nodes = _nodes(tmp_path, shared_data, arbiter)
    report = run_in_process(nodes, _spec("vehicle-ovr", arbiter))  # type: ignore[arg-type]
    metrics = report.metrics()
    validation = metrics["validation"]
    assert set(validation) >= {"accuracy", "log_loss"} and 150 < validation["rows"] < 190
    assert validation["accuracy"] > 0.6  # four classes: chance is about 0.25
    assert len(metrics["loss"]) == 3 and metrics["loss"][-1] < metrics["loss"][0]
    shares = {
        p: LrShare.load(tmp_path / p / "jobs" / "vehicle-ovr" / "model.json", party=p, role=r)
        for p, r in ((GUEST, "guest"), (HOST, "host"))
    }
    for share in shares.values():
        assert share.format == CLASSES_FORMAT and share.outputs == 4
    assert shares[GUEST].intercepts is not None and len(shares[GUEST].intercepts) == 4
    assert shares[HOST].weight_matrix.shape == (9, 4)
    rows = _csv(tmp_path / GUEST / "jobs" / "vehicle-ovr" / "validation_scores.csv")
    assert rows[0] == ["id", "p_0", "p_1", "p_2", "p_3", "class"]
    probs = np.array([[float(v) for v in r[1:5]] for r in rows[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)

    # scoring with the shares: the same probabilities for the validation rows
    scored = run_in_process(
        nodes,  # type: ignore[arg-type]
        _spec("vehicle-ovr-score", arbiter, task="predict"),
    ).metrics()
    assert scored["scored"] == 846 and scored["metrics"]["accuracy"] > 0.6
    scores = _csv(tmp_path / GUEST / "jobs" / "vehicle-ovr-score" / "scores.csv")
    by_id = {r[0]: [float(v) for v in r[1:5]] for r in scores[1:]}
    again = np.array([by_id[r[0]] for r in rows[1:]])
    np.testing.assert_allclose(again, probs, atol=1e-7)


def test_multiclass_labels_in_a_binary_job_and_label_protection_are_refused() -> None:
    with pytest.raises(ConfigError, match="objective is multiclass"):
        _spec("x", True, label_protection={"epsilon": 4.0}, tol=0.0)
    spec = json.loads(_spec("x", True).to_json())
    assert spec["model"]["objective"] == "multiclass"
