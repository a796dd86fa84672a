"""Scale: PSI alignment of synthetic id sets of 1M (and 10M) ids per side, local vs Ray.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/bench_scale.py --ids 1000000 [--ids 10000000] [--backends local,ray]
                                  [--json OUT.json]

For each size and compute backend it writes two SYNTHETIC tables (ids ``c000000000``...;
the broker holds ids 0..N-1, the platform ids N/2..3N/2-1, so half overlap; one numeric
column each, or ``--features K``: a wide table, to show that memory does not grow with
width), starts the broker's and the platform's nodes as ``lianmo party serve``
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

With ``--lr-rows N``: one epoch of hetero logistic regression on N SYNTHETIC aligned rows
(broker: 10 features and a label drawn from a logistic model; platform: 10 features; the
same N ids on both sides), 2048-bit keys, with the arbiter as a third node, per backend:
the training time at each party, rows per second and peak memory per party.
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
LR_FEATURES = 10


def write_tables(directory: Path, n: int, features: int = 1) -> dict[str, Path]:
    """The two synthetic tables (written once per size and width)."""
    directory.mkdir(parents=True, exist_ok=True)
    starts = {"broker": 0, "platform": n // 2}
    paths = {}
    for name, start in starts.items():
        path = directory / (f"{name}-{n}.csv" if features == 1 else f"{name}-{n}x{features}.csv")
        paths[name] = path
        if path.exists():
            continue
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            fh.write(",".join(["id", *(f"x{j}" for j in range(features))]) + "\n")
            step = 100_000
            for lo in range(start, start + n, step):
                hi = min(lo + step, start + n)
                fh.write(
                    "".join(
                        f"c{i:09d},"
                        + ",".join(f"{(i + j) % 97 / 97:.4f}" for j in range(features))
                        + "\n"
                        for i in range(lo, hi)
                    )
                )
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


def run_once(
    work: Path, n: int, backend: str, tables: dict[str, Path], features: int = 1
) -> dict[str, t.Any]:
    job_id = f"psi-{n}-{backend}" if features == 1 else f"psi-{n}x{features}-{backend}"
    run_dir = work / job_id
    certs = work / "certs"
    if not (certs / "ca.pem").exists():
        write_identities(certs, [*PARTIES, "coordinator"])
    compute = _compute_section(backend)
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
                "job_id": job_id,
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
                "alignment": {"min_intersection": 100},  # the nodes' policy floor
            }
        )
        metrics, wall, memory = _run_job(spec, run_dir / "out", certs, configs)
    align_s = {p: metrics["parties"][p]["phase_seconds"].get("align") for p in PARTIES}
    cores = usable_cores()
    ids_per_s = 2 * n / align_s["broker"]
    return {
        "ids_per_side": n,
        "feature_columns": features,
        "table_bytes": {p: tables[p].stat().st_size for p in PARTIES},
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


def write_lr_tables(directory: Path, n: int) -> dict[str, Path]:
    """SYNTHETIC aligned rows for the LR epoch: same ids on both sides, labels from a logit."""
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / f"lr-{name}-{n}.csv" for name in PARTIES}
    if all(p.exists() for p in paths.values()):
        return paths
    rng = np.random.default_rng(20261122)
    w = rng.normal(0.0, 0.5, size=2 * LR_FEATURES)
    handles = {}
    for name, path in paths.items():
        handles[name] = path.with_suffix(".tmp").open("w")
    cols = ",".join(f"x{j}" for j in range(LR_FEATURES))
    handles["broker"].write(f"id,y,{cols}\n")
    handles["platform"].write(f"id,{cols}\n")
    step = 100_000
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        X = rng.normal(size=(hi - lo, 2 * LR_FEATURES))
        p = 1.0 / (1.0 + np.exp(-(X @ w - 1.0)))
        y = (rng.random(hi - lo) < p).astype(int)
        ids = [f"c{i:09d}" for i in range(lo, hi)]
        g = (",".join(f"{v:.4f}" for v in row) for row in X[:, :LR_FEATURES])
        h = (",".join(f"{v:.4f}" for v in row) for row in X[:, LR_FEATURES:])
        handles["broker"].write(
            "".join(f"{i},{yy},{r}\n" for i, yy, r in zip(ids, y, g, strict=True))
        )
        handles["platform"].write("".join(f"{i},{r}\n" for i, r in zip(ids, h, strict=True)))
    for name, handle in handles.items():
        handle.close()
        paths[name].with_suffix(".tmp").replace(paths[name])
    return paths


def run_lr_once(work: Path, n: int, backend: str, tables: dict[str, Path]) -> dict[str, t.Any]:
    """One LR epoch over ``n`` aligned synthetic rows with three real nodes on ``backend``."""
    job_id = f"lr-{n}-{backend}"
    run_dir = work / job_id
    certs = work / "certs-lr"
    names = [*PARTIES, "arbiter"]
    if not (certs / "ca.pem").exists():
        write_identities(certs, [*names, "coordinator"])
    configs = {}
    for name in names:
        datasets = {}
        if name in PARTIES:
            datasets = {"rows": (tables[name], "id", "y" if name == "broker" else None)}
        path = write_party_config(run_dir / name, name, certs, datasets, audit_level="chain")
        path.write_text(path.read_text() + _compute_section(backend))
        configs[name] = path
    roles = {"broker": "guest", "platform": "host", "arbiter": "arbiter"}
    with party_processes(configs, timeout_s=180) as addresses:
        spec = JobSpec.from_dict(
            {
                "job_id": job_id,
                "seed": 7,
                "parties": [
                    {
                        "name": name,
                        "role": roles[name],
                        "address": addresses[name],
                        **({"dataset": "rows"} if name in PARTIES else {}),
                    }
                    for name in names
                ],
                "alignment": {"min_intersection": 100},  # the nodes' policy floor
                "validation": {"share": 0.2},
                "model": {
                    "type": "hetero_lr",
                    "epochs": 1,
                    "batch_size": 8192,
                    "learning_rate": 0.5,
                    "key_bits": 2048,
                },
            }
        )
        metrics, wall, memory = _run_job(spec, run_dir / "out", certs, configs)
    phases = {p: metrics["parties"][p]["phase_seconds"] for p in names}
    train_rows = metrics["train_rows"]
    epoch_s = metrics["epoch_seconds"][0]
    return {
        "lr_epoch_rows": n,
        "synthetic": True,
        "backend": backend,
        "key_bits": 2048,
        "batch_size": 8192,
        "train_rows": train_rows,
        "rounds": len(metrics["loss_per_round"]),
        "job_wall_s": round(wall, 2),
        "phase_s": phases,
        "epoch_s": epoch_s,
        "train_rows_per_s": round(train_rows / epoch_s),
        "validation": metrics["validation"],
        "memory": memory,
        "bytes_sent": {p: metrics["parties"][p]["bytes_sent"] for p in names},
    }


def _run_job(
    spec: JobSpec, out: Path, certs: Path, configs: dict[str, Path]
) -> tuple[dict[str, t.Any], float, dict[str, dict[str, float]]]:
    """Run ``spec`` as the coordinator; return its metrics, wall seconds and each node's peak."""
    started = time.perf_counter()
    metrics = run_and_report(
        spec,
        out,
        ca=certs / "ca.pem",
        cert=certs / "coordinator.pem",
        key=certs / "coordinator.key",
    )
    wall = time.perf_counter() - started
    return metrics, wall, {name: _memory(config) for name, config in configs.items()}


def _compute_section(backend: str) -> str:
    if backend == "ray":
        return '\n[compute]\nbackend = "ray"\naddress = "local"\n'
    return f'\n[compute]\nbackend = "{backend}"\n'


def _memory(config: Path) -> dict[str, float]:
    pid = _node_pid(config)
    return {
        "node_peak_mib": round(_peak_kib(pid) / 1024, 1),
        "node_and_workers_peak_mib": round(sum(_peak_kib(p) for p in _descendants(pid)) / 1024, 1),
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
    parser.add_argument(
        "--features",
        type=int,
        default=1,
        help="numeric columns per PSI table besides the id (wide tables: memory vs width)",
    )
    parser.add_argument("--lr-rows", type=int, default=0, help="rows of the LR epoch run (0: skip)")
    parser.add_argument(
        "--skip-psi", action="store_true", help="only the LR epoch (with --lr-rows)"
    )
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
    for n in [] if args.skip_psi else args.ids or [1_000_000]:
        tables = write_tables(args.work / "data", n, args.features)
        for backend in args.backends.split(","):
            print(f"PSI of {n} x {n} synthetic ids, backend {backend} ...", file=sys.stderr)
            results.append(run_once(args.work, n, backend, tables, args.features))
            print(json.dumps(results[-1]), file=sys.stderr)
            if args.json:  # after every run: a 10M run is long
                args.json.write_text(json.dumps(results, indent=2))
    if args.lr_rows:
        lr_tables = write_lr_tables(args.work / "data", args.lr_rows)
        for backend in args.backends.split(","):
            print(
                f"LR epoch on {args.lr_rows} synthetic rows, backend {backend} ...", file=sys.stderr
            )
            results.append(run_lr_once(args.work, args.lr_rows, backend, lr_tables))
            print(json.dumps(results[-1]), file=sys.stderr)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
