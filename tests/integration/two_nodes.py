"""A guest and a host as ``lianmo party serve`` processes, and SecureBoost jobs run on them
with ``lianmo job run`` (mutual TLS on loopback, 2048-bit Paillier keys).

For the CLI tests that need data sets other than the breast data of
``test_integration_cli``: each test module starts its own pair with its own catalogues.
"""

from __future__ import annotations

import subprocess
import typing as t
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml

from lianmo.cli.demo import write_party_config

from .test_integration_cli import NodeProcess, _explain, lianmo, start_node

GUEST, HOST = "broker", "platform"
Catalogue = Mapping[str, tuple[Path, str, str | None]]


def make_certs(workdir: Path) -> tuple[str, ...]:
    """A CA with certificates for both parties and the coordinator; the coordinator's
    ``--ca/--cert/--key`` arguments."""
    certs = workdir / "certs"
    proc = lianmo(
        "certs", "init", certs, "--name", GUEST, "--name", HOST, "--name", "coordinator",
        cwd=workdir,
    )  # fmt: skip
    assert proc.returncode == 0, _explain(proc)
    files = (("--ca", "ca.pem"), ("--cert", "coordinator.pem"), ("--key", "coordinator.key"))
    return tuple(str(v) for flag, name in files for v in (flag, certs / name))


@contextmanager
def running_pair(
    workdir: Path,
    catalogues: Mapping[str, Catalogue],
    dataset_keys: Mapping[str, Mapping[str, Mapping[str, t.Any]]] | None = None,
) -> Iterator[dict[str, NodeProcess]]:
    """Start one node per party of ``catalogues`` (certificates from :func:`make_certs`);
    stop them at the end and check they stopped cleanly. ``dataset_keys``: per party,
    extra catalogue keys per data set (e.g. ``categorical``)."""
    running: dict[str, NodeProcess] = {}
    try:
        for name, datasets in catalogues.items():
            config = write_party_config(
                workdir / "parties" / name,
                name,
                workdir / "certs",
                datasets,
                dataset_keys=(dataset_keys or {}).get(name),
            )
            config.write_text("recv_timeout_s = 120\n" + config.read_text())
            running[name] = start_node(name, config)
        for node in running.values():
            node.wait_port()
        yield running
    finally:
        codes = {name: node.stop() for name, node in running.items()}
    assert codes == dict.fromkeys(running, 0), {n: running[n].log_text() for n in running}


def run_boost_job(
    workdir: Path,
    nodes: Mapping[str, NodeProcess],
    coordinator_args: tuple[str, ...],
    job_id: str,
    datasets: tuple[str, str],
    model: Mapping[str, object],
    *,
    stratify: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``lianmo job run`` of a SecureBoost job (guest data set, host data set); output in
    ``workdir/out/JOB_ID``."""
    roles = ((GUEST, "guest", datasets[0]), (HOST, "host", datasets[1]))
    spec = {
        "job_id": job_id,
        "seed": 5,
        "parties": [
            {"name": n, "role": r, "address": f"127.0.0.1:{nodes[n].wait_port()}", "dataset": d}
            for n, r, d in roles
        ],
        "alignment": {"min_intersection": 100},
        "validation": {"share": 0.2, "stratify": stratify},
        # default key_bits: 2048-bit Paillier keys
        "model": {"type": "secureboost", "max_bins": 16, "learning_rate": 0.3, **model},
    }
    path = workdir / f"{job_id}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    out = workdir / "out" / job_id
    return lianmo("job", "run", path, *coordinator_args, "--output", out, cwd=workdir, timeout=240)
