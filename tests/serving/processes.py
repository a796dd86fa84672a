"""Two real ``lianmo party serve`` processes (broker guest, platform host) with online
scoring on, a two-party LR model trained through ``lianmo job run`` (2048-bit keys).

Each node's scoring port is fixed before it starts (a restarted host comes back on it).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.integration.test_integration_cli import (
    NodeProcess,
    _explain,
    _party_toml,
    lianmo,
    start_node,
)

PARTIES = ("broker", "platform")
CLIENT = "decision-engine"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Federation:
    root: Path
    certs: Path
    configs: dict[str, Path] = field(default_factory=dict)
    serving: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, NodeProcess] = field(default_factory=dict)

    def start(self, name: str) -> int:
        self.nodes[name] = start_node(name, self.configs[name])
        return self.nodes[name].wait_port()

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    def client_args(self, model: str = "credit") -> tuple[object, ...]:
        """``lianmo score`` options of a decision engine asking the broker."""
        return (
            "--address", self.serving["broker"], "--party", "broker", "--model", model,
            "--ca", self.certs / "ca.pem", "--cert", self.certs / f"{CLIENT}.pem",
            "--key", self.certs / f"{CLIENT}.key",
        )  # fmt: skip

    def train(
        self, job: str, ports: dict[str, int], model: dict[str, object], data: str = "breast"
    ) -> None:
        """Train ``model`` on data set pair ``data`` (``DATA_guest`` at the broker,
        ``DATA_host`` at the platform) through ``lianmo job run``."""
        spec = {
            "job_id": job,
            "parties": [
                {"name": "broker", "role": "guest", "address": f"127.0.0.1:{ports['broker']}",
                 "dataset": f"{data}_guest"},
                {"name": "platform", "role": "host",
                 "address": f"127.0.0.1:{ports['platform']}", "dataset": f"{data}_host"},
            ],
            "alignment": {"min_intersection": 100},
            "model": model,
        }  # fmt: skip
        path = self.root / f"{job}.yaml"
        path.write_text(yaml.safe_dump(spec))
        run = lianmo(
            "job", "run", path, "--ca", self.certs / "ca.pem",
            "--cert", self.certs / "coordinator.pem", "--key", self.certs / "coordinator.key",
            "--output", self.root / f"out-{job}", cwd=self.root, timeout=240,
        )  # fmt: skip
        assert run.returncode == 0, _explain(run)

    def promote(self, name: str, model: str, job: str) -> None:
        done = lianmo("model", "promote", "--config", self.configs[name], model, job, cwd=self.root)
        assert done.returncode == 0, _explain(done)


def federation(root: Path, shared_data: Path) -> Federation:
    """Certificates and configs (scoring ports fixed, the guest knowing the host's)."""
    certs = root / "certs"
    names = [*PARTIES, "coordinator", CLIENT]
    made = lianmo("certs", "init", certs, *(f"--name={n}" for n in names), cwd=root)
    assert made.returncode == 0, _explain(made)
    fed = Federation(root, certs)
    fed.serving = {name: f"127.0.0.1:{free_port()}" for name in PARTIES}
    for name in PARTIES:
        path = _party_toml(root / "parties", name, certs, shared_data)
        extra = f'\n[serving]\nlisten = "{fed.serving[name]}"\nclients = ["{CLIENT}"]\n'
        if name == "broker":
            extra += f'deadline_ms = 500\n[serving.peers]\nplatform = "{fed.serving["platform"]}"\n'
        path.write_text(path.read_text() + extra)
        fed.configs[name] = path
    return fed
