"""A job's lifecycle without blocking, against three ``lianmo party serve`` processes
(mutual TLS on loopback, 2048-bit Paillier keys, the breast data):

- the Python API (``import lianmo``) driving a job from a thread that is not the main
  one, as a notebook kernel's worker would, and cancelling another;
- ``lianmo job run --detach`` followed by ``job status --json``; ``job list``; ``job
  cancel``; ``audit verify --json``; the example script of docs/api.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest

import lianmo
from tests.audit.jobs import hand_to_auditors

from .test_integration_cli import (
    PARTIES,
    NodeProcess,
    _explain,
    _job,
    _party_toml,
    _write_yaml,
    start_node,
)
from .test_integration_cli import lianmo as lianmo_cmd

pytestmark = pytest.mark.timeout(300)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "api_quickstart.py"
LONG = {"type": "hetero_lr", "epochs": 40, "batch_size": 320, "learning_rate": 0.5}


# ---- fixtures: one CA, three node processes for the module -------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lifecycle")


@pytest.fixture(scope="module")
def certs(workdir: Path) -> Path:
    names = [f"--name={n}" for n in (*PARTIES, "coordinator")]
    proc = lianmo_cmd("certs", "init", workdir / "certs", *names, cwd=workdir)
    assert proc.returncode == 0, _explain(proc)
    return workdir / "certs"


@pytest.fixture(scope="module")
def identity(certs: Path) -> tuple[str, ...]:
    files = (("--ca", "ca.pem"), ("--cert", "coordinator.pem"), ("--key", "coordinator.key"))
    return tuple(str(v) for flag, name in files for v in (flag, certs / name))


@pytest.fixture(scope="module")
def nodes(workdir: Path, certs: Path, shared_data: Path) -> Iterator[dict[str, NodeProcess]]:
    running: dict[str, NodeProcess] = {}
    try:
        for name in PARTIES:
            running[name] = start_node(
                name, _party_toml(workdir / "parties", name, certs, shared_data)
            )
        for node in running.values():
            node.wait_port()
        yield running
    finally:
        codes = {name: node.stop() for name, node in running.items()}
    assert codes == dict.fromkeys(running, 0), {n: running[n].log_text() for n in running}


@pytest.fixture(scope="module")
def addresses(nodes: dict[str, NodeProcess]) -> dict[str, str]:
    return {name: f"127.0.0.1:{node.wait_port()}" for name, node in nodes.items()}


def _client(certs: Path, root: Path) -> lianmo.Client:
    return lianmo.Client(
        ca=certs / "ca.pem",
        cert=certs / "coordinator.pem",
        key=certs / "coordinator.key",
        output_root=root,
    )


def _in_thread(fn: t.Callable[[], object], timeout_s: float = 240) -> object:
    """Run ``fn`` in a new thread (as a notebook kernel's worker would) and return its
    value; its exception is raised here."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="notebook-cell")
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), "the API call did not return"
    if "error" in outcome:
        raise t.cast(BaseException, outcome["error"])
    return outcome["value"]


@pytest.fixture(scope="module")
def api_job(workdir: Path, certs: Path, addresses: dict[str, str]) -> lianmo.JobResult:
    """A training job submitted and waited for through the API, off the main thread."""
    handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    seen: list[lianmo.JobStatus] = []

    def cell() -> lianmo.JobResult:
        job = _client(certs, workdir / "api").submit(
            _job("api-breast", addresses), on_progress=seen.append
        )
        assert job.job_id == "api-breast" and job.output == workdir / "api" / "api-breast"
        result = job.wait(timeout=200)
        assert job.status().state == "succeeded" and job.metrics() == result.metrics
        return result

    result = t.cast(lianmo.JobResult, _in_thread(cell))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    assert seen[-1].state == "succeeded" and any(s.parties for s in seen)
    return result


# ---- the Python API ------------------------------------------------------------------------


def test_the_api_runs_a_job_off_the_main_thread_with_typed_metrics_equal_to_metrics_json(
    api_job: lianmo.JobResult, nodes: dict[str, NodeProcess]
) -> None:
    on_disk = json.loads(api_job.metrics_path.read_text())
    assert api_job.metrics.to_json() == on_disk
    assert lianmo.JobMetrics.from_json(on_disk) == api_job.metrics
    validation = api_job.metrics.validation
    assert isinstance(validation, lianmo.BinaryMetrics) and validation.auc > 0.95
    assert validation.rows == on_disk["validation"]["rows"]
    assert api_job.metrics.loss is not None and len(api_job.metrics.loss) == 1
    assert {n: p.role for n, p in api_job.metrics.parties.items()} == {
        "broker": "guest",
        "platform": "host",
        "arbiter": "arbiter",
    }
    recorded = json.loads((api_job.output / "coordinator.json").read_text())
    assert recorded["state"] == "succeeded" and set(recorded["parties"]) == set(PARTIES)
    assert json.loads((api_job.output / "job.json").read_text())["job_id"] == "api-breast"
    for name in ("broker", "platform"):
        assert (nodes[name].state_dir / "jobs" / "api-breast" / "model.json").exists()


def test_a_job_cancelled_through_the_api_is_cancelled_at_every_party(
    workdir: Path, certs: Path, addresses: dict[str, str], nodes: dict[str, NodeProcess]
) -> None:
    client = _client(certs, workdir / "api")

    def cell() -> lianmo.JobStatus:
        job = client.submit(_job("api-cancel", addresses, model=LONG))
        _wait_until(lambda: _training(job.status()), "the job never reached training")
        status = job.cancel(timeout=60)
        with pytest.raises(lianmo.JobCancelledError, match="by this coordinator"):
            job.wait(timeout=0)
        return status

    status = t.cast(lianmo.JobStatus, _in_thread(cell))
    assert status.state == "cancelled"
    asked = client.status("api-cancel")  # every party, asked now
    assert {n: p.state for n, p in asked.parties.items()} == dict.fromkeys(PARTIES, "cancelled")
    output = workdir / "api" / "api-cancel"
    assert json.loads((output / "coordinator.json").read_text())["state"] == "cancelled"
    assert not (output / "metrics.json").exists()
    for name in PARTIES:  # no model share left behind as if complete
        job_dir = nodes[name].state_dir / "jobs" / "api-cancel"
        assert not (job_dir / "model.json").exists() and not (job_dir / "result.json").exists()


def test_the_documented_example_script_runs_a_job(
    workdir: Path, certs: Path, addresses: dict[str, str]
) -> None:
    spec = _write_yaml(workdir / "example.yaml", _job("example-breast", addresses))
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), str(spec), "--certs", str(certs)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, _explain(proc)
    assert "submitted job 'example-breast'" in proc.stdout
    metrics = json.loads((workdir / "jobs" / "example-breast" / "metrics.json").read_text())
    auc = metrics["validation"]["auc"]
    assert f"validation AUC {auc:.4f}" in proc.stdout


# ---- the command line ----------------------------------------------------------------------


def test_job_run_detach_returns_at_once_and_job_status_follows_it_to_succeeded(
    workdir: Path, identity: tuple[str, ...], addresses: dict[str, str]
) -> None:
    model = {"type": "hetero_lr", "epochs": 5, "batch_size": 320, "learning_rate": 0.5}
    spec = _write_yaml(workdir / "detach.yaml", _job("cli-detach", addresses, model=model))
    output = workdir / "jobs" / "cli-detach"
    started = time.monotonic()
    proc = lianmo_cmd("job", "run", spec, *identity, "--output", output, "--detach", cwd=workdir)
    returned_after = time.monotonic() - started
    assert proc.returncode == 0, _explain(proc)
    pid = _watcher_pid(proc)
    try:
        first = _status_json(workdir, output)
        assert first["state"] in ("starting", "running") and first["metrics"] is None
        assert _alive(pid), "the background coordinator is gone already"
        assert f"output: {output}" in proc.stdout
        final = _follow(workdir, output)
    finally:
        _reap(pid)
    assert final["state"] == "succeeded", final
    metrics = json.loads((output / "metrics.json").read_text())
    assert final["metrics"] == metrics and metrics["validation"]["auc"] > 0.95
    assert returned_after < metrics["wall_seconds"]  # well before the job ended
    assert set(final["parties"]) == set(PARTIES)
    assert all(p["state"] == "succeeded" for p in final["parties"].values())
    log = (output / "coordinator.log").read_text()
    assert "job 'cli-detach': 3 parties reachable" in log and "validation AUC" in log


def test_ctrl_c_in_job_run_cancels_the_job_at_every_party(
    workdir: Path, certs: Path, identity: tuple[str, ...], addresses: dict[str, str]
) -> None:
    spec = _write_yaml(workdir / "ctrl-c.yaml", _job("cli-ctrl-c", addresses, model=LONG))
    output = workdir / "jobs" / "cli-ctrl-c"
    with (workdir / "ctrl-c.log").open("w+") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "lianmo.cli.main", "job", "run", str(spec), *identity,
             "--output", str(output)],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_until(lambda: _recorded_training(output), "the job never reached training")
            run.send_signal(signal.SIGINT)
            assert run.wait(timeout=60) == 130
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        log.seek(0)
        assert log.read().rstrip().endswith("interrupted")
    asked = _client(certs, workdir / "jobs").status("cli-ctrl-c")
    assert {n: p.state for n, p in asked.parties.items()} == dict.fromkeys(PARTIES, "cancelled")
    assert json.loads((output / "coordinator.json").read_text())["state"] == "cancelled"


def test_job_list_and_job_cancel_on_a_detached_job(
    workdir: Path,
    identity: tuple[str, ...],
    addresses: dict[str, str],
    nodes: dict[str, NodeProcess],
) -> None:
    spec = _write_yaml(workdir / "cancel.yaml", _job("cli-cancel", addresses, model=LONG))
    output = workdir / "jobs" / "cli-cancel"
    proc = lianmo_cmd("job", "run", spec, *identity, "--output", output, "--detach", cwd=workdir)
    assert proc.returncode == 0, _explain(proc)
    pid = _watcher_pid(proc)
    try:
        _wait_until(lambda: _recorded_training(output), "the detached job never reached training")
        listed = _list_json(workdir)
        assert listed["cli-cancel"]["state"] == "running"
        assert listed["cli-cancel"]["output"] == str(output)
        cancel = lianmo_cmd("job", "cancel", output, *identity, cwd=workdir)
        assert cancel.returncode == 0, _explain(cancel)
        assert "job 'cli-cancel': cancelled at every party" in cancel.stdout
        _wait_until(lambda: not _alive(pid), "the background coordinator did not stop")
    finally:
        _reap(pid)
    asked = json.loads(lianmo_cmd("job", "status", output, *identity, "--json", cwd=workdir).stdout)
    assert asked["asked"] is True and asked["state"] == "cancelled" and asked["metrics"] is None
    assert {n: p["state"] for n, p in asked["parties"].items()} == dict.fromkeys(
        PARTIES, "cancelled"
    )
    assert _list_json(workdir)["cli-cancel"]["state"] == "cancelled"
    text = lianmo_cmd("job", "list", "--root", workdir / "jobs", cwd=workdir).stdout
    assert re.search(r"^cli-cancel\s+cancelled\s", text, re.MULTILINE), text
    for name in PARTIES:
        assert not (nodes[name].state_dir / "jobs" / "cli-cancel" / "model.json").exists()


def test_audit_verify_json_passes_untouched_logs_and_fails_a_tampered_one(
    api_job: lianmo.JobResult, nodes: dict[str, NodeProcess], tmp_path: Path
) -> None:
    job_folders = [nodes[n].state_dir / "jobs" / "api-breast" for n in PARTIES]
    handed = hand_to_auditors(job_folders, tmp_path / "handed")  # the logs, no seed or key
    folders = sorted(handed.iterdir())
    good = lianmo_cmd("audit", "verify", *folders, "--json", cwd=tmp_path)
    assert good.returncode == 0, _explain(good)
    verdict = json.loads(good.stdout)
    assert verdict["ok"] is True and [j["job_id"] for j in verdict["jobs"]] == ["api-breast"]
    assert sorted(verdict["jobs"][0]["parties"]) == sorted(PARTIES)
    assert verdict["jobs"][0]["problems"] == [] and verdict["jobs"][0]["message_records"] > 0
    copies = [shutil.copytree(f, tmp_path / name) for f, name in zip(folders, PARTIES, strict=True)]
    log = Path(copies[1]) / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:5] + lines[6:]))  # the host drops a record
    bad = lianmo_cmd("audit", "verify", *copies, "--json", cwd=tmp_path)
    assert bad.returncode == 9, _explain(bad)
    verdict = json.loads(bad.stdout)
    assert verdict["ok"] is False and verdict["jobs"][0]["ok"] is False
    assert verdict["jobs"][0]["problems"][0]["party"] == "platform"
    assert "failed verification" in bad.stderr


# ---- helpers ---------------------------------------------------------------------------------


def _training(status: lianmo.JobStatus) -> bool:
    return any(p.phase == "train" and p.step > 0 for p in status.parties.values())


def _recorded_training(output: Path) -> bool:
    """Whether coordinator.json says the parties train (it may not exist yet)."""
    try:
        raw = json.loads((output / "coordinator.json").read_text())
    except (OSError, ValueError):
        return False
    return _training(lianmo.JobStatus.from_json(raw))


def _wait_until(ready: t.Callable[[], bool], failure: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(failure)
        time.sleep(0.2)


def _status_json(workdir: Path, output: Path) -> dict[str, t.Any]:
    proc = lianmo_cmd("job", "status", output, "--json", cwd=workdir)
    assert proc.returncode == 0, _explain(proc)
    return dict(json.loads(proc.stdout))


def _follow(workdir: Path, output: Path, timeout_s: float = 200) -> dict[str, t.Any]:
    deadline = time.monotonic() + timeout_s
    while (status := _status_json(workdir, output))["state"] not in (
        "succeeded",
        "failed",
        "cancelled",
    ):
        assert time.monotonic() < deadline, status
        time.sleep(1.0)
    return status


def _list_json(workdir: Path) -> dict[str, dict[str, t.Any]]:
    proc = lianmo_cmd("job", "list", "--root", workdir / "jobs", "--json", cwd=workdir)
    assert proc.returncode == 0, _explain(proc)
    return {row["job_id"]: row for row in json.loads(proc.stdout)}


def _watcher_pid(proc: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r"coordinator process (\d+)", proc.stdout)
    assert found, _explain(proc)
    return int(found[1])


def _alive(pid: int) -> bool:
    """True while the process runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _reap(pid: int) -> None:
    """The background coordinator ends with its job; stop it if a test failed first."""
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
