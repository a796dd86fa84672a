"""A whole job over real gRPC with mutual TLS: three in-process nodes on loopback, port 0.

Each node is wired exactly as ``lianmo party serve`` wires it
(:func:`lianmo.cli.wiring.start_party_node`: NodeService, a GrpcChannel per job and the
mutual-TLS server); the test is the coordinator and
uses real 2048-bit Paillier keys. The security half checks, at the level of a job, that
nobody without the right certificate gets a job prepared or a message delivered.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import typing as t
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from lianmo.audit.log import read_records, verify_chain
from lianmo.cli.wiring import load_identity, start_party_node, write_identities
from lianmo.config import JobSpec, PartyConfig
from lianmo.coordinator.run import JobReport, run_job
from lianmo.errors import AuthenticationError, JobFailedError, TransportError, UnknownJobError
from lianmo.node.service import NodeService
from lianmo.transport.certs import make_ca, make_party_cert
from lianmo.transport.grpc_channel import ControlClient
from lianmo.transport.tls import TlsIdentity

pytestmark = pytest.mark.timeout(180)

PARTIES = ("broker", "platform", "arbiter")
CATALOGUES: dict[str, dict[str, tuple[str, str | None]]] = {
    "broker": {"breast_guest": ("breast_hetero_guest.csv", "y")},
    "platform": {"breast_host": ("breast_hetero_host.csv", None)},
    "arbiter": {},
    # Holds the platform's data, so only its certificate name gives it away.
    "intruder": {"breast_host": ("breast_hetero_host.csv", None)},
}
TRAIN_JOB = "grpc-breast"


@dataclass(frozen=True)
class Pki:
    """One CA for the federation (parties, coordinator, an intruder) and a foreign one."""

    directory: Path
    ids: dict[str, TlsIdentity]
    foreign_coordinator: TlsIdentity  # named "coordinator" but issued by another CA


@dataclass
class RunningNode:
    """A party node serving mutual-TLS gRPC on a loopback port."""

    name: str
    node: NodeService
    server: grpc.Server
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def state_dir(self) -> Path:
        return self.node.config.state_dir


class _NoClientCert(TlsIdentity):
    """Trusts the federation's CA but presents no client certificate at all."""

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca_pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    names = [*PARTIES, "intruder", "coordinator"]
    write_identities(directory, names)
    ids = {
        n: TlsIdentity.load(directory / f"{n}.pem", directory / f"{n}.key", directory / "ca.pem")
        for n in names
    }
    other_ca, other_key = make_ca("another federation's CA")
    cert, key = make_party_cert(other_ca, other_key, "coordinator")
    return Pki(directory, ids, TlsIdentity(cert, key, other_ca))


def _party_config(name: str, base: Path, pki: Pki, shared_data: Path) -> PartyConfig:
    datasets = {
        ds: {
            "path": str(shared_data / file),
            "id_column": "id",
            **({"label_column": label} if label else {}),
        }
        for ds, (file, label) in CATALOGUES[name].items()
    }
    return PartyConfig.from_dict(
        {
            "name": name,
            "listen": "127.0.0.1:0",
            "state_dir": f"{name}-state",
            "tls": {
                "cert": str(pki.directory / f"{name}.pem"),
                "key": str(pki.directory / f"{name}.key"),
                "ca": str(pki.directory / "ca.pem"),
            },
            "datasets": datasets,
            "recv_timeout_s": 120,
            "policy": {"arbiters": ["arbiter"]},
        },
        base=base,
    )


def _start_node(config: PartyConfig) -> RunningNode:
    """Wire one node exactly as ``lianmo party serve`` does, minus the signal handling."""
    node, server, port = start_party_node(config, load_identity(config))
    return RunningNode(config.name, node, server, port)


@contextlib.contextmanager
def _running(configs: Mapping[str, PartyConfig]) -> Iterator[dict[str, RunningNode]]:
    nodes: dict[str, RunningNode] = {}
    try:
        for name, config in configs.items():
            nodes[name] = _start_node(config)
        yield nodes
    finally:
        for running in nodes.values():
            running.server.stop(0).wait()
            running.node.close()


@pytest.fixture(scope="module")
def cluster(
    pki: Pki, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, RunningNode]]:
    base = tmp_path_factory.mktemp("nodes")
    configs = {n: _party_config(n, base, pki, shared_data) for n in PARTIES}
    with _running(configs) as nodes:
        yield nodes


@pytest.fixture
def intruder(pki: Pki, shared_data: Path, tmp_path: Path) -> Iterator[RunningNode]:
    """A node of the same CA whose certificate (and config) name is 'intruder'."""
    with _running({"intruder": _party_config("intruder", tmp_path, pki, shared_data)}) as nodes:
        yield nodes["intruder"]


def _spec(job_id: str, addresses: Mapping[str, str]) -> JobSpec:
    return JobSpec.from_dict(
        {
            "job_id": job_id,
            "seed": 7,
            "parties": [
                {
                    "name": "broker",
                    "role": "guest",
                    "address": addresses["broker"],
                    "dataset": "breast_guest",
                },
                {
                    "name": "platform",
                    "role": "host",
                    "address": addresses["platform"],
                    "dataset": "breast_host",
                },
                {"name": "arbiter", "role": "arbiter", "address": addresses["arbiter"]},
            ],
            "alignment": {"min_intersection": 100},
            "validation": {"share": 0.2},
            # Default key_bits: real 2048-bit Paillier keys.
            "model": {"epochs": 2, "batch_size": 320, "learning_rate": 0.3},
        }
    )


@contextlib.contextmanager
def _controls(
    addresses: Mapping[str, str], identity: TlsIdentity, **options: t.Any
) -> Iterator[dict[str, ControlClient]]:
    clients = {n: ControlClient(a, n, identity, **options) for n, a in addresses.items()}
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


def _addresses(cluster: Mapping[str, RunningNode]) -> dict[str, str]:
    return {n: cluster[n].address for n in PARTIES}


def _assert_never_prepared(cluster: Mapping[str, RunningNode], job_id: str) -> None:
    for running in cluster.values():
        with pytest.raises(UnknownJobError):
            running.node.status("coordinator", job_id)
        assert not (running.state_dir / "jobs" / job_id).exists()


# ---- a job that succeeds --------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(cluster: dict[str, RunningNode], pki: Pki) -> JobReport:
    spec = _spec(TRAIN_JOB, _addresses(cluster))
    with _controls(_addresses(cluster), pki.ids["coordinator"]) as controls:
        for client in controls.values():
            client.wait_healthy(timeout_s=10)
        return run_job(spec, controls, poll_interval=0.1)


def test_job_over_grpc_trains_a_good_model(trained: JobReport) -> None:
    val = trained.guest_result["validation"]
    assert val["auc"] > 0.95
    assert 0 < val["ks"] <= 1
    assert val["rows"] == trained.guest_result["validation_rows"] > 50
    assert trained.guest_result["aligned"] == 569
    assert len(trained.results["arbiter"]["losses"]) == 2


@pytest.mark.parametrize("name", PARTIES)
def test_every_party_reports_its_messages(
    trained: JobReport, cluster: dict[str, RunningNode], name: str
) -> None:
    party = trained.metrics()["parties"][name]
    assert party["messages_sent"] > 0 and party["bytes_sent"] > 0
    assert party["messages_received"] > 0 and party["bytes_received"] > 0
    # the node's Prometheus counters saw the same messages (the first job of the cluster)
    metrics = cluster[name].node.metrics
    assert metrics is not None
    for direction in ("sent", "received"):
        for what, metric in (
            ("messages", "lianmo_messages_total"),
            ("bytes", "lianmo_message_bytes_total"),
        ):
            total = sum(
                metrics.registry.get_sample_value(metric, {"peer": peer, "direction": direction})
                or 0
                for peer in PARTIES
                if peer != name
            )
            assert total == party[f"{what}_{direction}"], (what, direction)


@pytest.mark.parametrize("name", ["broker", "platform"])
def test_data_parties_keep_their_model_share(
    trained: JobReport, cluster: dict[str, RunningNode], name: str
) -> None:
    job_dir = cluster[name].state_dir / "jobs" / TRAIN_JOB
    data = (job_dir / "model.json").read_bytes()
    share = json.loads(data)
    assert share["party"] == name and share["job_id"] == TRAIN_JOB
    assert len(share["weights"]) == (10 if name == "broker" else 20)
    digest = trained.metrics()["parties"][name]["model_digest"]
    assert digest == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", PARTIES)
def test_every_party_keeps_an_intact_audit_chain(
    trained: JobReport, cluster: dict[str, RunningNode], name: str
) -> None:
    path = cluster[name].state_dir / "jobs" / TRAIN_JOB / "audit.jsonl"
    count = verify_chain(path)
    records = list(read_records(path))
    assert count == len(records) > 2
    assert records[0]["kind"] == "job_start" and records[0]["spec_sha256"] == trained.spec.digest()
    assert records[-1]["kind"] == "job_end" and records[-1]["state"] == "succeeded"
    messages = [r for r in records if r["kind"] == "message"]
    sent = sum(1 for r in messages if r["direction"] == "sent")
    received = len(messages) - sent
    party = trained.metrics()["parties"][name]
    assert (sent, received) == (party["messages_sent"], party["messages_received"])


def test_audit_logs_agree_on_what_crossed_the_wire(
    trained: JobReport, cluster: dict[str, RunningNode]
) -> None:
    def messages(name: str, direction: str) -> set[tuple[object, ...]]:
        path = cluster[name].state_dir / "jobs" / TRAIN_JOB / "audit.jsonl"
        return {
            (name, r["peer"], r["round"], r["tag"], r["msg_seq"], r["sha256"])
            if direction == "sent"
            else (r["peer"], name, r["round"], r["tag"], r["msg_seq"], r["sha256"])
            for r in read_records(path)
            if r["kind"] == "message" and r["direction"] == direction
        }

    sent = set().union(*(messages(n, "sent") for n in PARTIES))
    received = set().union(*(messages(n, "received") for n in PARTIES))
    assert sent == received and len(sent) > 0


# ---- who is refused -------------------------------------------------------------------


def _coordinator_identity(pki: Pki, kind: str) -> TlsIdentity:
    own = pki.ids["coordinator"]
    foreign = pki.foreign_coordinator
    if kind == "foreign-ca":
        return foreign
    if kind == "foreign-cert-trusting-our-ca":
        return TlsIdentity(foreign.cert_pem, foreign.key_pem, own.ca_pem)
    return _NoClientCert(own.cert_pem, own.key_pem, own.ca_pem)


@pytest.mark.parametrize(
    "kind", ["foreign-ca", "foreign-cert-trusting-our-ca", "no-client-certificate"]
)
def test_coordinator_without_a_federation_certificate_is_refused(
    cluster: dict[str, RunningNode], pki: Pki, kind: str
) -> None:
    job_id = f"refused-{kind}"
    addresses = _addresses(cluster)
    identity = _coordinator_identity(pki, kind)
    with _controls(addresses, identity, deadline_s=5, retries=0) as controls:
        with pytest.raises(TransportError, match="party 'broker' at 127.0.0.1"):
            controls["broker"].wait_healthy(timeout_s=2)
        with pytest.raises(JobFailedError, match="party 'broker'") as info:
            run_job(_spec(job_id, addresses), controls, poll_interval=0.1)
    assert info.value.party == "broker"
    assert isinstance(info.value.__cause__, TransportError)
    _assert_never_prepared(cluster, job_id)


def test_coordinator_refuses_a_node_with_another_partys_certificate(
    cluster: dict[str, RunningNode], pki: Pki, intruder: RunningNode
) -> None:
    # The job spec says the platform is at the intruder's address.
    addresses = {**_addresses(cluster), "platform": intruder.address}
    with _controls(addresses, pki.ids["coordinator"]) as controls:
        with pytest.raises(AuthenticationError, match="TLS handshake with party 'platform'"):
            controls["platform"].wait_healthy(timeout_s=5)
        with pytest.raises(JobFailedError) as info:
            run_job(_spec("intruder-control", addresses), controls, poll_interval=0.1)
    assert info.value.party == "platform"
    assert isinstance(info.value.__cause__, AuthenticationError)
    assert f"party 'platform' at {intruder.address} failed" in info.value.reason
    assert "issued for the name 'platform'" in info.value.reason
    assert not (intruder.state_dir / "jobs").exists()
    assert cluster["broker"].node.wait("intruder-control").state == "cancelled"


def test_guest_refuses_to_send_to_a_node_with_another_partys_certificate(
    cluster: dict[str, RunningNode], pki: Pki, intruder: RunningNode
) -> None:
    # The coordinator reaches the real platform, but the spec the parties receive sends
    # the platform's federation traffic to the intruder: the guest's channel must notice.
    spec = _spec("intruder-federation", {**_addresses(cluster), "platform": intruder.address})
    with _controls(_addresses(cluster), pki.ids["coordinator"]) as controls:
        with pytest.raises(JobFailedError) as info:
            run_job(spec, controls, poll_interval=0.1)
    assert info.value.party in ("broker", "arbiter")  # both send to the "platform" address
    assert "TLS handshake with party 'platform'" in info.value.reason
    assert f"at {intruder.address}" in info.value.reason
    assert info.value.reason.endswith("(AuthenticationError)")
    assert not (intruder.state_dir / "jobs").exists()
    # The blamed party's own record, as its operator would see it. Broker and arbiter both
    # send to that address; whichever fails first gets the other cancelled.
    blamed = cluster[info.value.party].node.wait("intruder-federation", timeout=30)
    assert blamed.state == "failed" and blamed.error_kind == "AuthenticationError"
    assert "check that its certificate is issued for the name 'platform'" in blamed.error
    other = "arbiter" if info.value.party == "broker" else "broker"
    other_state = cluster[other].node.wait("intruder-federation", timeout=30).state
    assert other_state in ("failed", "cancelled")
    broker_dir = cluster["broker"].state_dir / "jobs" / "intruder-federation"
    assert not (broker_dir / "model.json").exists()
    assert not (broker_dir / "result.json").exists()
    assert cluster["platform"].node.wait("intruder-federation", timeout=30).state == "cancelled"


@pytest.mark.parametrize("method", ["prepare", "start", "status", "cancel"])
def test_a_party_certificate_cannot_act_as_the_coordinator(
    cluster: dict[str, RunningNode], pki: Pki, method: str
) -> None:
    job_id = f"platform-as-coordinator-{method}"
    spec = _spec(job_id, _addresses(cluster))
    with ControlClient(cluster["broker"].address, "broker", pki.ids["platform"]) as client:
        args = (job_id, spec.to_json()) if method == "prepare" else (job_id,)
        with pytest.raises(
            AuthenticationError,
            match=r"\[broker\] party 'broker' accepts jobs only from \['coordinator'\]; "
            r"'platform' is not one of them",
        ):
            getattr(client, method)(*args)
    _assert_never_prepared(cluster, job_id)


# ---- regressions ---------------------------------------------------------------------


def test_waiting_for_a_node_that_refuses_our_certificate_hints_at_the_certificate(
    cluster: dict[str, RunningNode], pki: Pki
) -> None:
    identity = _coordinator_identity(pki, "foreign-cert-trusting-our-ca")
    with ControlClient(cluster["broker"].address, "broker", identity) as client:
        with pytest.raises(TransportError, match="refusing this node's certificate"):
            client.wait_healthy(timeout_s=1)


class _GoesDownBeforeStart:
    """A party's control handle whose node stops serving once it has been prepared."""

    def __init__(self, client: ControlClient, server: grpc.Server) -> None:
        self._client = client
        self._server = server

    def prepare(self, job_id: str, spec_json: bytes) -> t.Any:
        return self._client.prepare(job_id, spec_json)

    def start(self, job_id: str) -> t.Any:
        self._server.stop(0).wait()
        return self._client.start(job_id)

    def status(self, job_id: str) -> t.Any:
        return self._client.status(job_id)

    def cancel(self, job_id: str) -> t.Any:
        return self._client.cancel(job_id)

    def resume(self, job_id: str) -> t.Any:
        return self._client.resume(job_id)


def test_a_node_that_goes_down_before_start_is_the_one_blamed(
    cluster: dict[str, RunningNode], pki: Pki, shared_data: Path, tmp_path: Path
) -> None:
    job_id = "broker-down-before-start"
    broker_config = _party_config("broker", tmp_path, pki, shared_data)
    with _running({"broker": broker_config}) as fresh:
        addresses = {**_addresses(cluster), "broker": fresh["broker"].address}
        with _controls(addresses, pki.ids["coordinator"], retries=0) as clients:
            controls = {
                **clients,
                "broker": _GoesDownBeforeStart(clients["broker"], fresh["broker"].server),
            }
            with pytest.raises(JobFailedError, match="party 'broker' at .* unreachable") as info:
                run_job(_spec(job_id, addresses), controls, poll_interval=0.1)
    assert info.value.party == "broker", str(info.value)
    for name in ("platform", "arbiter"):
        assert cluster[name].node.status("coordinator", job_id).state == "cancelled", name
