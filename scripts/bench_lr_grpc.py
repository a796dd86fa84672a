"""Time hetero LR epochs over real gRPC on loopback: `lianmo party serve` processes.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/bench_lr_grpc.py --json OUT.json [--data ../shared/data] [--epochs 2]
        [--protocols coordinated,two-party] [--key-bits 2048] [--batch-size 1024]

Runs ``default_credit_hetero`` (guest: labels + 13 columns, host: 10 columns) with mutual
TLS and 2048-bit keys, exactly as ``lianmo demo`` runs its nodes, once per protocol:

- ``coordinated``: guest, host and an arbiter holding the key
  (:mod:`lianmo.protocols.hetero_lr`);
- ``two-party``: guest and host only, each with its own key
  (:mod:`lianmo.protocols.two_party_lr`).

For each it reports the seconds per epoch (the key holder's or, two-party, the guest's:
first batch to last update), the two-party setup (keys and the one-off encryption of
each party's packed rows), the job's wall time, the validation AUC, and every party's
CPU seconds: its node process and its worker pool (the processes of its session), sampled
every 0.2 s from ``/proc`` and cut at the times its audit log records for the train phase
and for each epoch. ``ratio`` is each protocol's mean epoch against the first one's, in
the same run. Each node uses its default compute backend (a process pool over all
cores), so on a small machine the parties share the same cores. This is a benchmark,
not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import typing as t
from pathlib import Path

from lianmo.cli.demo import party_processes, write_party_config
from lianmo.cli.main import run_and_report
from lianmo.cli.wiring import write_identities
from lianmo.config import JobSpec

PROTOCOLS = ("coordinated", "two-party")
_TICK = os.sysconf("SC_CLK_TCK")


class CpuSampler:
    """CPU seconds of each party's process tree (its node's session), sampled in a thread."""

    def __init__(self, configs: dict[str, Path], period: float = 0.2) -> None:
        self.configs = configs
        self.period = period
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sessions: dict[str, int] = {}

    def __enter__(self) -> CpuSampler:
        self._sessions = {name: _node_pid(path) for name, path in self.configs.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), _cpu_by_session(self._sessions)))
            self._stop.wait(self.period)

    def between(self, party: str, start: float, end: float) -> float:
        """CPU seconds ``party`` used from ``start`` to ``end`` (interpolated)."""
        return round(self._at(party, end) - self._at(party, start), 2)

    def _at(self, party: str, when: float) -> float:
        before = [(ts, cpu[party]) for ts, cpu in self.samples if ts <= when]
        after = [(ts, cpu[party]) for ts, cpu in self.samples if ts > when]
        if not before:
            return after[0][1] if after else 0.0
        if not after:
            return before[-1][1]
        (t0, c0), (t1, c1) = before[-1], after[0]
        return c0 + (c1 - c0) * (when - t0) / (t1 - t0)


def _node_pid(config: Path) -> int:
    """The pid of the ``lianmo party serve --config CONFIG`` process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and str(config).encode() in argv:
            return int(entry.name)
    raise RuntimeError(f"no node process for {config}")


def _cpu_by_session(sessions: dict[str, int]) -> dict[str, float]:
    """utime + stime of every live process, summed by the session (node) it belongs to."""
    by_session = dict.fromkeys(sessions.values(), 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        session = int(fields[3])
        if session in by_session:
            by_session[session] += (int(fields[11]) + int(fields[12])) / _TICK
    return {name: by_session[pid] for name, pid in sessions.items()}


def _records(job_dir: Path) -> list[dict[str, t.Any]]:
    path = job_dir / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _train_window(records: list[dict[str, t.Any]]) -> tuple[float, float]:
    """When the party's train phase started and the phase after it (evaluate) began, or
    the party's last record."""
    phases = [(r["time"], r.get("name")) for r in records if r["kind"] == "phase"]
    start = next(ts for ts, name in phases if name == "train")
    last = records[-1]["time"]  # the key holder's train phase runs to the job's end
    end = next((ts for ts, name in phases if ts > start and name != "train"), last)
    return start, end


def _epoch_marks(records: list[dict[str, t.Any]]) -> list[float]:
    return [r["time"] for r in records if r["kind"] == "epoch"]


def _setup_end(records: list[dict[str, t.Any]], start: float) -> float:
    """Two-party: when the setup checkpoint was written (start of the first epoch)."""
    marks = [r["time"] for r in records if r["kind"] == "checkpoint" and r["name"] == "lr2/setup"]
    return marks[0] if marks else start


def run_protocol(protocol: str, args: argparse.Namespace, out: Path) -> dict[str, t.Any]:
    certs = out / "certs"
    parties: dict[str, tuple[str | None, str | None]] = {
        "guest": ("default_credit_hetero_guest.csv", "y"),
        "host": ("default_credit_hetero_host.csv", None),
    }
    if protocol == "coordinated":
        parties["arbiter"] = (None, None)
    write_identities(certs, [*parties, "coordinator"], force=True)
    configs = {}
    for name, (file, label) in parties.items():
        datasets = {} if file is None else {"credit": (args.data / file, "id", label)}
        configs[name] = write_party_config(out / "parties" / name, name, certs, datasets)
    job_id = f"bench-lr-{protocol}-{int(time.time())}"
    started = time.perf_counter()
    with party_processes(configs) as addresses, CpuSampler(configs) as cpu:
        raw = {
            "job_id": job_id,
            "seed": 42,
            "parties": [
                {
                    "name": name,
                    "role": name,
                    "address": addresses[name],
                    **({"dataset": "credit"} if file else {}),
                }
                for name, (file, _label) in parties.items()
            ],
            "alignment": {"min_intersection": 1000},
            "validation": {"share": args.validation_share},
            "model": {
                "type": "hetero_lr",
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "learning_rate": 0.15,
                "lr_decay": 0.0,
                "l2": 0.0,
                "tol": 0.0,
                "key_bits": args.key_bits,
            },
        }
        metrics = run_and_report(
            JobSpec.from_dict(raw),
            out / "job",
            ca=certs / "ca.pem",
            cert=certs / "coordinator.pem",
            key=certs / "coordinator.key",
        )
        time.sleep(0.5)  # one more sample after the last phase
    epochs = metrics.get("epoch_seconds", [])
    keeper = "arbiter" if protocol == "coordinated" else "guest"
    marks = _epoch_marks(_records(configs[keeper].parent / "jobs" / job_id))
    party_cpu = {}
    setup_s = None
    for name, config in configs.items():
        records = _records(config.parent / "jobs" / job_id)
        start, end = _train_window(records)
        first = _setup_end(records, start)
        bounds = [first, *marks]
        per_epoch = [cpu.between(name, a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
        party_cpu[name] = {
            "train_cpu_s": cpu.between(name, start, end),
            "setup_cpu_s": cpu.between(name, start, first) if first > start else None,
            "epoch_cpu_s": per_epoch,
        }
        if protocol == "two-party" and name == "guest":
            setup_s = round(first - start, 3)
    return {
        "protocol": protocol,
        "epoch_seconds": epochs,
        "mean_epoch_s": round(sum(epochs) / len(epochs), 3) if epochs else None,
        "setup_s": setup_s,
        "job_wall_s": metrics.get("wall_seconds"),
        "total_s": round(time.perf_counter() - started, 3),
        "validation": metrics.get("validation"),
        "party_cpu": party_cpu,
        "bytes_sent": {name: p.get("bytes_sent") for name, p in metrics.get("parties", {}).items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument(
        "--protocols",
        default=",".join(PROTOCOLS),
        help="comma-separated, run in this order; ratios are against the first",
    )
    parser.add_argument(
        "--validation-share",
        type=float,
        default=0.01,
        help="held-out share; small so an epoch covers nearly all 30,000 rows",
    )
    parser.add_argument("--output", type=Path, default=Path("bench-lr-output"))
    args = parser.parse_args()
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        parser.error(f"--protocols takes {', '.join(PROTOCOLS)}, got {args.protocols!r}")

    runs = []
    for protocol in protocols:
        out = (args.output / protocol).resolve()
        out.mkdir(parents=True, exist_ok=True)
        print(f"running {protocol} LR ...", file=sys.stderr)
        runs.append(run_protocol(protocol, args, out))
    base = runs[0]["mean_epoch_s"]
    for run in runs:
        mean = run["mean_epoch_s"]
        run["ratio_to_" + runs[0]["protocol"]] = round(base / mean, 2) if base and mean else None
    result = {
        "data": "default_credit_hetero",
        "key_bits": args.key_bits,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "cores": os.cpu_count(),
        "channel": "gRPC over loopback, mutual TLS, one process per party",
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
