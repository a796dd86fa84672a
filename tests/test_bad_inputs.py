"""Bad inputs across layers: each is refused with its error class (and, at the CLI, its exit
code) and a message naming the party, the message, file or field, and what to do.

Transport-level cases (truncated, oversized, replayed, wrong certificates) are in
tests/transport/test_transport_bad_inputs.py, crypto ones in
tests/crypto/test_crypto_bad_inputs.py; /tmp/bad_inputs_table.md maps every case to its test.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import typing as t
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from lianmo.cli.main import main
from lianmo.config import JobSpec, PartyConfig
from lianmo.crypto.drbg import Drbg
from lianmo.errors import (
    AuditError,
    AuthenticationError,
    ConfigError,
    CryptoError,
    DataError,
    JobFailedError,
    LianmoError,
    ProtocolError,
    TransportError,
    UnknownJobError,
)
from lianmo.node.service import NodeService
from lianmo.protocols.context import RoleContext
from lianmo.protocols.psi import align_guest, align_host
from lianmo.transport.certs import make_ca, make_party_cert, write_identity_dir
from lianmo.transport.envelope import Envelope
from lianmo.transport.grpc_channel import PeerClient
from lianmo.transport.grpc_server import running_server
from lianmo.transport.memory import MemoryHub
from lianmo.transport.tls import TlsIdentity

LIANMO = Path(sys.executable).with_name("lianmo")  # the installed console script
NAMES = ("broker", "platform", "arbiter", "coordinator")


def _spec(**changes: t.Any) -> dict[str, t.Any]:
    spec: dict[str, t.Any] = {
        "job_id": "j1",
        "parties": [
            {"name": "broker", "role": "guest", "address": "a:1", "dataset": "d1"},
            {"name": "platform", "role": "host", "address": "b:1", "dataset": "d2"},
            {"name": "arbiter", "role": "arbiter", "address": "c:1"},
        ],
    }
    spec.update(changes)
    return spec


def _write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---- 1. an intersection below alignment.min_intersection ---------------------------------


def _run_psi(guest_ids: list[str], host_ids: list[str], minimum: int) -> dict[str, BaseException]:
    """Guest 'broker' and host 'platform' align; return each party's error."""
    hub = MemoryHub("j1", ["broker", "platform"])
    errors: dict[str, BaseException] = {}

    def run(party: str, fn: Callable[[RoleContext], object]) -> None:
        ctx = RoleContext(
            job_id="j1",
            party=party,
            channel=hub.channel(party, recv_timeout=30),
            rng=Drbg(hashlib.sha256(party.encode()).digest()),
            guest="broker",
            hosts=("platform",),
        )
        try:
            fn(ctx)
        except BaseException as exc:  # noqa: BLE001 - collected for the test
            # The other party's inbox stays open, as on separate nodes: each must stop
            # on its own check, not because its peer failed.
            errors[party] = exc

    roles = {
        "broker": lambda ctx: align_guest(ctx, guest_ids, min_intersection=minimum),
        "platform": lambda ctx: align_host(ctx, host_ids, min_intersection=minimum),
    }
    threads = [threading.Thread(target=run, args=item) for item in roles.items()]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    return errors


def test_intersection_below_the_minimum_stops_every_party_naming_itself_and_the_setting() -> None:
    guest_ids = [f"c{i:03d}" for i in range(0, 20)]
    host_ids = [f"c{i:03d}" for i in range(15, 40)]  # 5 in common
    errors = _run_psi(guest_ids, host_ids, minimum=10)
    assert set(errors) == {"broker", "platform"}
    for party, exc in errors.items():
        assert type(exc) is DataError
        assert str(exc) == (
            f"party '{party}': the intersection has 5 ids, below the job's minimum of 10; "
            "training on so few people could single them out. Check that both parties use "
            "the same id format, or lower alignment.min_intersection"
        )


def test_min_intersection_below_one_is_refused_in_the_spec() -> None:
    with pytest.raises(ConfigError) as info:
        JobSpec.from_dict(_spec(alignment={"min_intersection": 0}), source="job.yaml")
    assert str(info.value) == (
        "job.yaml: alignment.min_intersection is 0 but must be an integer >= 1; choose a value "
        "in that range (or remove it for the default, 100)"
    )


def test_key_bits_below_2048_in_the_spec_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        JobSpec.from_dict(_spec(model={"key_bits": 1024}), source="job.yaml")
    assert str(info.value) == (
        "job.yaml: model.key_bits is 1024 but must be an integer >= 2048; smaller Paillier keys "
        "are refused: use 2048, or 3072 for data that must stay confidential past 2030 (or "
        "remove it for the default, 2048)"
    )


# ---- 11. job specs with unknown fields or missing parties ----------------------------------

TOP_FIELDS = (
    "['alignment', 'job_id', 'model', 'model_job', 'parties', 'purpose', 'seed', 'task', "
    "'validation']"
)
LR_FIELDS = (
    "['batch_size', 'clip', 'epochs', 'key_bits', 'l2', 'label_protection', 'learning_rate', "
    "'lr_decay', 'objective', 'optimizer', 'tol', 'type']"
)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s.update(learning_rte=0.1),
            "{path}: unknown field(s) ['learning_rte']; allowed fields are " + TOP_FIELDS,
        ),
        (
            lambda s: s.update(model={"learning_rte": 0.1}),
            "{path}: model: unknown field(s) ['learning_rte'] (did you mean 'learning_rate'?); "
            "allowed fields are " + LR_FIELDS,
        ),
        (
            lambda s: s["parties"][1].update(datset="d2"),
            "{path}: parties[1]: unknown field(s) ['datset'] (did you mean 'dataset'?); "
            "allowed fields are ['address', 'columns', 'dataset', 'exclude', 'name', 'role']",
        ),
        (
            lambda s: s.update(alignment={"min_intersect": 5}),
            "{path}: alignment: unknown field(s) ['min_intersect'] (did you mean "
            "'min_intersection'?); allowed fields are ['min_intersection']",
        ),
    ],
    ids=["top-level", "model", "party", "alignment"],
)
def test_unknown_fields_in_a_spec_file_name_the_file_the_field_and_the_allowed_ones(
    tmp_path: Path, edit: Callable[[dict[str, t.Any]], None], message: str
) -> None:
    spec = _spec()
    edit(spec)
    path = _write_yaml(tmp_path / "job.yaml", spec)
    with pytest.raises(ConfigError) as info:
        JobSpec.load(path)
    assert str(info.value) == message.format(path=path)


def _parties(*roles: str) -> list[dict[str, str]]:
    out = []
    for i, role in enumerate(roles):
        party = {"name": f"p{i}", "role": role, "address": f"h{i}:1"}
        if role != "arbiter":
            party["dataset"] = f"d{i}"
        out.append(party)
    return out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"parties": _parties("host", "arbiter")},
            "job.yaml: exactly one party must be the guest (label holder), got 0 "
            "(p0=host, p1=arbiter); give role 'guest' to the party with the labels",
        ),
        (
            {"parties": []},
            "job.yaml: exactly one party must be the guest (label holder), got 0 "
            "(no parties); give role 'guest' to the party with the labels",
        ),
        (
            {"parties": _parties("guest", "guest", "host", "arbiter")},
            "job.yaml: exactly one party must be the guest (label holder), got 2 "
            "(p0=guest, p1=guest, p2=host, p3=arbiter); give role 'guest' to the party with "
            "the labels",
        ),
        (
            {"parties": _parties("guest", "arbiter")},
            "job.yaml: at least one host is needed, got none (p0=guest, p1=arbiter); give "
            "role 'host' to the party that holds the other features",
        ),
        (
            {"parties": _parties("guest", "host", "host")},
            "job.yaml: logistic regression without an arbiter runs between the guest and one "
            "host, got 2 hosts (p0=guest, p1=host, p2=host); add a party with role 'arbiter' "
            "and no dataset to hold the key of coordinated LR, or keep one host",
        ),
        (
            {"parties": _parties("guest", "host", "arbiter", "arbiter")},
            "job.yaml: a job has at most one arbiter, got 2 "
            "(p0=guest, p1=host, p2=arbiter, p3=arbiter); keep one and remove the others",
        ),
        (
            {"parties": [{"name": "p0", "role": "guest", "address": "h:1"}]},
            "job.yaml: parties[0].dataset is missing but a guest must name the data set it "
            "contributes; add the name it has in that party's catalogue",
        ),
    ],
    ids=[
        "no-guest",
        "no-parties",
        "two-guests",
        "no-host",
        "lr-no-arbiter",
        "two-arbiters",
        "guest-without-dataset",
    ],
)
def test_missing_parties_are_refused_listing_what_the_spec_has(
    changes: dict[str, t.Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        JobSpec.from_dict(_spec(**changes), source="job.yaml")
    assert str(info.value) == message


def test_a_spec_without_parties_names_the_missing_field() -> None:
    raw = _spec()
    del raw["parties"]
    with pytest.raises(ConfigError) as info:
        JobSpec.from_dict(raw, source="job.yaml")
    assert str(info.value) == (
        "job.yaml: missing required field(s) ['parties']; add parties (a list of parties, each "
        "with name, role, address, dataset)"
    )


@pytest.fixture
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    write_identity_dir(directory, list(NAMES))
    return directory


def _identity(pki: Path, name: str) -> TlsIdentity:
    return TlsIdentity.load(pki / f"{name}.pem", pki / f"{name}.key", pki / "ca.pem", name)


@pytest.fixture
def node(tmp_path: Path, pki: Path) -> Iterator[NodeService]:
    """The real node service of party 'platform' (no data sets, no signing key)."""
    config = PartyConfig(
        name="platform",
        listen="127.0.0.1:0",
        state_dir=tmp_path / "state",
        cert=pki / "platform.pem",
        key=pki / "platform.key",
        ca=pki / "ca.pem",
        datasets={},
        compute_backend="serial",
        audit_level="chain",
    )

    def no_channel(*args: object) -> t.NoReturn:
        raise AssertionError("no job may start in these tests")

    service = NodeService(config, no_channel)
    yield service
    service.close()


def test_a_node_not_listed_in_the_spec_refuses_to_prepare_it(node: NodeService) -> None:
    parties = [p for p in _spec()["parties"] if p["name"] != "platform"]
    parties.append({"name": "telecom", "role": "host", "address": "d:1", "dataset": "d"})
    spec = JobSpec.from_dict(_spec(parties=parties))
    with pytest.raises(ConfigError) as info:
        node.prepare("coordinator", "j1", spec.to_json())
    assert str(info.value) == (
        "party 'platform' is not part of job 'j1' (parties: ['broker', 'arbiter', 'telecom']); "
        "list it under parties in the job spec, or send the job only to the parties it lists"
    )


# ---- 7. a message for a job the node does not run (the real node) -------------------------


def test_message_for_an_unknown_job_is_refused_by_the_real_node(
    pki: Path, node: NodeService
) -> None:
    env = Envelope.build(
        job_id="nope",
        round=0,
        tag="psi.host_set",
        sender="broker",
        receiver="platform",
        seq=0,
        payload_type="lianmo.v1.Signal",
        payload=b"x",
    )
    with running_server(
        listen="127.0.0.1:0",
        identity=_identity(pki, "platform"),
        inbox_for=node.inbox_for,
        is_member=lambda name: True,
        grace_s=0,
    ) as (_, port):
        with PeerClient(f"127.0.0.1:{port}", "platform", _identity(pki, "broker")) as client:
            with pytest.raises(UnknownJobError) as info:
                client.send_envelope(env, deadline_s=10, retries=0, backoff_s=0.01)
    assert str(info.value) == (
        "[platform] party 'platform' has no job 'nope'; the coordinator must prepare the job "
        "on every party before it starts"
    )


# ---- 12. the CLI: one line, no traceback, one exit code per class ---------------------------

ERRORS: list[tuple[LianmoError, int, str]] = [
    (ConfigError("job.yaml: bad"), 2, "lianmo: error: job.yaml: bad"),
    (DataError("party 'broker': bad column"), 3, "lianmo: error: party 'broker': bad column"),
    (CryptoError("'arbiter' sent a bad key"), 4, "lianmo: error: 'arbiter' sent a bad key"),
    (ProtocolError("[platform] bad step"), 5, "lianmo: error: [platform] bad step"),
    (UnknownJobError("[platform] no job"), 5, "lianmo: error: [platform] no job"),
    (TransportError("party 'platform' down"), 6, "lianmo: error: party 'platform' down"),
    (AuthenticationError("TLS handshake failed"), 7, "lianmo: error: TLS handshake failed"),
    (
        JobFailedError("platform", "[platform] no data"),
        8,
        "lianmo: job failed at party 'platform': [platform] no data",
    ),
    (AuditError("1 of 1 job(s) failed"), 9, "lianmo: error: 1 of 1 job(s) failed"),
]


@pytest.mark.parametrize(
    ("error", "code", "line"), ERRORS, ids=[type(e).__name__ for e, _, _ in ERRORS]
)
def test_each_error_class_exits_with_its_code_and_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: LianmoError,
    code: int,
    line: str,
) -> None:
    def fail(path: object) -> t.NoReturn:
        raise error

    monkeypatch.setattr(JobSpec, "load", staticmethod(fail))
    with pytest.raises(SystemExit) as info:
        main(["job", "run", "job.yaml", "--ca", "ca.pem", "--cert", "c.pem", "--key", "c.key"])
    assert info.value.code == code == error.exit_code
    out, err = capsys.readouterr()
    assert err == line + "\n" and out == ""


def _lianmo(
    *args: object, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert LIANMO.exists(), f"no lianmo console script beside {sys.executable}"
    return subprocess.run(
        [str(LIANMO), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def _one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    explain = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == code, explain
    assert "Traceback" not in proc.stderr, explain
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, explain
    return lines[0]


def test_cli_job_run_with_a_bad_spec_is_one_config_error_line(tmp_path: Path) -> None:
    spec = _spec(parties=_parties("host", "arbiter"))
    path = _write_yaml(tmp_path / "job.yaml", spec)
    proc = _lianmo("job", "run", path, "--ca", "x", "--cert", "y", "--key", "z", cwd=tmp_path)
    assert _one_line(proc, 2) == (
        f"lianmo: error: {path}: exactly one party must be the guest (label holder), got 0 "
        "(p0=host, p1=arbiter); give role 'guest' to the party with the labels"
    )
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            'name = "platform"\nlisten = "127.0.0.1:0"\nstate_dir = "s"\nmax_mesage_mb = 5\n',
            "{path}: unknown field(s) ['max_mesage_mb'] (did you mean 'max_message_mb'?); "
            "allowed fields are ['audit', 'compute', 'coordinators', 'datasets', "
            "'health_listen', 'limits', 'listen', ",  # and more
        ),
        (
            'name = "platform"\nlisten = "127.0.0.1:0"\n',
            "{path}: missing required field(s) ['state_dir', 'tls']; add state_dir (a folder "
            "path) and tls (a table with keys cert, key, ca)",
        ),
        (None, "party config {path} does not exist"),
    ],
    ids=["unknown-field", "missing-fields", "missing-file"],
)
def test_cli_party_serve_with_a_bad_config_is_one_config_error_line(
    tmp_path: Path, toml: str | None, message: str
) -> None:
    path = tmp_path / "party.toml"
    if toml is not None:
        path.write_text(toml)
    proc = _lianmo("party", "serve", "--config", path, cwd=tmp_path)
    line = _one_line(proc, 2)
    assert line.startswith("lianmo: error: " + message.format(path=path))
    if toml is not None and "max_mesage_mb" in toml:
        assert "'max_message_mb'" in line and line.endswith("'state_dir', 'tls']")
    else:
        assert line == "lianmo: error: " + message.format(path=path)


def test_cli_audit_verify_of_a_damaged_log_is_one_audit_error_line(tmp_path: Path) -> None:
    job = tmp_path / "jobs" / "j1"
    job.mkdir(parents=True)
    (job / "audit.jsonl").write_text("not json\n")
    proc = _lianmo("audit", "verify", tmp_path, cwd=tmp_path)
    line = _one_line(proc, 9)
    assert line.startswith("lianmo: error: 1 of 1 job(s) failed verification; first problem: ")
    assert f"audit log {job / 'audit.jsonl'} line 1 is not a JSON record" in line
    assert "the file was cut short or edited" in line


@pytest.mark.parametrize("grpc_verbosity", [None, "ERROR"], ids=["default-env", "grpc-error"])
def test_cli_job_run_against_a_node_of_another_ca_is_one_authentication_error_line(
    tmp_path: Path, pki: Path, grpc_verbosity: str | None
) -> None:
    other_ca, other_key = make_ca("another CA")
    cert, key = make_party_cert(other_ca, other_key, "broker")
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    if grpc_verbosity is not None:
        env["GRPC_VERBOSITY"] = grpc_verbosity
    with running_server(
        listen="127.0.0.1:0",
        identity=TlsIdentity(cert, key, other_ca),
        inbox_for=lambda job_id: t.cast(t.Any, None),
        is_member=lambda name: True,
        grace_s=0,
    ) as (_, port):
        spec = _spec()
        spec["parties"][0]["address"] = f"127.0.0.1:{port}"
        path = _write_yaml(tmp_path / "job.yaml", spec)
        proc = _lianmo(
            "job",
            "run",
            path,
            *("--ca", pki / "ca.pem", "--cert", pki / "coordinator.pem"),
            *("--key", pki / "coordinator.key", "--output", tmp_path / "out"),
            cwd=tmp_path,
            env=env,
        )
    line = _one_line(proc, 7)
    assert line.startswith(f"lianmo: error: TLS handshake with party 'broker' at 127.0.0.1:{port}")
    assert "CERTIFICATE_VERIFY_FAILED" in line
    assert line.endswith(
        "; check that its certificate is issued for the name 'broker' by this job's CA and has "
        "not expired, and that both nodes use the same ca.pem"
    )
