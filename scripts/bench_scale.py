"""Scale: PSI alignment of synthetic id sets of 1M (and 10M) ids per side, local vs Ray.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/bench_scale.py --ids 1000000 [--ids 10000000] [--backends local,ray]
                                  [--json OUT.json]

For each size and compute backend it writes two SYNTHETIC tables (ids ``c000000000``...;
the broker holds ids 0..N-1, the platform ids N/2..3N/2-1, so half overlap; one numeric
column each), starts the broker's and the platform's nodes as ``lianmo party serve``
processes with mutual TLS and that ``[compute]`` backend (``ray`` with ``address =
"local"``: a Ray instance inside each node), and runs a ``task: align`` job. It reports
the alignment time at each party, ids per second (both sides' ids over the guest's
alignment time) and per core, and peak memory per party: the node process's own peak
(VmHWM) and the sum of the peaks of the node and all its descendant processes (compute
workers, Ray's processes), read from /proc while the nodes still run. Runs are one at a
time; never run it next to another benchmark: the machine has two cores. This is a
benchmark, not a test.

First, PSI's hot loop alone (hash and blind ``--kernel-ids`` ids in this process), serial
against each backend, as a same-run speed-up ratio: the jobs put both parties on this one
machine, so they cannot show what one party gains from its own workers.

Not measured here yet: an LR epoch at 1M aligned rows (the issue asks for it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import typing as t
from pathlib import Path

from lianmo.cli.demo import party_processes, write_party_config
from lianmo.cli.main import run_and_report
from lianmo.cli.wiring import write_identities
from lianmo.compute.backend import usable_cores
from lianmo.config import JobSpec

ROOT = Path(__file__).resolve().parents[1]
PARTIES = ("broker", "platform")


def write_tables(directory: Path, n: int) -> dict[str, Path]:
    """The two synthetic tables (written once per size)."""
    directory.mkdir(parents=True, exist_ok=True)
    starts = {"broker": 0, "platform": n // 2}
    paths = {}
    for name, start in starts.items():
        path = directory / f"{name}-{n}.csv"
        paths[name] = path
        if path.exists():
            continue
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            fh.write("id,x0\n")
            step = 1_000_000
            for lo in range(start, start + n, step):
                hi = min(lo + step, start + n)
                fh.write("".join(f"c{i:09d},{i % 97 / 97:.4f}\n" for i in range(lo, hi)))
        tmp.replace(path)
    return paths


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _peak_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _node_pid(config: Path) -> int:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and str(config).encode() in argv:
                return int(entry)
    raise SystemExit(f"no node process found for {config}")


def run_once(work: Path, n: int, backend: str, tables: dict[str, Path]) -> dict[str, t.Any]:
    run_dir = work / f"psi-{n}-{backend}"
    certs = work / "certs"
    if not (certs / "ca.pem").exists():
        write_identities(certs, [*PARTIES, "coordinator"])
    compute = (
        '\n[compute]\nbackend = "ray"\naddress = "local"\n'
        if backend == "ray"
        else '\n[compute]\nbackend = "local"\n'
    )
    configs = {}
    for name in PARTIES:
        path = write_party_config(
            run_dir / name, name, certs, {"ids": (tables[name], "id", None)}, audit_level="chain"
        )
        path.write_text(path.read_text() + compute)
        configs[name] = path
    with party_processes(configs, timeout_s=180) as addresses:
        spec = JobSpec.from_dict(
            {
                "job_id": f"psi-{n}-{backend}",
                "task": "align",
                "parties": [
                    {
                        "name": "broker",
                        "role": "guest",
                        "address": addresses["broker"],
                        "dataset": "ids",
                    },
                    {
                        "name": "platform",
                        "role": "host",
                        "address": addresses["platform"],
                        "dataset": "ids",
                    },
                ],
                "alignment": {"min_intersection": 1},
            }
        )
        started = time.perf_counter()
        metrics = run_and_report(
            spec,
            run_dir / "out",
            ca=certs / "ca.pem",
            cert=certs / "coordinator.pem",
            key=certs / "coordinator.key",
        )
        wall = time.perf_counter() - started
        memory = {}
        for name, config in configs.items():
            pid = _node_pid(config)
            memory[name] = {
                "node_peak_mib": round(_peak_kib(pid) / 1024, 1),
                "node_and_workers_peak_mib": round(
                    sum(_peak_kib(p) for p in _descendants(pid)) / 1024, 1
                ),
            }
    align_s = {p: metrics["parties"][p]["phase_seconds"].get("align") for p in PARTIES}
    cores = usable_cores()
    ids_per_s = 2 * n / align_s["broker"]
    return {
        "ids_per_side": n,
        "synthetic": True,
        "backend": backend,
        "aligned": metrics["aligned"],
        "job_wall_s": round(wall, 2),
        "align_s": align_s,
        "load_s": {p: metrics["parties"][p]["phase_seconds"].get("load") for p in PARTIES},
        "ids_per_s": round(ids_per_s),
        "ids_per_s_per_core": round(ids_per_s / cores),
        "cores": cores,
        "memory": memory,
        "bytes_sent": {p: metrics["parties"][p]["bytes_sent"] for p in PARTIES},
    }


def kernel_ratios(n: int, backends: list[str]) -> list[dict[str, t.Any]]:
    """PSI's hot loop alone, in this process: hash and blind ``n`` ids, serial vs each backend.

    The job runs above put both parties on this one machine, each already using a core
    even when serial; this isolates what one party gains from its own workers.
    """
    from lianmo.compute.backend import SerialBackend, make_backend
    from lianmo.crypto.drbg import Drbg
    from lianmo.crypto.psi import PsiKey, hash_ids_packed

    ids = [f"c{i:09d}" for i in range(n)]
    key = PsiKey(Drbg(b"bench-scale-psi-kernel-seed-0001", "psi"))
    out = []
    baseline = None
    for name in ["serial", *[b for b in backends if b != "serial"]]:
        backend = (
            SerialBackend()
            if name == "serial"
            else make_backend(name, None, "local" if name == "ray" else None)
        )
        with backend:
            backend.map(abs, [-1, -2, -3, -4])  # start the workers outside the timing
            started = time.perf_counter()
            blinded = key.blind_packed(hash_ids_packed(ids, b"salt" * 8, backend), backend)
            seconds = time.perf_counter() - started
        if baseline is None:
            baseline = (seconds, blinded)
        assert blinded == baseline[1], f"{name} gave other points than serial"
        out.append(
            {
                "kernel": "psi_hash_and_blind",
                "ids": n,
                "backend": name,
                "workers": backend.workers,
                "seconds": round(seconds, 2),
                "ids_per_s": round(n / seconds),
                "speedup_vs_serial": round(baseline[0] / seconds, 2),
            }
        )
        print(json.dumps(out[-1]), file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, action="append", help="ids per side (repeatable)")
    parser.add_argument("--backends", default="local,ray")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-scale-output")
    parser.add_argument(
        "--kernel-ids",
        type=int,
        default=1_000_000,
        help="ids for the in-process kernel ratio (0: skip)",
    )
    args = parser.parse_args()
    results: list[dict[str, t.Any]] = []
    if args.kernel_ids:
        results += kernel_ratios(args.kernel_ids, args.backends.split(","))
    for n in args.ids or [1_000_000]:
        tables = write_tables(args.work / "data", n)
        for backend in args.backends.split(","):
            print(f"PSI of {n} x {n} synthetic ids, backend {backend} ...", file=sys.stderr)
            results.append(run_once(args.work, n, backend, tables))
            print(json.dumps(results[-1]), file=sys.stderr)
            if args.json:  # after every run: a 10M run is long
                args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
