"""The deployment files are valid and agree with lianmo, as far as this machine can check.

There is no container engine or cluster here, so: the compose file is validated against
the Compose specification (check-jsonschema's vendored schema), the Kubernetes manifests
against Kubernetes' own schemas (kubernetes-validate, strict: unknown fields fail), the
Dockerfile is parsed (dockerfile-parse), every party config and job spec they carry goes
through lianmo's own parsers (``[serving]`` and ``[metrics]`` included), the commands of
the compose serving path through lianmo's own CLI parser, and a node is started exactly as
the image's entry point and command start it, then probed with the image's HEALTHCHECK
command, scraped on its metrics port and asked on its scoring port. The whole compose
serving path runs in tests/deploy/test_deploy_compose_serving.py (slow).
"""

from __future__ import annotations

import csv
import gzip
import os
import re
import signal
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
from lianmo.cli.model import promote_cmd, score_cmd
from lianmo.cli.wiring import write_identities
from lianmo.config import JobSpec, PartyConfig
from lianmo.node.policy import check_job
from tests.deploy.compose_local import (
    COMPOSE,
    ROOT,
    LocalCompose,
    bind_mounts,
    compose_file,
    documented_certs_init,
    exec_form,
    image_health_check,
    image_instructions,
    lianmo_command,
    scrape_metrics,
)
from tests.secret_files import is_private_key

K8S = ROOT / "deploy" / "k8s"
PARTIES = ("broker", "platform", "arbiter")
# The conventional ports: federation and health (every node), online scoring (guest and
# hosts), Prometheus metrics (every node).
FEDERATION, HEALTH, SCORING, METRICS = 7000, 7001, 7443, 9464
# Oldest Kubernetes whose kubelet has gRPC probes (GA in 1.27), and the newest schemas known.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())

pytestmark = pytest.mark.timeout(120)


def _dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(ROOT / "Dockerfile"))


# ---- the image ------------------------------------------------------------------------


def test_image_is_slim_runs_as_a_non_root_user_and_enters_through_lianmo() -> None:
    parser = _dockerfile()
    assert parser.baseimage == "python:3.11-slim"
    users = image_instructions("USER")
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert exec_form(image_instructions("ENTRYPOINT")[-1]) == ["lianmo"]
    assert exec_form(image_instructions("CMD")[-1]) == [
        "party",
        "serve",
        "--config",
        "/etc/lianmo/party.toml",
    ]
    exposed = {int(p) for p in " ".join(image_instructions("EXPOSE")).split()}
    assert exposed == {FEDERATION, HEALTH, SCORING, METRICS}


def test_every_image_tag_in_the_deploy_files_and_docs_is_the_package_version() -> None:
    """``docker build -t lianmo:X`` in the docs and the images the compose file and the
    manifests run must name the version being built, or a user runs an old image."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert version == lianmo.__version__
    files = [ROOT / "Dockerfile", ROOT / "docs" / "deploy.md", ROOT / "README.md"]
    files += sorted((ROOT / "deploy").rglob("*.y*ml"))
    tags = {
        (path.relative_to(ROOT).as_posix(), tag)
        for path in files
        for tag in re.findall(r"\blianmo:([0-9][\w.+-]*\w)", path.read_text())
    }
    assert {where for where, _ in tags} >= {
        "Dockerfile",
        "docs/deploy.md",
        "deploy/compose/compose.yaml",
        "deploy/k8s/party-node.yaml",
    }
    assert {(where, tag) for where, tag in tags if tag != version} == set()


def test_image_health_check_asks_the_grpc_health_port() -> None:
    argv = image_health_check()
    assert argv == ["lianmo", "party", "health", "--address", f"127.0.0.1:{HEALTH}"]


def test_dockerignore_lets_only_the_package_into_the_build() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!src/"]


# ---- compose ---------------------------------------------------------------------------


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


@pytest.mark.parametrize("party", PARTIES)
def test_compose_party_gets_its_own_config_and_only_its_own_keys(party: str) -> None:
    service = compose_file()["services"][party]
    mounts = bind_mounts(service)
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
    assert _port(config.listen) == FEDERATION and config.health_listen == f"0.0.0.0:{HEALTH}"
    # Metrics for the monitoring network: exposed to the compose network, never published.
    assert config.metrics_listen == f"0.0.0.0:{METRICS}"
    assert str(METRICS) in service["expose"] and METRICS not in _published(service).values()


def _published(service: dict[str, t.Any]) -> dict[int, int]:
    """Host port -> container port of a service's ``ports`` ("[IP:]HOST:CONTAINER")."""
    out = {}
    for mapping in service.get("ports", ()):
        *_ip, outside, inside = str(mapping).split(":")
        out[int(outside)] = int(inside)
    return out


def _party_config(party: str) -> PartyConfig:
    return PartyConfig.load(COMPOSE / "config" / f"{party}.toml")


def test_compose_guest_serves_decision_engines_and_reaches_each_hosts_scoring_port() -> None:
    services = compose_file()["services"]
    spec = JobSpec.load(COMPOSE / "job.yaml")
    guest = _party_config(spec.guest)
    assert guest.serving.listen == f"0.0.0.0:{SCORING}"
    assert guest.serving.clients == ("decision-engine",)
    # The guest dials each host's scoring port by service name, over the compose network.
    assert guest.serving.peers == {h: f"{h}:{SCORING}" for h in spec.hosts}
    assert _published(services[spec.guest])[SCORING] == SCORING  # decision engines dial it
    for h in spec.hosts:
        host = _party_config(h)
        assert host.serving.listen == f"0.0.0.0:{SCORING}" and host.serving.clients == ()
        assert str(SCORING) in services[h]["expose"]
        assert SCORING not in _published(services[h]).values()  # only the guest dials it
    for other in set(PARTIES) - {spec.guest, *spec.hosts}:  # the arbiter serves no model
        assert _party_config(other).serving.listen is None


def test_compose_promotes_the_demo_job_hosts_first_each_with_only_its_own_files() -> None:
    services = compose_file()["services"]
    spec = JobSpec.load(COMPOSE / "job.yaml")
    model = score_cmd.make_context("score", _score_args(services["score"])).params["model_name"]
    for party in (*spec.hosts, spec.guest):
        service = services[f"promote-{party}"]
        assert service["profiles"] == ["serve"] and "entrypoint" not in service
        assert service["command"][:2] == ["model", "promote"]
        params = promote_cmd.make_context("promote", service["command"][2:]).params
        assert (params["name"], params["job"]) == (model, spec.job_id)
        mounts = bind_mounts(service)
        config = PartyConfig.load(COMPOSE / mounts[str(params["config_path"])])
        assert config.name == party
        # What promotion reads and writes, and nothing else: no TLS key, nobody else's file.
        assert mounts == {
            str(params["config_path"]): f"./config/{party}.toml",
            str(config.signing_key_path): f"./certs/{party}.signing.key",
            str(config.state_dir): f"{party}-state",
        }
        node = bind_mounts(services[party])
        assert all(node[inside] == outside for inside, outside in mounts.items())
    guest_first = services[f"promote-{spec.guest}"]["depends_on"]
    for h in spec.hosts:
        assert guest_first[f"promote-{h}"]["condition"] == "service_completed_successfully"
    assert guest_first[spec.guest]["condition"] == "service_healthy"


def _score_args(service: dict[str, t.Any]) -> list[str]:
    entry = service["entrypoint"]
    assert entry[:2] == ["lianmo", "score"]
    return [*entry[2:], *service["command"]]


def _demo_ids(party: str) -> set[str]:
    config = _party_config(party)
    (entry,) = [config.dataset(name) for name in config.datasets]
    relative = entry.path.relative_to("/usr/local/lib/python3.11/site-packages/lianmo")
    with gzip.open(Path(lianmo.__file__).parent / relative, "rt", newline="") as fh:
        return {row[entry.id_column] for row in csv.DictReader(fh)}


def test_compose_score_asks_the_guest_as_a_decision_engine_for_ids_both_parties_hold() -> None:
    services = compose_file()["services"]
    spec = JobSpec.load(COMPOSE / "job.yaml")
    service = services["score"]
    assert service["profiles"] == ["serve"]
    params = score_cmd.make_context("score", _score_args(service)).params
    host, port = params["address"].rsplit(":", 1)
    guest = _party_config(spec.guest)
    assert (host, params["party"]) == (spec.guest, spec.guest)
    assert guest.serving.listen is not None and int(port) == _port(guest.serving.listen)
    assert bind_mounts(service) == {
        str(params["ca"]): "./certs/ca.pem",
        str(params["cert"]): "./certs/decision-engine.pem",
        str(params["key"]): "./certs/decision-engine.key",
    }
    assert "decision-engine" in guest.serving.clients
    ids = set(params["ids"])
    assert ids and all(ids <= _demo_ids(p) for p in (spec.guest, *spec.hosts))
    assert service["depends_on"][spec.guest]["condition"] == "service_healthy"


def test_compose_never_mounts_or_hands_the_ca_key_to_a_party(tmp_path: Path) -> None:
    """The documented `certs init`, run for real: no file or folder a party gets is the CA's."""
    from lianmo.cli.main import main

    args = documented_certs_init((COMPOSE / "compose.yaml").read_text())
    args = [a.replace("deploy/compose", str(tmp_path)) for a in args]
    with pytest.raises(SystemExit) as done:
        main(["certs", "init", *args])
    assert done.value.code == 0
    ca_key = tmp_path / args[args.index("--ca-dir") + 1] / "ca.key"
    assert is_private_key(ca_key)
    chowned = tmp_path / "certs"  # `chown -R 10001` makes all of it the party user's
    assert not ca_key.resolve().is_relative_to(chowned.resolve())
    for name, service in compose_file()["services"].items():
        for source in bind_mounts(service).values():
            if source.startswith("./"):
                mounted = (tmp_path / source).resolve()
                assert mounted != ca_key.resolve(), name
                assert not ca_key.resolve().is_relative_to(mounted), name
                assert not mounted.is_relative_to(ca_key.parent.resolve()), name
    assert documented_certs_init((ROOT / "docs" / "deploy.md").read_text()) == [
        a.replace(str(tmp_path), "deploy/compose") for a in args
    ]
    # ... and it makes every file that a service mounts from certs/.
    for name, service in compose_file()["services"].items():
        for source in bind_mounts(service).values():
            if source.startswith("./certs/"):
                assert (tmp_path / source).is_file(), (name, source)


def test_kubernetes_secret_holds_only_the_partys_own_files() -> None:
    secret = set(_one("Secret")["stringData"])
    assert secret == {"ca.pem", "party.pem", "party.key", "party.signing.key"}
    header = (K8S / "party-node.yaml").read_text().split("apiVersion", 1)[0]
    files = re.findall(r"--from-file=(?:[\w.]+=)?([\w.]+)", header)
    assert files == ["ca.pem", "broker.pem", "broker.key", "broker.signing.key"]


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_compose_job_names_the_services_and_their_data_sets() -> None:
    compose = compose_file()
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
    assert config.serving.listen is not None and _port(config.serving.listen) == ports["scoring"]
    assert config.metrics_listen is not None and _port(config.metrics_listen) == ports["metrics"]
    assert (ports["scoring"], ports["metrics"]) == (SCORING, METRICS)
    # Every probe asks the plaintext gRPC health port (the kubelet has no client
    # certificate); the startup probe gives the node a minute or more before liveness.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe] == container[probe] | {"grpc": {"port": ports["health"]}}, probe
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    annotations = _one("StatefulSet")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] == "/metrics"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/lianmo"] == "state" and config.state_dir == Path("/var/lib/lianmo")
    assert mounts["/etc/lianmo/tls"] == "tls"
    secret_keys = set(_one("Secret")["stringData"])
    for path in (config.cert, config.key, config.ca, config.signing_key_path):
        assert path.parent == Path("/etc/lianmo/tls") and path.name in secret_keys
    assert container["args"] == exec_form(image_instructions("CMD")[-1])


def test_kubernetes_network_policy_admits_each_port_only_from_those_who_dial_it() -> None:
    policy = _one("NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = {
        tuple(p["port"] for p in rule["ports"]): rule["from"] for rule in policy["spec"]["ingress"]
    }
    assert set(rules) == {(FEDERATION,), (SCORING,), (METRICS,)}  # never health (7001)
    assert all("ipBlock" in peer for peer in rules[FEDERATION,] + rules[SCORING,])
    # Metrics: only from the monitoring namespace, never from an address range outside.
    assert rules[METRICS,] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_kubernetes_services_expose_scoring_to_partners_and_metrics_in_cluster_only() -> None:
    container = _one("StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    services = {d["metadata"]["name"]: d for _, d in _k8s_documents() if d["kind"] == "Service"}
    ports = {}
    for name, service in services.items():
        ports[name] = {p["port"] for p in service["spec"]["ports"]}
        for p in service["spec"]["ports"]:
            assert named[p["targetPort"]] == p["port"], (name, p)
    assert ports["lianmo-party"] == {FEDERATION, SCORING}  # what the load balancer passes
    assert ports["lianmo-party-headless"] == {FEDERATION, SCORING, METRICS}
    assert services["lianmo-party-headless"]["spec"]["clusterIP"] == "None"


# ---- the node as the image starts it ---------------------------------------------------


def test_node_starts_as_the_image_starts_it_and_passes_the_health_check(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD with the compose broker's mounts and config, under tmp_path.

    The health check passes; the metrics port answers Prometheus' scrape; the scoring port
    answers the compose ``score`` service (a decision engine, mutual TLS) that no model is
    promoted yet. Once the node is stopped, the health check fails in one line.
    """
    write_identities(tmp_path / "certs", ["broker", "decision-engine"])
    local = LocalCompose(tmp_path / "compose", tmp_path / "certs")
    local.lay_out("broker")
    image = [image_instructions("ENTRYPOINT")[-1], image_instructions("CMD")[-1]]
    argv = [local.rewrite("broker", a) for form in image for a in exec_form(form)]
    check = local.health_check("broker")
    assert argv[0] == check[0] == "lianmo"
    lianmo_bin = lianmo_command()
    node = subprocess.Popen(
        [lianmo_bin, *argv[1:]],
        cwd=local.service_root("broker"),
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
        assert probe.stdout.strip() == f"SERVING (127.0.0.1:{local.port('broker', HEALTH)})"
        scraped = scrape_metrics(local.port("broker", METRICS))
        assert ("lianmo_jobs", (("state", "running"),)) in scraped, sorted(scraped)[:20]
        asked = subprocess.run(
            [lianmo_bin, *local.lay_out("score")[1:]], capture_output=True, text=True, timeout=60
        )
        assert asked.returncode != 0, asked.stdout
        assert "no version promoted as model 'credit'" in asked.stderr, asked.stderr
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
