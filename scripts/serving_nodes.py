"""The benchmark's parties: layout, `lianmo party serve` processes, training, promotion.

Part of ``bench_serving.py`` (see its docstring): the broker (guest) and the platform
(host) on the shipped demo tables, each a real node process over mutual TLS on loopback
with a ``[serving]`` table; models trained through the coordinator and promoted with the
CLI at both parties.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import typing as t
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GUEST, HOST, CLIENT = "broker", "platform", "decision-engine"
ID_COLUMN, LABEL, PURPOSE = "client_id", "default_next_month", "credit_scoring"
FILES = {GUEST: "credit_broker.csv.gz", HOST: "credit_platform.csv.gz"}
DATASETS = {GUEST: "credit_broker", HOST: "credit_platform"}
MARKER = ".lianmo-bench-serving"
STATE = "bench-serving.json"  # the trained jobs, for --reuse
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Node:
    name: str
    pid: int
    address: str  # federation (training)
    serving: str  # scoring port


@dataclass(frozen=True)
class Layout:
    output: Path
    certs: Path
    configs: dict[str, Path]

    def identity_files(self, name: str) -> tuple[Path, Path, Path]:
        return self.certs / f"{name}.pem", self.certs / f"{name}.key", self.certs / "ca.pem"


# ---- layout and nodes ------------------------------------------------------------------


def lay_out(output: Path, *, reuse: bool) -> Layout:
    """Certificates and party configs (kept with ``reuse`` if a previous run made them)."""
    from lianmo.cli.demo import write_party_config
    from lianmo.cli.wiring import write_identities
    from lianmo.demo_data import demo_file

    certs = output / "secrets" / "certs"
    parties = output / "output" / "parties"
    configs = {name: parties / name / "party.toml" for name in FILES}
    if reuse and (output / STATE).exists():
        return Layout(output, certs, configs)
    if output.exists():
        if not (output / MARKER).exists() and any(output.iterdir()):
            raise SystemExit(f"{output} exists and was not made by this script; pick --output")
        shutil.rmtree(output)
    output.mkdir(parents=True)
    (output / MARKER).write_text("made by scripts/bench_serving.py; wiped by the next run\n")
    names = [GUEST, HOST, "coordinator", CLIENT]
    write_identities(certs, names, force=True, ca_dir=output / "secrets" / "ca")
    for name, file in FILES.items():
        ds = DATASETS[name]
        label = LABEL if name == GUEST else None
        written = write_party_config(
            parties / name,
            name,
            certs,
            {ds: (demo_file(file), ID_COLUMN, label)},
            secrets_dir=output / "secrets" / "parties" / name,
            dataset_keys={ds: {"purposes": {PURPOSE: "*"}}},
        )
        written.rename(written.with_name("party.base.toml"))
    return Layout(output, certs, configs)


def write_serving_config(config: Path, peers: dict[str, str], max_inflight: int) -> None:
    """party.toml = the base config and a ``[serving]`` table (peers: name -> address)."""
    lines = [
        "",
        "[serving]",
        'listen = "127.0.0.1:0"',
        f"clients = {json.dumps([CLIENT])}",
        f"max_inflight = {max_inflight}",
    ]
    if peers:
        lines += ["", "[serving.peers]", *(f'{n} = "{a}"' for n, a in peers.items())]
    base = config.with_name("party.base.toml").read_text(encoding="utf-8")
    config.write_text(base + "\n".join(lines) + "\n", encoding="utf-8")


@contextlib.contextmanager
def node_process(name: str, config: Path, timeout_s: float = 120.0) -> Iterator[Node]:
    """``lianmo party serve`` for ``config`` until the block ends; its two ports."""
    folder = config.parent
    port_file, serving_file = folder / "node.port", folder / "serving.port"
    for f in (port_file, serving_file):
        f.unlink(missing_ok=True)
    with (folder / "node.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "lianmo.cli.main", "party", "serve"),
                *("--config", str(config), "--port-file", str(port_file)),
                *("--serving-port-file", str(serving_file)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: its CPU is summed by session
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (folder / "node.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"party node '{name}' did not start: {tail}")
            time.sleep(0.1)
        ports = int(port_file.read_text()), int(serving_file.read_text())
        yield Node(name, proc.pid, f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}")
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def nodes(layout: Layout, max_inflight: int) -> Iterator[dict[str, Node]]:
    """The platform, then the broker pointed at the platform's scoring port."""
    with contextlib.ExitStack() as stack:
        write_serving_config(layout.configs[HOST], {}, max_inflight)
        host = stack.enter_context(node_process(HOST, layout.configs[HOST]))
        write_serving_config(layout.configs[GUEST], {HOST: host.serving}, max_inflight)
        guest = stack.enter_context(node_process(GUEST, layout.configs[GUEST]))
        yield {GUEST: guest, HOST: host}


def session_cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) of every process in each node's session."""
    totals = dict.fromkeys(pids, 0.0)
    by_session = {pid: name for name, pid in pids.items()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = by_session.get(int(fields[3]))
        if name is not None:
            totals[name] += (int(fields[11]) + int(fields[12])) / _TICK
    return totals


# ---- training and promotion --------------------------------------------------------------


def model_sections(args: argparse.Namespace) -> dict[str, dict[str, t.Any]]:
    from lianmo.cli.demo import DEMO_PARTIES, demo_spec

    anywhere = dict.fromkeys(DEMO_PARTIES, "-")
    lr = demo_spec(anywhere, epochs=args.lr_epochs, key_bits=args.key_bits)["model"]
    sb = {
        "type": "secureboost",
        "trees": args.trees,
        "depth": args.depth,
        "learning_rate": 0.3,
        "max_bins": 32,
        "key_bits": args.key_bits,
    }
    return {"lr": lr, "sb": sb}


def train_and_promote(
    layout: Layout, running: dict[str, Node], models: list[str], args: argparse.Namespace
) -> dict[str, t.Any]:
    """Train each model through the coordinator, promote it at both parties; job facts."""
    from lianmo.cli.main import run_and_report
    from lianmo.config import JobSpec

    ca = layout.certs / "ca.pem"
    cert, key = layout.certs / "coordinator.pem", layout.certs / "coordinator.key"
    sections = model_sections(args)
    trained = {}
    for name in models:
        job_id = f"bench-serving-{name}-{int(time.time())}"
        raw = {
            "job_id": job_id,
            "seed": 42,
            "purpose": PURPOSE,
            "parties": [
                {"name": p, "role": role, "address": running[p].address, "dataset": DATASETS[p]}
                for p, role in ((GUEST, "guest"), (HOST, "host"))
            ],
            "alignment": {"min_intersection": 1000},
            "validation": {"share": 0.2},
            "model": sections[name],
        }
        print(f"training {name} ({sections[name]['type']}) as job {job_id} ...", file=sys.stderr)
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # the job summary is not the table
            metrics = run_and_report(
                JobSpec.from_dict(raw), layout.output / "jobs" / job_id, ca=ca, cert=cert, key=key
            )
        for party, config in layout.configs.items():
            promote(config, name, job_id, party)
        trained[name] = {
            "job_id": job_id,
            "model": sections[name],
            "train_wall_s": round(time.perf_counter() - started, 1),
            "validation": metrics.get("validation"),
        }
    return trained


def promote(config: Path, name: str, job_id: str, party: str) -> None:
    command = [sys.executable, "-m", "lianmo.cli.main", "model", "promote"]
    done = subprocess.run(
        [*command, "--config", str(config), name, job_id], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"promoting {job_id} as '{name}' at {party} failed: {done.stderr}")


def aligned_ids() -> list[str]:
    """The ids both demo tables hold (what a decision engine may ask about)."""
    from lianmo.demo_data import demo_file

    def ids(name: str) -> set[str]:
        with gzip.open(demo_file(FILES[name]), "rt", encoding="utf-8") as fh:
            next(fh)
            return {line.split(",", 1)[0] for line in fh}

    return sorted(ids(GUEST) & ids(HOST))
