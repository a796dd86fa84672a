"""Online scoring as operators run it: ``lianmo party serve`` processes, ``lianmo model``
and ``lianmo score``, over mutual TLS on loopback.

A two-party LR job (2048-bit keys) trains through ``lianmo job run``; both operators
promote it with the CLI; a decision engine's certificate asks the guest with
``lianmo score``, whose scores match the training job's validation scores to 1e-9.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.integration.test_integration_cli import _explain, lianmo
from tests.serving.processes import PARTIES, federation

pytestmark = pytest.mark.timeout(300)
JOB = "serve-lr"


def test_operators_promote_with_the_cli_and_a_decision_engine_scores(
    tmp_path: Path, shared_data: Path
) -> None:
    fed = federation(tmp_path, shared_data)
    serving, configs = fed.serving, fed.configs
    try:
        ports = {name: fed.start(name) for name in PARTIES}
        fed.train(JOB, ports, {"type": "hetero_lr", "epochs": 2, "batch_size": 320})

        before = lianmo("score", *fed.client_args(), "1", cwd=tmp_path)
        assert before.returncode != 0 and "no version promoted as model 'credit'" in before.stderr

        for name in PARTIES:
            promoted = lianmo("model", "promote", "--config", configs[name], "credit", JOB,
                              cwd=tmp_path)  # fmt: skip
            assert promoted.returncode == 0, _explain(promoted)
            assert f"serves '{JOB}' as model 'credit'" in promoted.stdout
        listed = lianmo("model", "list", "--config", configs["platform"], "--json", cwd=tmp_path)
        assert listed.returncode == 0, _explain(listed)
        info = json.loads(listed.stdout)
        assert info["promoted"] == {"credit": [JOB]}
        assert [v["role"] for v in info["versions"]] == ["host"]

        validation = _validation_scores(configs["broker"].parent / "jobs" / JOB)
        ids = sorted(validation)[:30]
        scored = lianmo("score", *fed.client_args(), "--json", *ids, "nobody",
                        cwd=tmp_path)  # fmt: skip
        assert scored.returncode == 3, _explain(scored)  # an id without a score: exit 3
        answer = json.loads(scored.stdout)
        assert answer["version"] == JOB and answer["task"] == "binary"
        got = {s["id"]: s for s in answer["scores"]}
        assert got["nobody"]["error"] == "party 'broker' has no features for this id"
        for i in ids:
            assert got[i]["values"][0] == pytest.approx(validation[i], abs=1e-9)

        again = lianmo("model", "rollback", "--config", configs["broker"], "credit", cwd=tmp_path)
        assert again.returncode != 0 and "no earlier version" in again.stderr
    finally:
        fed.stop()
    log = (configs["broker"].parent / "node.log").read_text()
    assert f"online scoring on port {serving['broker'].rsplit(':', 1)[1]}" in log


def _validation_scores(job_dir: Path) -> dict[str, float]:
    with (job_dir / "validation_scores.csv").open(newline="") as fh:
        return {row["id"]: float(row["score"]) for row in csv.DictReader(fh)}
