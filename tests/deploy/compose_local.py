"""Run a compose service's command as a local process, with what compose would give it.

There is no container engine here, so a service is laid out under its own folder: each
bind mount copied to the path it has in the container (party configs and job specs with
their container paths and addresses rewritten), each named volume a folder shared by the
services that mount it, the demo data read from this environment's lianmo package.
Container addresses become loopback ports: ``0.0.0.0:P`` at service S and ``S:P`` anywhere
are ``127.0.0.1`` plus the port drawn for (S, P). The argv is the service's entry point
(the image's, ``lianmo``, unless it sets its own) and command, rewritten the same way.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import sys
import typing as t
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from dockerfile_parse import DockerfileParser
from prometheus_client.parser import text_string_to_metric_families

import lianmo

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
IMAGE_SITE = "/usr/local/lib/python3.11/site-packages"  # the image's Python packages


def image_instructions(name: str) -> list[str]:
    """The values of every ``name`` instruction of the Dockerfile, in order."""
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return [i["value"] for i in parser.structure if i["instruction"] == name]


def exec_form(value: str) -> list[str]:
    """A Dockerfile exec-form argument (a JSON array), as a list."""
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), value
    return parsed


def image_health_check() -> list[str]:
    """The argv of the image's HEALTHCHECK (compose's service_healthy waits for it)."""
    (check,) = image_instructions("HEALTHCHECK")
    return exec_form(check.split("CMD", 1)[1].strip())


def documented_certs_init(text: str) -> list[str]:
    """The arguments of the one ``lianmo certs init`` command a file documents."""
    (line,) = [ln for ln in text.splitlines() if ln.lstrip("# ").startswith("lianmo certs init")]
    return shlex.split(line.split("lianmo certs init", 1)[1])


def lianmo_command() -> str:
    """The ``lianmo`` console script of this environment (the image's entry point)."""
    script = Path(sys.executable).parent / "lianmo"
    found = str(script) if script.exists() else shutil.which("lianmo")
    assert found, "the lianmo console script is not installed in this environment"
    return found


Labels = tuple[tuple[str, str], ...]


def labels(pairs: dict[str, str]) -> Labels:
    return tuple(sorted(pairs.items()))


def scrape_metrics(port: int) -> dict[tuple[str, Labels], float]:
    """GET /metrics on a loopback port, parsed by Prometheus' own client library:
    (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200, reply.status
        text = reply.read().decode()
    return {
        (sample.name, labels(sample.labels)): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def compose_file() -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], yaml.safe_load((COMPOSE / "compose.yaml").read_text()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bind_mounts(service: dict[str, t.Any]) -> dict[str, str]:
    """Container path -> source (``./...`` relative to compose/, or a volume name)."""
    out = {}
    for volume in service.get("volumes", ()):
        source, target, *_ = volume.split(":")
        out[target] = source
    return out


@dataclass
class LocalCompose:
    """The services of compose.yaml laid out under ``root``, with ``certs`` as ./certs."""

    root: Path
    certs: Path
    spec: dict[str, t.Any] = field(default_factory=compose_file)
    ports: dict[tuple[str, int], int] = field(default_factory=dict)

    def port(self, service: str, container_port: int) -> int:
        """The loopback port standing for ``service:container_port``."""
        key = (service, container_port)
        if key not in self.ports:
            self.ports[key] = free_port()
        return self.ports[key]

    def service_root(self, name: str) -> Path:
        return self.root / "services" / name

    def rewrite(self, name: str, text: str) -> str:
        """Container paths and addresses of service ``name`` as this machine sees them."""
        here = self.service_root(name)
        text = text.replace("/etc/lianmo", f"{here}/etc/lianmo")
        text = text.replace("/var/lib/lianmo", f"{here}/var/lib/lianmo")
        text = text.replace(IMAGE_SITE, str(Path(lianmo.__file__).parent.parent))

        def address(match: re.Match[str]) -> str:
            host, port = match.group(1), int(match.group(2))
            owner = name if host in ("0.0.0.0", "127.0.0.1") else host
            return f"127.0.0.1:{self.port(owner, port)}"

        names = "|".join(re.escape(s) for s in self.spec["services"])
        return re.sub(rf"\b(0\.0\.0\.0|127\.0\.0\.1|{names}):(\d+)\b", address, text)

    def lay_out(self, name: str, command: t.Sequence[str] | None = None) -> list[str]:
        """Copy service ``name``'s mounts into place; return its argv (``lianmo`` first).

        ``command`` replaces the service's command, as ``docker compose run S ARGS`` does.
        """
        service = self.spec["services"][name]
        here = self.service_root(name)
        for target, source in bind_mounts(service).items():
            inside = here / target.lstrip("/")
            inside.parent.mkdir(parents=True, exist_ok=True)
            if not source.startswith("./"):  # a named volume, shared between services
                volume = self.root / "volumes" / source
                volume.mkdir(parents=True, exist_ok=True)
                if not inside.exists():
                    inside.symlink_to(volume, target_is_directory=True)
                continue
            origin = self.certs / source[len("./certs/") :] if "/certs/" in source else None
            origin = origin or COMPOSE / source
            if inside.suffix in (".toml", ".yaml"):
                inside.write_text(self.rewrite(name, origin.read_text()))
            else:
                shutil.copy2(origin, inside)
        if command is None:
            command = service.get("command", ())
        entry = service.get("entrypoint") or exec_form(image_instructions("ENTRYPOINT")[-1])
        argv = [*entry, *command]
        return [self.rewrite(name, a) for a in argv]

    def health_check(self, name: str) -> list[str]:
        """The image's HEALTHCHECK as run inside service ``name``."""
        return [self.rewrite(name, a) for a in image_health_check()]


__all__ = [
    "COMPOSE",
    "LocalCompose",
    "bind_mounts",
    "compose_file",
    "documented_certs_init",
    "exec_form",
    "free_port",
    "image_health_check",
    "image_instructions",
    "labels",
    "lianmo_command",
    "scrape_metrics",
]
