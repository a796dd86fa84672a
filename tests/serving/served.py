"""A trained model served over real gRPC with mutual TLS, for the serving tests.

Parties train (and batch-score) in process (:mod:`tests.node.inprocess_nodes`, 2048-bit
keys); then each party's :class:`ServingService` runs behind its own scoring server on
loopback, the guest reaching the host's with a :class:`ScoringClient`, and a
"decision-engine" certificate asks the guest for scores, as a decision engine would.
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
import time
import typing as t
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lianmo.audit.signing import SigningKey
from lianmo.config import JobSpec, PartyConfig
from lianmo.config.serving import ServingConfig
from lianmo.metrics import NodeMetrics
from lianmo.node.serving.features import FeatureSource
from lianmo.node.serving.service import ServingService
from lianmo.node.serving.versions import VersionLog, read_version
from lianmo.transport.certs import write_identity_dir
from lianmo.transport.scoring import PartAnswer, PartQuery, ScoringClient, serve_scoring
from lianmo.transport.tls import TlsIdentity
from tests.node.inprocess_nodes import (
    ARBITER,
    GUEST,
    HOST,
    make_nodes,
    party_config,
    run_in_process,
)

CLIENT = "decision-engine"
DATA = {
    "breast": ("breast_hetero_guest.csv", "breast_hetero_host.csv"),
    "vehicle": ("vehicle_scale_hetero_guest.csv", "vehicle_scale_hetero_host.csv"),
    "student": ("student_hetero_guest.csv", "student_hetero_host.csv"),
}


def configs(
    tmp_path: Path, shared_data: Path, data: str, arbiter: bool = False
) -> dict[str, PartyConfig]:
    guest_file, host_file = DATA[data]
    out = {
        GUEST: party_config(tmp_path, GUEST, shared_data, table=(guest_file, "y")),
        HOST: party_config(tmp_path, HOST, shared_data, table=(host_file, None)),
    }
    if arbiter:  # a scorecard's WOE-LR is coordinated
        out[ARBITER] = party_config(tmp_path, ARBITER, shared_data)
    return out


def copy_trained(trained: Path, tmp_path: Path, shared_data: Path) -> dict[str, PartyConfig]:
    """Guest's and host's state and signing keys trained under ``trained``, copied to
    ``tmp_path`` (each test serves and promotes on its own copy), and their configs."""
    for name in (GUEST, HOST):
        shutil.copytree(trained / name, tmp_path / name)
        shutil.copy(trained / f"{name}.signing.key", tmp_path / f"{name}.signing.key")
    return configs(tmp_path, shared_data, "breast")


def spec(
    job_id: str, model: dict[str, object], task: str = "train", model_job: str = ""
) -> JobSpec:
    raw: dict[str, object] = {
        "job_id": job_id,
        "seed": 7,
        "parties": [
            {"name": GUEST, "role": "guest", "address": "-", "dataset": "table"},
            {"name": HOST, "role": "host", "address": "-", "dataset": "table"},
            *(
                [{"name": ARBITER, "role": "arbiter", "address": "-"}]
                if _coordinated(model)
                else []
            ),
        ],
        "alignment": {"min_intersection": 100},
        "model": model,
    }
    if task == "predict":
        raw |= {"task": "predict", "model_job": model_job}
    return JobSpec.from_dict(raw)


def _coordinated(model: dict[str, object]) -> bool:
    return model.get("type") == "scorecard"


def train_and_predict(
    tmp_path: Path, shared_data: Path, data: str, model: dict[str, object], job: str
) -> dict[str, PartyConfig]:
    """Train ``model`` as job ``job``, then batch-score every aligned id as ``job``-scores."""
    cfgs = configs(tmp_path, shared_data, data, arbiter=_coordinated(model))
    nodes = make_nodes(tmp_path, shared_data, configs=cfgs)
    for s in (spec(job, model), spec(f"{job}-scores", model, "predict", job)):
        run_in_process(nodes, s)  # raises if the job fails
    for node in nodes.values():
        node.close()
    return cfgs


def batch_scores(config: PartyConfig, job: str) -> dict[str, list[float]]:
    """The guest's scores.csv of a predict job: id -> values (class probabilities)."""
    path = config.state_dir / "jobs" / job / "scores.csv"
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    keep = [j for j, name in enumerate(header) if name not in ("id", "class")]
    keep = [j for j in keep if not header[j].startswith("reason_")]
    return {r[0]: [float(r[j]) for j in keep] for r in rows[1:]}


def promote(config: PartyConfig, name: str, job: str) -> None:
    version = read_version(config, config.state_dir / "jobs" / job)
    assert version is not None, f"{config.name} has no version {job}"
    log = VersionLog(config, SigningKey.load(config.signing_key_path, party=config.name))
    log.promote(name, version)


@dataclass
class Serving:
    """Running scoring servers: the guest's address, a client for it, the services."""

    client: ScoringClient
    services: dict[str, ServingService]
    ports: dict[str, int]
    servers: dict[str, object]
    identities: dict[str, TlsIdentity]

    def stop_host(self) -> None:
        self.servers[HOST].stop(0).wait()  # type: ignore[attr-defined]


def identities(tmp_path: Path) -> dict[str, TlsIdentity]:
    certs = tmp_path / "certs"
    if not (certs / "ca.pem").exists():
        write_identity_dir(certs, [GUEST, HOST, CLIENT, "stranger"])
    return {
        n: TlsIdentity.load(certs / f"{n}.pem", certs / f"{n}.key", certs / "ca.pem")
        for n in (GUEST, HOST, CLIENT, "stranger")
    }


def _caller(client: ScoringClient) -> t.Callable[[str, PartQuery, float], PartAnswer]:
    def parts(host: str, query: PartQuery, timeout: float) -> PartAnswer:
        return client.part(query, timeout)

    return parts


@contextmanager
def serving(
    tmp_path: Path,
    cfgs: dict[str, PartyConfig],
    stores: dict[str, dict[str, FeatureSource]] | None = None,
    *,
    clock: t.Callable[[], float] = time.time,
    metrics: dict[str, NodeMetrics] | None = None,
    **settings: object,
) -> Iterator[Serving]:
    """Scoring servers for guest and host on loopback, mutual TLS; stopped on exit.

    ``clock`` is both services' wall clock (the id budget's windows, the request record's
    days); ``metrics`` what each party counts into, by name.
    """
    ids = identities(tmp_path)
    services: dict[str, ServingService] = {}
    servers: dict[str, object] = {}
    ports: dict[str, int] = {}
    clients: list[ScoringClient] = []
    try:
        for name in (HOST, GUEST):
            serving_cfg = ServingConfig(
                listen="127.0.0.1:0",
                peers={HOST: f"127.0.0.1:{ports[HOST]}"} if name == GUEST else {},
                clients=(CLIENT,),
                **settings,  # type: ignore[arg-type]
            )
            cfg = dataclasses.replace(cfgs[name], serving=serving_cfg)
            parts = None
            if name == GUEST:
                clients.append(ScoringClient(serving_cfg.peers[HOST], ids[GUEST], HOST))
                parts = _caller(clients[-1])
            services[name] = ServingService(
                cfg,
                parts=parts,
                stores=(stores or {}).get(name),
                clock=clock,
                metrics=(metrics or {}).get(name),
            )
            servers[name], ports[name] = serve_scoring("127.0.0.1:0", ids[name], services[name])
        client = ScoringClient(f"127.0.0.1:{ports[GUEST]}", ids[CLIENT], GUEST)
        clients.append(client)
        yield Serving(client, services, ports, servers, ids)
    finally:
        for c in clients:
            c.close()
        for server in servers.values():
            server.stop(0).wait()  # type: ignore[attr-defined]
        for service in services.values():
            service.close()


def assert_close(served: dict[str, tuple[float, ...]], batch: dict[str, list[float]]) -> None:
    assert set(served) == set(batch)
    worst = max(float(np.max(np.abs(np.asarray(served[i]) - np.asarray(batch[i])))) for i in batch)
    assert worst <= 1e-9, f"served scores differ from batch scores by up to {worst:.3g}"
