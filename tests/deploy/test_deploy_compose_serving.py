"""The compose file's whole path, as processes: nodes, the demo job, promotion, scoring.

No container engine runs here, so every service of ``deploy/compose/compose.yaml`` runs
as a local process with exactly its mounts, its config and its command
(:mod:`tests.deploy.compose_local`), in the order the documented commands run them:
``certs init``, the nodes (until the image's health check passes), ``run --rm
coordinator`` (the demo job: 27,000 + 28,000 rows, 2048-bit keys, arbiter-coordinated LR),
``run --rm promote-broker`` (the platform first), ``run --rm score``. The served scores
of the job's validation ids equal the job's own validation scores to 1e-9.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lianmo.config import JobSpec
from tests.deploy.compose_local import (
    COMPOSE,
    LocalCompose,
    documented_certs_init,
    labels,
    lianmo_command,
    scrape_metrics,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
NODES = ("broker", "platform", "arbiter")
LIANMO = lianmo_command()


def _run(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert argv[0] == "lianmo", argv
    return subprocess.run(
        [LIANMO, *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


@pytest.fixture
def local(tmp_path: Path) -> LocalCompose:
    """The documented ``certs init`` run for real, and the services laid out under tmp_path."""
    args = documented_certs_init((COMPOSE / "compose.yaml").read_text())
    args = [a.replace("deploy/compose", str(tmp_path)) for a in args]
    made = _run(["lianmo", "certs", "init", *args], cwd=tmp_path)
    assert made.returncode == 0, _explain(made)
    return LocalCompose(tmp_path, tmp_path / "certs")


@pytest.fixture
def nodes(local: LocalCompose) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The three party services, started as compose starts them, healthy."""
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in NODES:
            argv = local.lay_out(name)
            assert argv[0] == "lianmo"
            log = local.service_root(name) / "node.log"
            with log.open("wb") as out:
                started[name] = subprocess.Popen(
                    [LIANMO, *argv[1:]], cwd=local.service_root(name), stdout=out, stderr=out
                )
        for name in NODES:
            _wait_healthy(local, name, started[name])
        yield started
    finally:
        for proc in started.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in started.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(local: LocalCompose, name: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        probe = _run(local.health_check(name), cwd=local.root, timeout=30)
        if probe.returncode == 0:
            return
        log = (local.service_root(name) / "node.log").read_text(errors="replace")
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"service '{name}' never became healthy: {_explain(probe)}\n{log}")
        time.sleep(0.5)


def test_compose_serving_path_trains_promotes_and_scores_as_documented(
    local: LocalCompose, nodes: dict[str, subprocess.Popen[bytes]]
) -> None:
    # Before anything is promoted, a decision engine's request is refused, saying why.
    early = _run(local.lay_out("score"), cwd=local.root)
    assert early.returncode != 0
    assert "no version promoted as model 'credit'" in early.stderr, _explain(early)

    trained = _run(local.lay_out("coordinator"), cwd=local.root, timeout=1000)
    assert trained.returncode == 0, _explain(trained)
    job = JobSpec.load(local.service_root("coordinator") / "etc/lianmo/job.yaml").job_id

    for service in ("promote-platform", "promote-broker"):  # promote-broker's depends_on
        promoted = _run(local.lay_out(service), cwd=local.root)
        assert promoted.returncode == 0, _explain(promoted)
        assert f"serves '{job}' as model 'credit'" in promoted.stdout
    again = _run(local.lay_out("promote-platform"), cwd=local.root)
    assert again.returncode != 0 and f"already serves version '{job}'" in again.stderr

    scored = _run(local.lay_out("score"), cwd=local.root)
    assert scored.returncode == 0, _explain(scored)
    head, *lines = scored.stdout.splitlines()
    assert head == f"model 'credit' version {job} (binary)"
    command = local.spec["services"]["score"]["command"]
    assert [ln.split("\t")[0] for ln in lines] == command
    assert all(0 < float(ln.split("\t")[1]) < 1 for ln in lines)

    # Other ids after the service name (`run --rm score ID...`): the job's validation ids
    # score exactly as the training job scored them.
    broker_jobs = local.root / "volumes" / "broker-state" / "jobs" / job
    with (broker_jobs / "validation_scores.csv").open(newline="") as fh:
        validation = {row["id"]: float(row["score"]) for row in csv.DictReader(fh)}
    ids = sorted(validation)[:50]
    chosen = _run(local.lay_out("score", ["--json", *ids]), cwd=local.root)
    assert chosen.returncode == 0, _explain(chosen)
    answer = json.loads(chosen.stdout)
    assert answer["version"] == job
    got = {s["id"]: s["values"][0] for s in answer["scores"]}
    assert got == pytest.approx({i: validation[i] for i in ids}, abs=1e-9)

    # Every node's metrics port answers Prometheus' scrape; the guest counted the two
    # answered requests, the host the parts it gave the guest for them.
    samples = {name: scrape_metrics(local.port(name, 9464)) for name in NODES}
    ok = {"model": "credit", "outcome": "ok"}
    assert samples["broker"]["lianmo_serving_requests_total", labels(ok)] == 2
    parts = labels(ok | {"caller": "broker"})
    assert samples["platform"]["lianmo_serving_partials_total", parts] == 2
    assert any(metric == "lianmo_messages_total" for metric, _ in samples["arbiter"])
