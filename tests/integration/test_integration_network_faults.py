"""Network faults: peers whose connections are cut, delayed, or whose messages are lost,
dropped or duplicated, still train exactly the model a clean network trains.

Two halves, each against its own clean baseline (2048-bit keys, breast data, LR):

* Real ``lianmo party serve`` processes with a :class:`FaultyProxy` in front of every node;
  the job spec names the proxies, so federation *and* coordinator traffic cross them. The
  proxies add random delays, or reset connections in the middle of streams.
* In-process nodes wired as ``party serve`` wires them, whose outgoing federation calls pass
  a :class:`FaultyCalls` interceptor: calls dropped before they leave, replies lost after
  delivery (the sender resends, the receiver must drop the copy), calls delivered twice.

Each test checks that the faults did happen, that the model shares and metrics equal the
baseline's, and that every audit log records each message exactly once.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import typing as t
from pathlib import Path

import grpc
import pytest

import lianmo.transport.grpc_channel as grpc_channel
from lianmo.audit.log import read_records, verify_chain
from lianmo.coordinator.run import JobReport, run_job
from lianmo.transport.tls import TlsIdentity
from tests.integration import test_integration_grpc_job as in_process
from tests.integration import test_integration_kill as kill
from tests.integration.netfaults import FaultyCalls, FaultyProxy
from tests.integration.test_integration_cli import PARTIES, _job, _write_yaml
from tests.integration.test_integration_grpc_job import Pki as InProcessPki
from tests.integration.test_integration_kill import (
    JOB,
    MODELS,
    Federation,
    _comparable,
)

pytestmark = pytest.mark.timeout(600)

certs = kill.certs  # module-scoped fixtures: the federation's certificates
pki = in_process.pki

# About 0.6 MB crosses each data party's proxy in this job (0.3 MB the arbiter's), so
# these cuts land several times per proxy, in handshakes, headers and payloads alike.
PROXY_FAULTS: dict[str, dict[str, t.Any]] = {
    "delay": {"delay_s": 0.01},
    "cut": {"cut_every": (20_000, 150_000), "max_cuts": 6},
}
# One seeded generator draws every call's fault, so with this job's 47 messages the
# number of faults of each kind does not depend on thread timing (at least 3 of each).
CALL_FAULTS = {"lose_ack": 0.1, "drop": 0.1, "duplicate": 0.1, "delay_s": 0.02}


def _messages(job_dirs: t.Mapping[str, Path]) -> list[tuple[object, ...]]:
    """Every message record of every party, as (sender, receiver, round, tag, seq, sha256)."""
    out = []
    for name, job_dir in job_dirs.items():
        for r in read_records(job_dir / "audit.jsonl"):
            if r["kind"] != "message":
                continue
            sender, receiver = (name, r["peer"]) if r["direction"] == "sent" else (r["peer"], name)
            out.append(
                (r["direction"], sender, receiver, r["round"], r["tag"], r["msg_seq"], r["sha256"])
            )
    return out


def _assert_each_message_logged_once(job_dirs: t.Mapping[str, Path]) -> None:
    for job_dir in job_dirs.values():
        assert verify_chain(job_dir / "audit.jsonl") > 2
    records = _messages(job_dirs)
    repeated = [m for m, n in collections.Counter(records).items() if n > 1]
    assert not repeated, f"messages logged more than once: {repeated[:3]}"
    sent = {m[1:] for m in records if m[0] == "sent"}
    received = {m[1:] for m in records if m[0] == "received"}
    assert sent == received and len(sent) > 40


# ---- real node processes behind faulty proxies ---------------------------------------


def _run_through(fed: Federation, addresses: t.Mapping[str, str], certs: Path) -> None:
    fed.run_job(_write_yaml(fed.root / "job.yaml", _job(JOB, addresses, model=MODELS["lr"])), certs)


@pytest.fixture(scope="module")
def clean_processes(
    tmp_path_factory: pytest.TempPathFactory,
    certs: Path,
    shared_data: Path,
) -> tuple[dict[str, str], dict[str, object]]:
    """The LR job over a clean network: model digests and metrics."""
    with Federation(tmp_path_factory.mktemp("clean"), certs, shared_data) as fed:
        _run_through(fed, fed.addresses, certs)
        return fed.model_digests(), _comparable(fed.root / "out")


@pytest.mark.slow  # each fault re-runs the LR job through a proxy (about 100 s both)
@pytest.mark.parametrize("fault", list(PROXY_FAULTS))
def test_cut_and_delayed_connections_give_the_clean_model(
    fault: str,
    tmp_path: Path,
    certs: Path,
    shared_data: Path,
    clean_processes: tuple[dict[str, str], dict[str, object]],
) -> None:
    with Federation(tmp_path, certs, shared_data) as fed, contextlib.ExitStack() as stack:
        proxies = {
            name: stack.enter_context(
                FaultyProxy(fed.addresses[name], seed=i, **PROXY_FAULTS[fault])
            )
            for i, name in enumerate(PARTIES)
        }
        _run_through(fed, {n: p.address for n, p in proxies.items()}, certs)
        print({n: (p.cuts, p.connections, p.bytes_forwarded) for n, p in proxies.items()})
        if "cut_every" in PROXY_FAULTS[fault]:
            assert sum(p.cuts for p in proxies.values()) >= 6  # the faults did happen
            assert all(p.connections > 1 for p in proxies.values())  # and were reconnected
        for name, node in fed.nodes.items():  # a cut stream is no error, let alone a crash
            assert "Traceback" not in node.log_text(), name
            assert "truncated" not in node.log_text(), name
        digests, metrics = clean_processes
        assert fed.model_digests() == digests
        assert _comparable(fed.root / "out") == metrics
        _assert_each_message_logged_once({n: fed.job_dir(n) for n in PARTIES})


# ---- in-process nodes whose calls are dropped, duplicated, unacknowledged -------------


class _Faulty(grpc_channel.PeerClient):
    """A PeerClient whose federation calls pass the test's interceptor."""

    calls: FaultyCalls | None = None

    def __init__(self, address: str, expected_name: str, identity: TlsIdentity, **kw: t.Any):
        super().__init__(address, expected_name, identity, **kw)
        assert self.calls is not None
        channel = grpc.intercept_channel(self._channel, self.calls)
        self._stub = grpc_channel.federation_pb2_grpc.FederationStub(channel)  # type: ignore[no-untyped-call]


def _train_in_process(
    root: Path,
    pki: InProcessPki,
    shared_data: Path,
) -> tuple[JobReport, dict[str, Path]]:
    configs = {n: in_process._party_config(n, root, pki, shared_data) for n in PARTIES}
    with in_process._running(configs) as nodes:
        addresses = {n: nodes[n].address for n in PARTIES}
        with in_process._controls(addresses, pki.ids["coordinator"]) as controls:
            report = run_job(
                in_process._spec("faulty-calls", addresses), controls, poll_interval=0.1
            )
        return report, {n: nodes[n].state_dir / "jobs" / "faulty-calls" for n in PARTIES}


def _shares(job_dirs: t.Mapping[str, Path]) -> dict[str, str]:
    return {
        n: hashlib.sha256((job_dirs[n] / "model.json").read_bytes()).hexdigest()
        for n in ("broker", "platform")
    }


@pytest.fixture(scope="module")
def clean_in_process(
    tmp_path_factory: pytest.TempPathFactory,
    pki: InProcessPki,
    shared_data: Path,
) -> tuple[dict[str, str], dict[str, object]]:
    report, job_dirs = _train_in_process(tmp_path_factory.mktemp("clean"), pki, shared_data)
    return _shares(job_dirs), report.guest_result["validation"]


def test_dropped_unacknowledged_and_duplicated_calls_give_the_clean_model(
    tmp_path: Path,
    pki: InProcessPki,
    shared_data: Path,
    clean_in_process: tuple[dict[str, str], dict[str, object]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = FaultyCalls(seed=35, **CALL_FAULTS)
    monkeypatch.setattr(_Faulty, "calls", calls)
    monkeypatch.setattr(grpc_channel, "PeerClient", _Faulty)
    report, job_dirs = _train_in_process(tmp_path, pki, shared_data)
    print(dict(calls.counts))
    for kind in ("lose_ack", "drop", "duplicate"):
        assert calls.counts[kind] >= 3, calls.counts  # the faults did happen
    shares, validation = clean_in_process
    assert _shares(job_dirs) == shares
    assert report.guest_result["validation"] == validation
    _assert_each_message_logged_once(job_dirs)
