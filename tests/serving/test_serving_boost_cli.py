"""Online SecureBoost as operators run it: multi-class (the suitability model) and
regression through ``lianmo party serve`` processes, ``lianmo model promote`` and
``lianmo score``, over mutual TLS on loopback (2048-bit keys for training).

Each model trains through ``lianmo job run``; both operators promote it; a decision
engine's certificate asks the guest for the validation ids, and every class probability
(multi-class) or prediction (regression) equals the training job's validation output to
1e-9. Then a second multi-class version rolls out, the host first: in between, the guest
is still answered with the first version, and after its own promotion with the second.
tests/serving/test_serving_equals_batch.py covers the same models in process; this is
the path a user takes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.integration.test_integration_cli import _explain, lianmo
from tests.serving.processes import PARTIES, federation

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]  # about 2 minutes on 2 cores

MODELS = {
    # name: (training job, data set pair, model, task)
    "suitability": (
        "serve-multiclass",
        "vehicle",
        {"type": "secureboost", "objective": "multiclass", "trees": 3, "depth": 3},
        "multiclass",
    ),
    "grades": (
        "serve-regression",
        "student",
        {"type": "secureboost", "objective": "regression", "trees": 3, "depth": 3},
        "regression",
    ),
}


def test_multiclass_and_regression_secureboost_served_by_nodes_equal_batch_outputs(
    tmp_path: Path, shared_data: Path
) -> None:
    fed = federation(tmp_path, shared_data)
    try:
        ports = {name: fed.start(name) for name in PARTIES}
        for model, (job, data, spec, _) in MODELS.items():
            fed.train(job, ports, spec, data=data)
            for name in PARTIES:  # the host first, as docs/serving.md says
                fed.promote(name, model, job)
        for model, (job, _, _, task) in MODELS.items():
            validation = _validation(fed.configs["broker"].parent / "jobs" / job)
            ids = sorted(validation)[:40]
            scored = lianmo("score", *fed.client_args(model), "--json", *ids, cwd=tmp_path)
            assert scored.returncode == 0, _explain(scored)
            answer = json.loads(scored.stdout)
            assert answer["version"] == job and answer["task"] == task
            got = {s["id"]: s["values"] for s in answer["scores"]}
            assert sorted(got) == ids
            for i in ids:
                assert got[i] == pytest.approx(validation[i], abs=1e-9), i
            if task == "multiclass":
                width = {len(v) for v in got.values()}
                assert width == {4}  # the vehicle data's four classes
                assert all(sum(v) == pytest.approx(1.0, abs=1e-9) for v in got.values())

        # a rollout as docs/serving.md gives it: the host first, the guest right after,
        # and every request in between answered by the old version
        old, (_, data, spec, _) = MODELS["suitability"][0], MODELS["suitability"]
        new = "serve-multiclass-2"
        fed.train(new, ports, {**spec, "trees": 2}, data=data)
        host = lianmo("model", "promote", "--config", fed.configs["platform"], "suitability",
                      new, cwd=tmp_path)  # fmt: skip
        assert host.returncode == 0, _explain(host)
        assert f"still answers 'broker' for '{old}' for 600 s" in host.stdout
        for job in (old, new):
            if job == new:
                fed.promote("broker", "suitability", new)
            expected = _validation(fed.configs["broker"].parent / "jobs" / job)
            ids = sorted(expected)[:10]
            scored = lianmo("score", *fed.client_args("suitability"), "--json", *ids,
                            cwd=tmp_path)  # fmt: skip
            assert scored.returncode == 0, _explain(scored)
            answer = json.loads(scored.stdout)
            assert answer["version"] == job
            for s in answer["scores"]:
                assert s["values"] == pytest.approx(expected[s["id"]], abs=1e-9)
    finally:
        fed.stop()


def _validation(job_dir: Path) -> dict[str, list[float]]:
    """The training job's validation output per id: class probabilities or a prediction."""
    with (job_dir / "validation_scores.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = [c for c in rows[0] if c.startswith("p_")] or ["prediction"]
    return {row["id"]: [float(row[c]) for c in columns] for row in rows}
