"""Attacks on a node's own policy, against real ``lianmo party serve`` processes over mutual TLS.

Three node processes (broker guest, platform host, arbiter) with their own ``[policy]``
tables; the test is the coordinator (``run_job`` or single control calls through
:class:`ControlClient`, as ``lianmo job run`` makes them). Each attack is something a
coordinator or a guest alone could do before the policy existed, and each must now fail
at a node with a clear error, before the data it was after is exchanged:

- name an arbiter (key holder) a node does not accept, or a spec below a node's floor;
- score with a host's model share as a guest that did not train it;
- prepare the parties with different specs (a party stops before any PSI message);
- align one id, or a set larger than the host's cap (refused before the host sends
  its set or blinds a single guest point).
"""

from __future__ import annotations

import json
import time
import typing as t
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from lianmo.audit.log import read_records
from lianmo.cli.demo import write_party_config
from lianmo.cli.wiring import write_identities
from lianmo.config import JobSpec
from lianmo.coordinator.run import run_job
from lianmo.errors import ConfigError, JobFailedError, PolicyError
from lianmo.transport.control import JobStatusInfo
from lianmo.transport.grpc_channel import ControlClient
from lianmo.transport.tls import TlsIdentity

from .test_integration_cli import NodeProcess, start_node

pytestmark = pytest.mark.timeout(300)

PARTIES = ("broker", "platform", "arbiter")
HOST_CAP = 600  # platform's [policy] max_peer_set; the breast guest set has 569 ids


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("policy")


@pytest.fixture(scope="module")
def certs(workdir: Path) -> Path:
    directory = workdir / "certs"
    write_identities(directory, [*PARTIES, "coordinator"])
    return directory


def _guest_tables(directory: Path, shared_data: Path) -> dict[str, Path]:
    """The breast guest table, a one-id copy and a copy with more ids than the host's cap."""
    lines = (shared_data / "breast_hetero_guest.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    extra = [f"extra-{i}," + row.split(",", 1)[1] for i, row in enumerate(rows[:100])]
    tables = {"one_id": [header, rows[0]], "too_many": [header, *rows, *extra]}
    paths = {}
    for name, content in tables.items():
        paths[name] = directory / f"{name}.csv"
        paths[name].write_text("\n".join(content) + "\n")
    assert len(tables["too_many"]) - 1 == 669 > HOST_CAP
    return paths


@pytest.fixture(scope="module")
def nodes(workdir: Path, certs: Path, shared_data: Path) -> Iterator[dict[str, NodeProcess]]:
    tables = _guest_tables(workdir, shared_data)
    catalogues: dict[str, dict[str, tuple[Path, str, str | None]]] = {
        "broker": {
            "breast_guest": (shared_data / "breast_hetero_guest.csv", "id", "y"),
            "one_id": (tables["one_id"], "id", "y"),
            "too_many": (tables["too_many"], "id", "y"),
        },
        "platform": {"breast_host": (shared_data / "breast_hetero_host.csv", "id", None)},
        "arbiter": {},
    }
    running: dict[str, NodeProcess] = {}
    try:
        for name, datasets in catalogues.items():
            config = write_party_config(workdir / "parties" / name, name, certs, datasets)
            text = "recv_timeout_s = 120\n" + config.read_text()
            if name == "platform":  # the host caps the guest's set
                text = text.replace("[policy]\n", f"[policy]\nmax_peer_set = {HOST_CAP}\n")
            config.write_text(text)
            running[name] = start_node(name, config)
        for node in running.values():
            node.wait_port()
        yield running
    finally:
        codes = {name: node.stop() for name, node in running.items()}
    assert codes == dict.fromkeys(running, 0), {n: running[n].log_text() for n in running}


@pytest.fixture(scope="module")
def coordinator(certs: Path) -> TlsIdentity:
    return TlsIdentity.load(certs / "coordinator.pem", certs / "coordinator.key", certs / "ca.pem")


def _spec(
    job_id: str,
    nodes: Mapping[str, NodeProcess],
    *,
    roles: Mapping[str, tuple[str, str | None]] | None = None,
    **extra: t.Any,
) -> JobSpec:
    """A job over ``roles`` (party: role, data set); unknown names get the arbiter's port."""
    roles = roles or {
        "broker": ("guest", "breast_guest"),
        "platform": ("host", "breast_host"),
        "arbiter": ("arbiter", None),
    }
    port = {n: node.wait_port() for n, node in nodes.items()}
    parties = [
        {
            "name": name,
            "role": role,
            "address": f"127.0.0.1:{port.get(name, port['arbiter'])}",
            **({"dataset": ds} if ds else {}),
        }
        for name, (role, ds) in roles.items()
    ]
    return JobSpec.from_dict({"job_id": job_id, "seed": 3, "parties": parties, **extra})


def _controls(spec: JobSpec, identity: TlsIdentity) -> dict[str, ControlClient]:
    return {p.name: ControlClient(p.address, p.name, identity, deadline_s=20) for p in spec.parties}


def _run(spec: JobSpec, identity: TlsIdentity) -> None:
    controls = _controls(spec, identity)
    try:
        run_job(spec, controls, poll_interval=0.2)
    finally:
        for client in controls.values():
            client.close()


def _failed_run(spec: JobSpec, identity: TlsIdentity) -> JobFailedError:
    with pytest.raises(JobFailedError) as info:
        _run(spec, identity)
    return info.value


def _job_dir(nodes: Mapping[str, NodeProcess], party: str, job_id: str) -> Path:
    return nodes[party].state_dir / "jobs" / job_id


def _messages(nodes: Mapping[str, NodeProcess], party: str, job_id: str) -> list[tuple[str, str]]:
    """(direction, tag) of every message in ``party``'s audit log of the job."""
    log = _job_dir(nodes, party, job_id) / "audit.jsonl"
    return [
        (str(r["direction"]), str(r["tag"])) for r in read_records(log) if r["kind"] == "message"
    ]


# ---- prepare: peers and floors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_id", "roles", "extra", "problem"),
    [
        (
            "rogue-arbiter",
            {"broker": ("guest", "breast_guest"), "platform": ("host", "breast_host"),
             "mallory": ("arbiter", None)},
            {},
            "the job names 'mallory' as arbiter, but an arbiter holds the job's Paillier key, "
            "and policy.arbiters is ['arbiter']",
        ),
        (
            "coordinator-arbiter",
            {"broker": ("guest", "breast_guest"), "platform": ("host", "breast_host"),
             "coordinator": ("arbiter", None)},
            {},
            "the job names 'coordinator' as arbiter, but an arbiter holds the job's Paillier "
            "key, and policy.arbiters is ['arbiter']",
        ),
        (
            "tiny-batches",
            None,
            {"model": {"batch_size": 4}},
            "model.batch_size is 4, below policy.min_batch_size = 64; the coordinator must "
            "set it to at least 64",
        ),
        (
            "tiny-intersection",
            None,
            {"alignment": {"min_intersection": 1}},
            "alignment.min_intersection is 1, below policy.min_intersection = 100",
        ),
    ],
)  # fmt: skip
def test_attack_every_node_refuses_at_prepare_what_its_policy_does_not_accept(
    nodes: dict[str, NodeProcess],
    coordinator: TlsIdentity,
    job_id: str,
    roles: Mapping[str, tuple[str, str | None]] | None,
    extra: dict[str, t.Any],
    problem: str,
) -> None:
    spec = _spec(job_id, nodes, roles=roles, **extra)
    for party in ("broker", "platform"):  # each data party, asked on its own
        address = f"127.0.0.1:{nodes[party].wait_port()}"
        with ControlClient(address, party, coordinator) as client:
            with pytest.raises(PolicyError) as info:
                client.prepare(spec.job_id, spec.to_json())
        text = str(info.value)
        # the client names the party it asked, then the party's own message
        assert text.startswith(f"[{party}] party '{party}' refuses job '{job_id}' under its policy")
        assert problem in text
        assert str(nodes[party].state_dir) not in text
        assert not _job_dir(nodes, party, job_id).exists()  # nothing kept of the job
    failure = _failed_run(spec, coordinator)  # and through the coordinator: stopped at once
    assert failure.party == "broker" and problem in failure.reason


# ---- scoring is bound to the training job's parties ------------------------------------------

BOOST = {"type": "secureboost", "trees": 2, "depth": 2, "max_bins": 8}
PAIR = {"broker": ("guest", "breast_guest"), "platform": ("host", "breast_host")}


def test_attack_a_guest_that_did_not_train_cannot_score_with_the_hosts_share(
    nodes: dict[str, NodeProcess], coordinator: TlsIdentity
) -> None:
    _run(_spec("trained-boost", nodes, roles=PAIR, model=BOOST), coordinator)
    assert (_job_dir(nodes, "platform", "trained-boost") / "model.json").exists()
    scoring = {"task": "predict", "model_job": "trained-boost", "model": BOOST}
    # mallory, named guest by the coordinator, would get the platform's partial scores (its
    # routing answers) for ids of its choosing; the platform is asked first and refuses
    rogue = {"platform": ("host", "breast_host"), "mallory": ("guest", "breast_guest")}
    failure = _failed_run(_spec("rogue-scores", nodes, roles=rogue, **scoring), coordinator)
    assert failure.party == "platform"
    assert (
        "the job's guest 'mallory' is not 'broker', the guest that trained model_job "
        "'trained-boost', and policy.predict_guests is []" in failure.reason
    )
    assert not _job_dir(nodes, "platform", "rogue-scores").exists()
    # an arbiter that took no part in training is refused as well
    extra = {**PAIR, "arbiter": ("arbiter", None)}
    failure = _failed_run(_spec("extra-scores", nodes, roles=extra, **scoring), coordinator)
    assert "'arbiter' takes part as arbiter but was not a party in training job" in (failure.reason)
    # the guest that trained it scores as before
    _run(_spec("good-scores", nodes, roles=PAIR, **scoring), coordinator)
    assert (_job_dir(nodes, "broker", "good-scores") / "scores.csv").exists()


# ---- one spec for all ---------------------------------------------------------------------------


def _wait_all(
    clients: Mapping[str, ControlClient], job_id: str, timeout_s: float = 60.0
) -> dict[str, JobStatusInfo]:
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = {n: c.status(job_id) for n, c in clients.items()}
        if all(s.state in ("failed", "succeeded") for s in statuses.values()):
            return statuses
        assert time.monotonic() < deadline, statuses
        time.sleep(0.2)


def test_attack_parties_prepared_with_different_specs_stop_before_any_psi_message(
    nodes: dict[str, NodeProcess], coordinator: TlsIdentity
) -> None:
    """The broker is told min_intersection 1000 and seed 3; platform and arbiter a spec
    with another seed (so another validation split) under the same job id."""
    honest = _spec("two-specs", nodes, alignment={"min_intersection": 1000})
    other = JobSpec.from_dict({**json.loads(honest.to_json()), "seed": 4})
    assert honest.digest() != other.digest()
    clients = _controls(honest, coordinator)
    try:
        for name, client in clients.items():
            spec = honest if name == "broker" else other
            client.prepare(spec.job_id, spec.to_json())
        for client in clients.values():
            client.start(honest.job_id)
        statuses = _wait_all(clients, honest.job_id)
    finally:
        for client in clients.values():
            client.close()
    for name, status in statuses.items():
        assert status.state == "failed" and status.error_kind == "PolicyError", status
        assert "the parties were prepared with different specs" in status.error, status
        messages = _messages(nodes, name, honest.job_id)
        tags = {tag for _direction, tag in messages}
        assert tags == {"audit.signing_key", "job.spec_digest"}, messages
        assert not any(tag.startswith("psi.") for tag in tags)


# ---- alignment: sizes before membership -------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "kind", "problem"),
    [
        (
            "one_id",
            "DataError",
            "guest 'broker' brings 1 ids to alignment, fewer than the job's minimum "
            "intersection of 100",
        ),
        (
            "too_many",
            "PolicyError",
            f"guest 'broker' brings 669 ids to alignment, more than this party's "
            f"policy.max_peer_set of {HOST_CAP}",
        ),
    ],
)
def test_attack_a_one_id_or_oversized_guest_set_is_refused_before_the_host_sends_its_set(
    nodes: dict[str, NodeProcess],
    coordinator: TlsIdentity,
    dataset: str,
    kind: str,
    problem: str,
) -> None:
    job_id = f"align-{dataset.replace('_', '-')}"
    roles = {"broker": ("guest", dataset), "platform": ("host", "breast_host")}
    failure = _failed_run(_spec(job_id, nodes, roles=roles, task="align"), coordinator)
    assert failure.party == "platform" and problem in failure.reason
    assert failure.reason.endswith(f"({kind})")
    host = _messages(nodes, "platform", job_id)
    guest = _messages(nodes, "broker", job_id)
    # the host sent no PSI message at all: not its size, not its set, no doubled point
    assert [tag for d, tag in host if d == "sent" and tag.startswith("psi.")] == []
    assert [tag for d, tag in host if d == "received" and tag.startswith("psi.")] == [
        "psi.guest_size"
    ]
    # the guest announced its size and sent nothing else
    assert [tag for d, tag in guest if tag.startswith("psi.")] == ["psi.guest_size"]
    assert not (_job_dir(nodes, "broker", job_id) / "aligned_ids.csv").exists()


# ---- per-job column choice ------------------------------------------------------------------


def _with_columns(spec: JobSpec, party: str, **choice: list[str]) -> JobSpec:
    raw = json.loads(spec.to_json())
    for entry in raw["parties"]:
        if entry["name"] == party:
            entry.update(choice)
    return JobSpec.from_dict(raw)


def test_attack_a_column_the_host_does_not_offer_is_refused_at_prepare(
    nodes: dict[str, NodeProcess], coordinator: TlsIdentity
) -> None:
    """A coordinator probing for a column ('income') the platform's table lacks learns only
    that it is not offered; the platform keeps no job state."""
    spec = _with_columns(
        _spec("probe-columns", nodes, roles=PAIR, model=BOOST), "platform", columns=["x0", "income"]
    )
    address = f"127.0.0.1:{nodes['platform'].wait_port()}"
    with ControlClient(address, "platform", coordinator) as client:
        with pytest.raises(ConfigError) as info:
            client.prepare(spec.job_id, spec.to_json())
    problem = (
        "party 'platform', data set 'breast_host', column 'income': the job spec's columns "
        "names a column the data set does not offer to jobs; the coordinator must name only "
        "offered feature columns (the party's node log lists them)"
    )
    assert str(info.value) == f"[platform] {problem}"
    assert "x19" not in str(info.value) and str(nodes["platform"].state_dir) not in str(info.value)
    failure = _failed_run(spec, coordinator)  # through the coordinator, as job run does
    assert failure.party == "platform" and problem in failure.reason
    assert not _job_dir(nodes, "platform", spec.job_id).exists()
    assert not (_job_dir(nodes, "broker", spec.job_id) / "model.json").exists()


def test_a_host_excluding_columns_trains_on_the_rest(
    nodes: dict[str, NodeProcess], coordinator: TlsIdentity
) -> None:
    dropped = [f"x{i}" for i in range(0, 20, 2)]
    spec = _with_columns(
        _spec("fewer-columns", nodes, roles=PAIR, model=BOOST), "platform", exclude=dropped
    )
    _run(spec, coordinator)
    share = json.loads((_job_dir(nodes, "platform", spec.job_id) / "model.json").read_text())
    assert share["feature_names"] == [f"x{i}" for i in range(1, 20, 2)]
