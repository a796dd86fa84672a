"""Online scoring as operators run it: ``lianmo party serve`` processes, ``lianmo model``
and ``lianmo score``, over mutual TLS on loopback.

A two-party LR job (2048-bit keys) trains through ``lianmo job run``; both operators
promote it with the CLI; a decision engine's certificate asks the guest with
``lianmo score``, whose scores match the training job's validation scores to 1e-9.
"""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import pytest
import yaml

from tests.integration.test_integration_cli import _explain, _party_toml, lianmo, start_node

pytestmark = pytest.mark.timeout(300)
PARTIES = ("broker", "platform")
JOB = "serve-lr"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_operators_promote_with_the_cli_and_a_decision_engine_scores(
    tmp_path: Path, shared_data: Path
) -> None:
    certs = tmp_path / "certs"
    names = [*PARTIES, "coordinator", "decision-engine"]
    made = lianmo("certs", "init", certs, *(f"--name={n}" for n in names), cwd=tmp_path)
    assert made.returncode == 0, _explain(made)
    serving = {name: f"127.0.0.1:{_free_port()}" for name in PARTIES}
    configs = {}
    for name in PARTIES:
        path = _party_toml(tmp_path / "parties", name, certs, shared_data)
        extra = f'\n[serving]\nlisten = "{serving[name]}"\nclients = ["decision-engine"]\n'
        if name == "broker":
            extra += f'[serving.peers]\nplatform = "{serving["platform"]}"\n'
        path.write_text(path.read_text() + extra)
        configs[name] = path
    nodes = {name: start_node(name, configs[name]) for name in PARTIES}
    try:
        ports = {name: node.wait_port() for name, node in nodes.items()}
        spec = {
            "job_id": JOB,
            "parties": [
                {"name": "broker", "role": "guest", "address": f"127.0.0.1:{ports['broker']}",
                 "dataset": "breast_guest"},
                {"name": "platform", "role": "host",
                 "address": f"127.0.0.1:{ports['platform']}", "dataset": "breast_host"},
            ],
            "alignment": {"min_intersection": 100},
            "model": {"type": "hetero_lr", "epochs": 2, "batch_size": 320},
        }  # fmt: skip
        (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
        coordinator = (
            "--ca", certs / "ca.pem", "--cert", certs / "coordinator.pem",
            "--key", certs / "coordinator.key",
        )  # fmt: skip
        run = lianmo("job", "run", tmp_path / "job.yaml", *coordinator, "--output",
                     tmp_path / "out", cwd=tmp_path, timeout=240)  # fmt: skip
        assert run.returncode == 0, _explain(run)

        before = lianmo("score", *_client(serving, certs), "1", cwd=tmp_path)
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
        scored = lianmo("score", *_client(serving, certs), "--json", *ids, "nobody",
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
        for node in nodes.values():
            node.stop()
    log = (configs["broker"].parent / "node.log").read_text()
    assert f"online scoring on port {serving['broker'].rsplit(':', 1)[1]}" in log


def _client(serving: dict[str, str], certs: Path) -> tuple[object, ...]:
    return (
        "--address", serving["broker"], "--party", "broker", "--model", "credit",
        "--ca", certs / "ca.pem", "--cert", certs / "decision-engine.pem",
        "--key", certs / "decision-engine.key",
    )  # fmt: skip


def _validation_scores(job_dir: Path) -> dict[str, float]:
    with (job_dir / "validation_scores.csv").open(newline="") as fh:
        return {row["id"]: float(row["score"]) for row in csv.DictReader(fh)}
