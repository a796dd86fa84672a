"""The deployment files are valid and agree with lianmo, as far as this machine can check.

There is no container engine or cluster here, so: the compose file is validated against
the Compose specification (check-jsonschema's vendored schema), the Kubernetes manifests
against Kubernetes' own schemas (kubernetes-validate, strict: unknown fields fail), the
Dockerfile is parsed (dockerfile-parse), every party config and job spec they carry goes
through lianmo's own parsers, and a node is started exactly as the image's entry point and
command start it, then probed with the image's HEALTHCHECK command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import typing as t
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

import lianmo
from lianmo.cli.wiring import write_identities
from lianmo.config import JobSpec, PartyConfig
from lianmo.node.policy import check_job
from tests.secret_files import is_private_key

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
K8S = ROOT / "deploy" / "k8s"
PARTIES = ("broker", "platform", "arbiter")
# Oldest Kubernetes whose kubelet has gRPC probes (GA in 1.27), and the newest schemas known.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())

pytestmark = pytest.mark.timeout(120)


def _dockerfile() -> DockerfileParser:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return parser


def _instructions(name: str) -> list[str]:
    return [i["value"] for i in _dockerfile().structure if i["instruction"] == name]


def _exec_form(value: str) -> list[str]:
    """A Dockerfile exec-form argument (a JSON array), as a list."""
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), value
    return parsed


# ---- the image ------------------------------------------------------------------------


def test_image_is_slim_runs_as_a_non_root_user_and_enters_through_lianmo() -> None:
    parser = _dockerfile()
    assert parser.baseimage == "python:3.11-slim"
    users = _instructions("USER")
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert _exec_form(_instructions("ENTRYPOINT")[-1]) == ["lianmo"]
    assert _exec_form(_instructions("CMD")[-1]) == [
        "party",
        "serve",
        "--config",
        "/etc/lianmo/party.toml",
    ]
    assert set(" ".join(_instructions("EXPOSE")).split()) == {"7000", "7001"}


def test_image_health_check_asks_the_grpc_health_port() -> None:
    (check,) = _instructions("HEALTHCHECK")
    argv = _exec_form(check.split("CMD", 1)[1].strip())
    assert argv == ["lianmo", "party", "health", "--address", "127.0.0.1:7001"]


def test_dockerignore_lets_only_the_package_into_the_build() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!src/"]


# ---- compose ---------------------------------------------------------------------------


def _compose() -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], yaml.safe_load((COMPOSE / "compose.yaml").read_text()))


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
        + [str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    ok = _check_compose(COMPOSE / "compose.yaml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The check can fail: a misspelt service key is refused.
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        (COMPOSE / "compose.yaml")
        .read_text()
        .replace("volumes:\n      - ./config/broker", "volume:\n      - ./config/broker", 1)
    )
    refused = _check_compose(broken)
    assert refused.returncode != 0 and "volume" in refused.stdout + refused.stderr


def _mounts(service: dict[str, t.Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts (relative to compose/)."""
    out = {}
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        out[target] = source
    return out


@pytest.mark.parametrize("party", PARTIES)
def test_compose_party_gets_its_own_config_and_only_its_own_keys(party: str) -> None:
    service = _compose()["services"][party]
    mounts = _mounts(service)
    assert service["command"] == ["party", "serve", "--config", "/etc/lianmo/party.toml"]
    config_file = COMPOSE / mounts["/etc/lianmo/party.toml"]
    config = PartyConfig.load(config_file)  # unknown keys, bad values: ConfigError
    assert config.name == party
    assert config.state_dir == Path("/var/lib/lianmo")
    assert mounts["/var/lib/lianmo"] == f"{party}-state"
    tls = {
        config.cert: f"./certs/{party}.pem",
        config.key: f"./certs/{party}.key",
        config.ca: "./certs/ca.pem",
        config.signing_key_path: f"./certs/{party}.signing.key",
    }
    for inside, outside in tls.items():
        assert mounts[str(inside)] == outside
    others = [p for p in (*PARTIES, "coordinator") if p != party]
    assert not [s for s in mounts.values() if any(f"/{o}." in s for o in others)]
    assert _port(config.listen) == 7000 and config.health_listen == "0.0.0.0:7001"


def _documented_certs_init(text: str) -> list[str]:
    """The arguments of the one ``lianmo certs init`` command a file documents."""
    (line,) = [ln for ln in text.splitlines() if ln.lstrip("# ").startswith("lianmo certs init")]
    return shlex.split(line.split("lianmo certs init", 1)[1])


def test_compose_never_mounts_or_hands_the_ca_key_to_a_party(tmp_path: Path) -> None:
    """The documented `certs init`, run for real: no file or folder a party gets is the CA's."""
    from lianmo.cli.main import main

    args = _documented_certs_init((COMPOSE / "compose.yaml").read_text())
    args = [a.replace("deploy/compose", str(tmp_path)) for a in args]
    with pytest.raises(SystemExit) as done:
        main(["certs", "init", *args])
    assert done.value.code == 0
    ca_key = tmp_path / args[args.index("--ca-dir") + 1] / "ca.key"
    assert is_private_key(ca_key)
    chowned = tmp_path / "certs"  # `chown -R 10001` makes all of it the party user's
    assert not ca_key.resolve().is_relative_to(chowned.resolve())
    for name, service in _compose()["services"].items():
        for source in _mounts(service).values():
            if source.startswith("./"):
                mounted = (tmp_path / source).resolve()
                assert mounted != ca_key.resolve(), name
                assert not ca_key.resolve().is_relative_to(mounted), name
                assert not mounted.is_relative_to(ca_key.parent.resolve()), name
    assert _documented_certs_init((ROOT / "docs" / "deploy.md").read_text()) == [
        a.replace(str(tmp_path), "deploy/compose") for a in args
    ]


def test_kubernetes_secret_holds_only_the_partys_own_files() -> None:
    secret = set(_one("Secret")["stringData"])
    assert secret == {"ca.pem", "party.pem", "party.key", "party.signing.key"}
    header = (K8S / "party-node.yaml").read_text().split("apiVersion", 1)[0]
    files = re.findall(r"--from-file=(?:[\w.]+=)?([\w.]+)", header)
    assert files == ["ca.pem", "broker.pem", "broker.key", "broker.signing.key"]


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_compose_job_names_the_services_and_their_data_sets() -> None:
    compose = _compose()
    spec = JobSpec.load(COMPOSE / "job.yaml")
    assert set(spec.party_names) == set(PARTIES)
    for party in spec.parties:
        host, port = party.address.rsplit(":", 1)
        assert host in compose["services"] and int(port) == 7000
        config = PartyConfig.load(COMPOSE / "config" / f"{party.name}.toml")
        check_job(config, spec)  # each party's [policy] accepts the demo job
        if party.dataset is not None:
            entry = config.dataset(party.dataset)
            # The demo data ships in the image, in the package of the base image's Python.
            package = Path(lianmo.__file__).parent
            relative = entry.path.relative_to("/usr/local/lib/python3.11/site-packages/lianmo")
            assert (package / relative).is_file(), relative
    coordinator = compose["services"]["coordinator"]
    assert coordinator["command"][:3] == ["job", "run", "/etc/lianmo/job.yaml"]
    assert set(coordinator["depends_on"]) == set(PARTIES)
    assert all(d["condition"] == "service_healthy" for d in coordinator["depends_on"].values())


# ---- Kubernetes ---------------------------------------------------------------------------


def _k8s_documents() -> list[tuple[str, dict[str, t.Any]]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_follow_the_kubernetes_schemas(version: str) -> None:
    documents = _k8s_documents()
    kinds = {doc["kind"] for _, doc in documents}
    assert {"ConfigMap", "StatefulSet", "Service", "NetworkPolicy", "Secret"} <= kinds
    for name, doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']} is not valid Kubernetes {version}: {exc}")


def test_kubernetes_validation_can_fail() -> None:
    (stateful,) = [d for _, d in _k8s_documents() if d["kind"] == "StatefulSet"]
    stateful["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(stateful, K8S_VERSIONS[-1], strict=True)


def _one(kind: str) -> dict[str, t.Any]:
    (doc,) = [d for _, d in _k8s_documents() if d["kind"] == kind]
    return doc


def test_kubernetes_party_config_is_a_valid_lianmo_config() -> None:
    raw = tomllib.loads(_one("ConfigMap")["data"]["party.toml"])
    config = PartyConfig.from_dict(raw, base=Path("/"), source="ConfigMap party.toml")
    container = _one("StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert _port(config.listen) == ports["federation"]
    assert config.health_listen is not None and _port(config.health_listen) == ports["health"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["health"], probe
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/lianmo"] == "state" and config.state_dir == Path("/var/lib/lianmo")
    assert mounts["/etc/lianmo/tls"] == "tls"
    secret_keys = set(_one("Secret")["stringData"])
    for path in (config.cert, config.key, config.ca, config.signing_key_path):
        assert path.parent == Path("/etc/lianmo/tls") and path.name in secret_keys
    assert container["args"] == _exec_form(_instructions("CMD")[-1])


def test_kubernetes_network_policy_admits_only_the_federation_port() -> None:
    policy = _one("NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    ports = [p for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert ports == [{"port": 7000, "protocol": "TCP"}]
    services = [d for _, d in _k8s_documents() if d["kind"] == "Service"]
    assert [p["port"] for s in services for p in s["spec"]["ports"]] == [7000, 7000]


# ---- the node as the image starts it ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lianmo_command() -> str:
    """The ``lianmo`` console script of this environment (the image's entry point)."""
    script = Path(sys.executable).parent / "lianmo"
    found = str(script) if script.exists() else shutil.which("lianmo")
    assert found, "the lianmo console script is not installed in this environment"
    return found


def test_node_starts_as_the_image_starts_it_and_passes_the_health_check(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD with the compose broker's config, paths moved under tmp_path."""
    etc, state = tmp_path / "etc" / "lianmo", tmp_path / "var" / "lib" / "lianmo"
    (etc / "tls").mkdir(parents=True)
    state.mkdir(parents=True)
    write_identities(tmp_path / "certs", ["broker"])
    for src, dst in {
        "ca.pem": "ca.pem",
        "broker.pem": "party.pem",
        "broker.key": "party.key",
        "broker.signing.key": "party.signing.key",
    }.items():
        shutil.copy2(tmp_path / "certs" / src, etc / "tls" / dst)
    listen, health = _free_port(), _free_port()
    site = str(Path(lianmo.__file__).parent.parent)
    text = (COMPOSE / "config" / "broker.toml").read_text()
    text = text.replace("/etc/lianmo", str(etc)).replace("/var/lib/lianmo", str(state))
    text = text.replace("/usr/local/lib/python3.11/site-packages", site)
    text = text.replace("0.0.0.0:7000", f"127.0.0.1:{listen}")
    text = text.replace("0.0.0.0:7001", f"127.0.0.1:{health}")
    (etc / "party.toml").write_text(text)

    def image_argv(instruction: str) -> list[str]:
        argv = _exec_form(instruction)
        return [a.replace("/etc/lianmo", str(etc)).replace(":7001", f":{health}") for a in argv]

    entry = image_argv(_instructions("ENTRYPOINT")[-1])
    command = image_argv(_instructions("CMD")[-1])
    check = image_argv(_instructions("HEALTHCHECK")[0].split("CMD", 1)[1].strip())
    assert entry[0] == check[0] == "lianmo"
    lianmo_bin = _lianmo_command()
    node = subprocess.Popen(
        [lianmo_bin, *entry[1:], *command],
        cwd=state,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            probe = subprocess.run(
                [lianmo_bin, *check[1:]], capture_output=True, text=True, timeout=30
            )
            if probe.returncode == 0 or node.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert probe.returncode == 0, f"{probe.stdout}{probe.stderr}\nnode: {_output(node)}"
        assert probe.stdout.strip() == f"SERVING (127.0.0.1:{health})"
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=30) == 0, _output(node)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        assert node.stdout is not None
        node.stdout.close()  # else its file is only closed (with a ResourceWarning) by GC
    # Once the node is gone, the same check fails, in one line.
    down = subprocess.run([lianmo_bin, *check[1:]], capture_output=True, text=True, timeout=60)
    assert down.returncode == 6  # TransportError
    assert re.fullmatch(r"lianmo: error: no health answer from 127\.0\.0\.1:\d+ .*\n", down.stderr)


def _output(node: subprocess.Popen[str]) -> str:
    if node.poll() is None:
        node.kill()
    out, _ = node.communicate(timeout=10)
    return out


def test_health_port_is_refused_without_its_setting() -> None:
    raw = tomllib.loads((COMPOSE / "config" / "broker.toml").read_text())
    raw["health_listen"] = 7001
    with pytest.raises(Exception, match="health_listen"):
        PartyConfig.from_dict(raw, base=Path("/"))
    del raw["health_listen"]
    assert PartyConfig.from_dict(raw, base=Path("/")).health_listen is None
    assert os.sep == "/"  # the paths above are POSIX, as in the image
