"""End to end through the ``lianmo`` command: certificates, three party node processes, a
training job and a scoring job run by the coordinator, and how the CLI reports failures.

Every command runs as ``python -m lianmo.cli.main`` under the interpreter running the
tests, so the test works from any virtualenv. Jobs use real 2048-bit Paillier keys.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lianmo.cli.demo import write_party_config
from tests.secret_files import secret_files

pytestmark = pytest.mark.timeout(240)

PARTIES = ("broker", "platform", "arbiter")
TRAIN_JOB = "cli-breast"
START_TIMEOUT_S = 30.0


def lianmo(*args: object, cwd: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run one ``lianmo`` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "lianmo.cli.main", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


@dataclass
class NodeProcess:
    """One ``lianmo party serve`` process."""

    name: str
    proc: subprocess.Popen[bytes]
    config: Path

    @property
    def port_file(self) -> Path:
        return self.config.parent / "node.port"

    @property
    def log(self) -> Path:
        return self.config.parent / "node.log"

    @property
    def state_dir(self) -> Path:
        return self.config.parent  # write_party_config puts state_dir = "." beside it

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_port(self, timeout_s: float = START_TIMEOUT_S) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"node '{self.name}' exited at start:\n{self.log_text()}")
            text = self.port_file.read_text().strip() if self.port_file.exists() else ""
            if text:
                return int(text)
            time.sleep(0.05)
        pytest.fail(f"node '{self.name}' wrote no port file within {timeout_s}s")

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, then wait; kill if it hangs. Returns the exit code (None if killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def start_node(name: str, config: Path) -> NodeProcess:
    port_file = config.parent / "node.port"
    port_file.unlink(missing_ok=True)
    with (config.parent / "node.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lianmo.cli.main",
                "party",
                "serve",
                "--config",
                str(config),
                "--port-file",
                str(port_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
        )
    return NodeProcess(name, proc, config)


def _party_toml(directory: Path, name: str, certs: Path, shared_data: Path) -> Path:
    datasets: dict[str, tuple[Path, str, str | None]] = {
        "broker": {
            "breast_guest": (shared_data / "breast_hetero_guest.csv", "id", "y"),
            "vehicle_guest": (shared_data / "vehicle_scale_hetero_guest.csv", "id", "y"),
            "student_guest": (shared_data / "student_hetero_guest.csv", "id", "y"),
        },
        "platform": {
            "breast_host": (shared_data / "breast_hetero_host.csv", "id", None),
            "vehicle_host": (shared_data / "vehicle_scale_hetero_host.csv", "id", None),
            "student_host": (shared_data / "student_hetero_host.csv", "id", None),
        },
        "arbiter": {},
    }[name]
    path = write_party_config(directory / name, name, certs, datasets)
    # Top-level keys go before the first table: fail within minutes, not half an hour.
    path.write_text("recv_timeout_s = 120\n" + path.read_text())
    return path


# ---- fixtures: one CA, three node processes for the module ------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def certs(workdir: Path) -> Path:
    directory = workdir / "certs"
    names = [*PARTIES, "coordinator"]
    proc = lianmo("certs", "init", directory, *(f"--name={n}" for n in names), cwd=workdir)
    assert proc.returncode == 0, _explain(proc)
    assert (
        "wrote a CA, certificates and audit signing keys for broker, platform, arbiter, "
        "coordinator" in proc.stdout
    )
    return directory


@pytest.fixture(scope="module")
def coordinator_args(certs: Path) -> tuple[str, ...]:
    return (
        "--ca",
        str(certs / "ca.pem"),
        "--cert",
        str(certs / "coordinator.pem"),
        "--key",
        str(certs / "coordinator.key"),
    )


@pytest.fixture(scope="module")
def nodes(workdir: Path, certs: Path, shared_data: Path) -> Iterator[dict[str, NodeProcess]]:
    configs = {n: _party_toml(workdir / "parties", n, certs, shared_data) for n in PARTIES}
    running: dict[str, NodeProcess] = {}
    try:
        for name, config in configs.items():
            running[name] = start_node(name, config)
        for node in running.values():
            node.wait_port()
        yield running
    finally:
        codes = {name: node.stop() for name, node in running.items()}
    # Nodes that ran real jobs (and still hold their job threads) must stop cleanly too.
    assert codes == dict.fromkeys(running, 0), {n: running[n].log_text() for n in running}


@pytest.fixture(scope="module")
def addresses(nodes: dict[str, NodeProcess]) -> dict[str, str]:
    return {name: f"127.0.0.1:{node.wait_port()}" for name, node in nodes.items()}


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _job(job_id: str, addresses: Mapping[str, str], **extra: object) -> dict[str, object]:
    datasets = {"broker": "breast_guest", "platform": "breast_host", "arbiter": None}
    roles = {"broker": "guest", "platform": "host", "arbiter": "arbiter"}
    return {
        "job_id": job_id,
        "seed": 11,
        "parties": [
            {
                "name": name,
                "role": roles[name],
                "address": addresses[name],
                **({"dataset": datasets[name]} if datasets[name] else {}),
            }
            for name in PARTIES
        ],
        "alignment": {"min_intersection": 100},
        "validation": {"share": 0.2},
        "model": {"type": "hetero_lr", "epochs": 1, "batch_size": 320, "learning_rate": 0.5},
        **extra,
    }


def _write_yaml(path: Path, spec: Mapping[str, object]) -> Path:
    path.write_text(yaml.safe_dump(dict(spec), sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(
    workdir: Path, addresses: dict[str, str], coordinator_args: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    spec = _write_yaml(workdir / "job.yaml", _job(TRAIN_JOB, addresses))
    return lianmo("job", "run", spec, *coordinator_args, "--output", workdir / "out", cwd=workdir)


# ---- the happy path -------------------------------------------------------------------


def test_certs_init_writes_private_keys_only_the_owner_can_read(certs: Path) -> None:
    for name in (*PARTIES, "coordinator"):
        assert (certs / f"{name}.pem").exists()
        assert (certs / f"{name}.key").stat().st_mode & 0o077 == 0
    assert (certs / "ca.pem").exists() and not (certs / "ca.key").exists()
    assert (certs / "ca" / "ca.key").stat().st_mode & 0o077 == 0  # the CA key, apart


def test_job_run_trains_and_writes_metrics(
    trained: subprocess.CompletedProcess[str], workdir: Path
) -> None:
    assert trained.returncode == 0, _explain(trained)
    metrics = json.loads((workdir / "out" / "metrics.json").read_text())
    assert metrics["job_id"] == TRAIN_JOB and metrics["task"] == "train"
    assert metrics["validation"]["auc"] > 0.95
    assert 0 < metrics["validation"]["ks"] <= 1
    assert len(metrics["loss"]) == 1
    for name in PARTIES:
        assert metrics["parties"][name]["messages_sent"] > 0
    job = json.loads((workdir / "out" / "job.json").read_text())
    assert job["job_id"] == TRAIN_JOB and len(job["spec_sha256"]) == 64
    assert "validation AUC" in trained.stdout
    assert f"metrics: {workdir / 'out' / 'metrics.json'}" in trained.stdout
    assert f"job '{TRAIN_JOB}': 3 parties reachable" in trained.stderr
    assert "Traceback" not in trained.stderr


def test_job_run_leaves_shares_and_audit_logs_with_the_parties(
    trained: subprocess.CompletedProcess[str], nodes: dict[str, NodeProcess]
) -> None:
    assert trained.returncode == 0, _explain(trained)
    for name, node in nodes.items():
        job_dir = node.state_dir / "jobs" / TRAIN_JOB
        assert (job_dir / "audit.jsonl").exists() and (job_dir / "result.json").exists()
        assert (job_dir / "model.json").exists() == (name != "arbiter")


def test_the_job_folders_handed_to_auditors_hold_no_seed_and_no_key(
    trained: subprocess.CompletedProcess[str], nodes: dict[str, NodeProcess]
) -> None:
    """Each node drew its seed into state_dir/secrets/JOB (0700/0600), not into jobs/JOB."""
    assert trained.returncode == 0, _explain(trained)
    for node in nodes.values():
        assert secret_files(node.state_dir / "jobs") == []
        seed = node.state_dir / "secrets" / TRAIN_JOB / "drbg.seed"
        assert len(seed.read_bytes()) == 32 and seed.stat().st_mode & 0o777 == 0o600
        assert seed.parent.stat().st_mode & 0o777 == 0o700


def test_predict_scores_every_aligned_id_at_the_guest(
    trained: subprocess.CompletedProcess[str],
    workdir: Path,
    addresses: dict[str, str],
    coordinator_args: tuple[str, ...],
    nodes: dict[str, NodeProcess],
) -> None:
    assert trained.returncode == 0, _explain(trained)
    spec = _write_yaml(
        workdir / "predict.yaml",
        _job("cli-breast-scores", addresses, task="predict", model_job=TRAIN_JOB),
    )
    out = workdir / "predict-out"
    proc = lianmo("predict", spec, *coordinator_args, "--output", out, cwd=workdir)
    assert proc.returncode == 0, _explain(proc)
    scores = nodes["broker"].state_dir / "jobs" / "cli-breast-scores" / "scores.csv"
    lines = scores.read_text().splitlines()
    assert lines[0] == "id,score" and len(lines) == 570
    assert all(0.0 <= float(line.split(",")[1]) <= 1.0 for line in lines[1:])
    assert not (nodes["platform"].state_dir / "jobs" / "cli-breast-scores" / "scores.csv").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "predict" and metrics["scored"] == 569


# ---- how the CLI fails ------------------------------------------------------------------


def test_unknown_field_in_the_job_spec_is_a_one_line_config_error(
    workdir: Path, coordinator_args: tuple[str, ...]
) -> None:
    spec = _job("cli-typo", dict.fromkeys(PARTIES, "127.0.0.1:1"))
    spec["model"] = {**spec["model"], "learning_rte": 0.1}  # type: ignore[dict-item]
    path = _write_yaml(workdir / "typo.yaml", spec)
    proc = lianmo("job", "run", path, *coordinator_args, cwd=workdir)
    assert proc.returncode == 2, _explain(proc)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, _explain(proc)
    assert lines[0].startswith("lianmo: error: ")
    assert "unknown field(s) ['learning_rte']" in lines[0] and str(path) in lines[0]
    assert proc.stdout == ""


def test_a_data_set_missing_from_a_partys_catalogue_fails_the_job_naming_the_party(
    workdir: Path,
    addresses: dict[str, str],
    coordinator_args: tuple[str, ...],
    nodes: dict[str, NodeProcess],
) -> None:
    spec = _job("cli-no-dataset", addresses)
    spec["parties"][1]["dataset"] = "breast_hots"  # type: ignore[index]
    path = _write_yaml(workdir / "no-dataset.yaml", spec)
    proc = lianmo("job", "run", path, *coordinator_args, "--output", workdir / "x", cwd=workdir)
    assert proc.returncode == 8, _explain(proc)  # JobFailedError
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("lianmo: job failed at party 'platform': [platform] ")
    assert "no data set named 'breast_hots'" in last and "breast_host" in last
    assert not (workdir / "x" / "metrics.json").exists()
    assert not (nodes["platform"].state_dir / "jobs" / "cli-no-dataset").exists()


def test_job_run_against_a_port_where_nothing_listens_names_the_party(
    workdir: Path, addresses: dict[str, str], coordinator_args: tuple[str, ...], free_port: int
) -> None:
    path = _write_yaml(
        workdir / "nobody.yaml",
        _job("cli-nobody", {**addresses, "platform": f"127.0.0.1:{free_port}"}),
    )
    started = time.monotonic()
    proc = lianmo("job", "run", path, *coordinator_args, cwd=workdir, timeout=90)
    assert time.monotonic() - started < 60
    assert proc.returncode == 6, _explain(proc)  # TransportError
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"party 'platform' at 127.0.0.1:{free_port} is not serving" in last


def test_party_node_stops_cleanly_on_sigterm(
    tmp_path: Path, certs: Path, shared_data: Path
) -> None:
    node = start_node("arbiter", _party_toml(tmp_path, "arbiter", certs, shared_data))
    try:
        port = node.wait_port()
        assert f"party 'arbiter' listening on 127.0.0.1:{port} (mutual TLS)" in node.log_text()
        # The port file is written just before the signal handlers are installed.
        time.sleep(0.5)
    finally:
        code = node.stop()
    assert code == 0, node.log_text()
    assert "party 'arbiter' stopped" in node.log_text()


def test_party_serve_serves_metrics_and_refuses_a_metrics_port_in_use(
    tmp_path: Path, certs: Path, shared_data: Path
) -> None:
    config = _party_toml(tmp_path, "arbiter", certs, shared_data)
    plain = config.read_text()
    config.write_text(plain + '\n[metrics]\nlisten = "127.0.0.1:0"\n')
    node = start_node("arbiter", config)
    try:
        node.wait_port()
        found = re.search(r"metrics \(plaintext HTTP\) on port (\d+)", node.log_text())
        assert found, node.log_text()
        url = f"http://127.0.0.1:{found[1]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            page = response.read().decode()
        assert 'lianmo_jobs{state="running"} 0.0' in page
        assert "process_resident_memory_bytes" in page
        with socket.socket() as taken:  # a second node on a port in use stops at start
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            config.write_text(plain + f'\n[metrics]\nlisten = "127.0.0.1:{busy}"\n')
            proc = lianmo("party", "serve", "--config", config, cwd=tmp_path, timeout=60)
    finally:
        assert node.stop() == 0, node.log_text()
    assert proc.returncode == 2, _explain(proc)  # ConfigError
    assert "Traceback" not in proc.stderr
    assert (
        f"lianmo: error: party 'arbiter' cannot serve metrics on '127.0.0.1:{busy}' "
        "(Address already in use); set [metrics] listen" in proc.stderr
    )


def test_party_serve_refuses_a_certificate_of_another_party(
    tmp_path: Path, certs: Path, shared_data: Path
) -> None:
    config = _party_toml(tmp_path, "arbiter", certs, shared_data)
    config.write_text(config.read_text().replace("arbiter.pem", "platform.pem"))
    config.write_text(config.read_text().replace("arbiter.key", "platform.key"))
    proc = lianmo("party", "serve", "--config", config, cwd=tmp_path, timeout=30)
    assert proc.returncode == 2, _explain(proc)
    assert "Traceback" not in proc.stderr
    assert "names the party 'arbiter' but tls.cert belongs to 'platform'" in proc.stderr
