"""In-process party nodes (broker guest, platform host, arbiter) for node and audit tests.

Three :class:`NodeService` objects whose :class:`CallbackChannel` hands each envelope
straight to the receiving node's inbox; jobs use real 2048-bit keys (the job spec refuses
smaller ones). Extra observers (e.g. a wire recorder) can be attached to
every party's channel; envelopes carry the payload bytes produced by the same serde the
gRPC channel uses, so what they hold is exactly what would cross the wire.
"""

from __future__ import annotations

import hashlib
import json
import threading
import typing as t
from collections.abc import Sequence
from pathlib import Path

from lianmo.audit.signing import write_signing_key
from lianmo.compute.backend import ComputeBackend, SerialBackend
from lianmo.config import JobSpec, PartyConfig
from lianmo.coordinator.run import JobReport, run_job
from lianmo.metrics import NodeMetrics
from lianmo.node.service import NodeService
from lianmo.transport.control import JobStatusInfo
from lianmo.transport.envelope import Direction, Envelope, MessageObserver
from lianmo.transport.memory import CallbackChannel

GUEST, HOST, ARBITER = "broker", "platform", "arbiter"
GUEST_FILE, HOST_FILE = "breast_hetero_guest.csv", "breast_hetero_host.csv"


class WireRecorder:
    """Keeps every envelope sent by any party (payload bytes as they cross the wire)."""

    def __init__(self) -> None:
        self.sent: list[Envelope] = []
        self.received: list[Envelope] = []
        self._lock = threading.Lock()

    def on_message(self, direction: Direction, envelope: Envelope) -> None:
        with self._lock:
            (self.sent if direction == "sent" else self.received).append(envelope)


def party_config(
    tmp_path: Path, name: str, shared_data: Path, **datasets: tuple[str, str | None]
) -> PartyConfig:
    catalogue = {
        ds: {
            "path": str(shared_data / file),
            "id_column": "id",
            **({"label_column": label} if label else {}),
        }
        for ds, (file, label) in datasets.items()
    }
    return PartyConfig.from_dict(
        {
            "name": name,
            "listen": "127.0.0.1:0",
            "state_dir": name,
            "tls": {"cert": "x", "key": "x", "ca": "x"},
            "datasets": catalogue,
            "policy": {"arbiters": [ARBITER]},
        },
        base=tmp_path,
    )


def breast_configs(tmp_path: Path, shared_data: Path) -> dict[str, PartyConfig]:
    """Configs of broker (breast guest part), platform (host part) and arbiter."""
    return {
        GUEST: party_config(tmp_path, GUEST, shared_data, breast_guest=(GUEST_FILE, "y")),
        HOST: party_config(tmp_path, HOST, shared_data, breast_host=(HOST_FILE, None)),
        ARBITER: party_config(tmp_path, ARBITER, shared_data),
    }


def make_nodes(
    tmp_path: Path,
    shared_data: Path,
    observers: Sequence[MessageObserver] = (),
    configs: dict[str, PartyConfig] | None = None,
    seed_for: t.Callable[[JobSpec], bytes] | None = None,
    compute: ComputeBackend | None = None,
    metrics: dict[str, NodeMetrics] | None = None,
) -> dict[str, NodeService]:
    """Nodes delivering to each other in-process; ``observers`` see every channel.

    Each party gets a signing key at its config's default path (made if missing);
    ``seed_for`` pins the job DRBG seeds (fresh ones otherwise). Every node runs its
    kernels on ``compute`` (the caller closes it), serially by default. ``metrics``
    gives some parties the metrics their node counts into (none by default).
    """
    configs = configs or breast_configs(tmp_path, shared_data)
    nodes: dict[str, NodeService] = {}

    def deliver(env: Envelope) -> None:
        nodes[env.receiver].inbox_for(env.job_id).put(env)

    def factory_for(name: str) -> t.Any:
        def factory(
            spec: JobSpec, inbox: t.Any, node_observers: Sequence[MessageObserver]
        ) -> CallbackChannel:
            return CallbackChannel(
                job_id=spec.job_id,
                party=name,
                inbox=inbox,
                peers=spec.party_names,
                deliver=deliver,
                observers=[*node_observers, *observers],
                recv_timeout=120,
            )

        return factory

    for name, cfg in configs.items():
        if not cfg.signing_key_path.exists():
            write_signing_key(cfg.signing_key_path)
        seeds = None if seed_for is None else _party_seeds(seed_for, name)
        nodes[name] = NodeService(
            cfg,
            factory_for(name),
            compute or SerialBackend(),
            seed_for=seeds,
            metrics=(metrics or {}).get(name),
        )
    return nodes


def _party_seeds(
    seed_for: t.Callable[[JobSpec], bytes], party: str
) -> t.Callable[[JobSpec], bytes]:
    return lambda spec: hashlib.sha256(seed_for(spec) + party.encode()).digest()


def fixed_seeds(spec: JobSpec) -> bytes:
    """Seeds that depend only on the job id (each party hashes in its own name)."""
    return hashlib.sha256(b"test-seed:" + spec.job_id.encode()).digest()


class DirectControl:
    """Coordinator handle calling a node in-process as the 'coordinator' identity."""

    def __init__(self, node: NodeService) -> None:
        self.node = node

    def prepare(self, job_id: str, spec_json: bytes) -> JobStatusInfo:
        return self.node.prepare("coordinator", job_id, spec_json)

    def start(self, job_id: str) -> JobStatusInfo:
        return self.node.start("coordinator", job_id)

    def status(self, job_id: str) -> JobStatusInfo:
        return self.node.status("coordinator", job_id)

    def cancel(self, job_id: str) -> JobStatusInfo:
        return self.node.cancel("coordinator", job_id)

    def resume(self, job_id: str) -> JobStatusInfo:
        return self.node.resume("coordinator", job_id)


def train_spec(job_id: str = "breast-wire", **model: object) -> JobSpec:
    """Two-epoch coordinated hetero LR on the breast data (guest labels 'y')."""
    return JobSpec.from_dict(
        {
            "job_id": job_id,
            "seed": 42,
            "parties": [
                {"name": GUEST, "role": "guest", "address": "-", "dataset": "breast_guest"},
                {"name": HOST, "role": "host", "address": "-", "dataset": "breast_host"},
                {"name": ARBITER, "role": "arbiter", "address": "-"},
            ],
            "alignment": {"min_intersection": 100},
            "model": {"epochs": 2, "batch_size": 320, "learning_rate": 0.3, **model},
        }
    )


def two_party_spec(job_id: str = "breast-wire-2p", **model: object) -> JobSpec:
    """:func:`train_spec` without the arbiter: two-party hetero LR (guest and host keys)."""
    raw = json.loads(train_spec(job_id, **model).to_json())
    raw["parties"] = [p for p in raw["parties"] if p["role"] != "arbiter"]
    return JobSpec.from_dict(raw)


def two_party_configs(tmp_path: Path, shared_data: Path) -> dict[str, PartyConfig]:
    """Configs of broker and platform only (no arbiter node)."""
    configs = breast_configs(tmp_path, shared_data)
    return {name: configs[name] for name in (GUEST, HOST)}


def run_in_process(nodes: dict[str, NodeService], spec: JobSpec) -> JobReport:
    """Run ``spec`` on ``nodes`` through the coordinator and wait for every thread."""
    controls = {n: DirectControl(node) for n, node in nodes.items()}
    report = run_job(spec, controls, poll_interval=0.05)
    for node in nodes.values():
        node.wait(spec.job_id, timeout=60)
    return report
