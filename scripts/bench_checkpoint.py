"""Cost of durable job state on the demo job: the same `lianmo demo` with and without it.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/bench_checkpoint.py --json OUT.json [--runs 2] [--epochs 5]

Runs ``lianmo demo`` (three node processes, mutual TLS, 2048-bit keys) alternately

* ``durable``: as shipped. Each party writes a checkpoint after every round (temporary
  file, fsync, rename) and spools every inbound message to disk the same way before it
  acknowledges it;
* ``ephemeral``: the same nodes with both switched off: checkpoints kept in memory only,
  the inbox in memory. Nothing else changes (the ``checkpoint`` audit records and their
  digests are still made). There is no such setting in lianmo; this script switches it
  off with a ``sitecustomize`` module on the nodes' ``PYTHONPATH``, and checks that it
  worked (no ``checkpoints/`` or ``inbox/`` folder) and that the model is the same.

It reports, per run, the job's wall time, each party's training phase, the number of
rounds, and the bytes of checkpoints and spool on disk; then the overhead as a ratio of
the fastest durable to the fastest ephemeral run, and per round. Pairs alternate the
order, so drift of the machine hits both. Never run it next to another benchmark: the
machine has two cores. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIANMO = [sys.executable, "-m", "lianmo.cli.main"]
JOB = "credit-demo"
VARIANTS = ("durable", "ephemeral")

EPHEMERAL_NODE = '''\
"""Written by scripts/bench_checkpoint.py: lianmo nodes without durable job state."""
from lianmo.node import service
from lianmo.node.checkpoint import JobCheckpoints
from lianmo.transport.inbox import Inbox


def _in_memory_checkpoints(directory):
    return JobCheckpoints(None)


def _in_memory_inbox(self, spec, directory):
    return Inbox(
        spec.job_id,
        self.config.name,
        spec.party_names,
        spool=None,
        max_job_bytes=self.config.max_job_mb * 2**20,
    )


service.JobCheckpoints = _in_memory_checkpoints
service.NodeService._new_inbox = _in_memory_inbox
'''


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def run_once(variant: str, out: Path, epochs: int, hooks: Path) -> dict[str, object]:
    env = dict(os.environ)
    if variant == "ephemeral":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hooks), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    subprocess.run(
        [*LIANMO, "demo", "--output", str(out), "--epochs", str(epochs)],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    wall = time.perf_counter() - started
    metrics = json.loads((out / "metrics.json").read_text())
    parties = {}
    for party_dir in sorted((out / "parties").iterdir()):
        folder = party_dir / "jobs" / JOB
        parties[party_dir.name] = {
            "checkpoint_bytes": _size(folder / "checkpoints"),
            "checkpoint_files": len(list((folder / "checkpoints").glob("*.json"))),
            "spool_bytes": _size(folder / "inbox"),
            "spool_files": len(list((folder / "inbox").rglob("*.msg"))),
            "train_s": metrics["parties"][party_dir.name]["phase_seconds"].get("train"),
        }
    durable_state = sum(p["checkpoint_files"] + p["spool_files"] for p in parties.values())
    if (variant == "ephemeral") == (durable_state > 0):
        raise SystemExit(
            f"the {variant} run left {durable_state} checkpoint and spool files: the "
            "switch did not take effect, the comparison would be meaningless"
        )
    return {
        "variant": variant,
        "demo_wall_s": round(wall, 2),
        "job_wall_s": metrics["wall_seconds"],
        "rounds": len(metrics["loss_per_round"]),
        "auc": metrics["validation"]["auc"],
        "loss": metrics["loss"],
        "parties": parties,
    }


def summarise(results: list[dict[str, t.Any]]) -> dict[str, object]:
    """Best run of each variant, their ratio, and the overhead per round."""
    best = {v: min(r["job_wall_s"] for r in results if r["variant"] == v) for v in VARIANTS}
    rounds = results[0]["rounds"]
    if {(r["auc"], json.dumps(r["loss"])) for r in results} != {
        (results[0]["auc"], json.dumps(results[0]["loss"]))
    }:
        raise SystemExit("the variants trained different models: not a fair comparison")
    durable = [r for r in results if r["variant"] == "durable"][0]["parties"]
    return {
        "rounds": rounds,
        "job_wall_durable_s": best["durable"],
        "job_wall_ephemeral_s": best["ephemeral"],
        "overhead_ratio": round(best["durable"] / best["ephemeral"], 4),
        "overhead_per_round_ms": round(1000 * (best["durable"] - best["ephemeral"]) / rounds, 1),
        "checkpoint_bytes_per_party": {p: v["checkpoint_bytes"] for p, v in durable.items()},
        "spool_bytes_per_party": {p: v["spool_bytes"] for p, v in durable.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--runs", type=int, default=2, help="pairs of (durable, ephemeral) runs")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / "bench-checkpoint-output")
    args = parser.parse_args()
    hooks = args.work / "ephemeral-hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    (hooks / "sitecustomize.py").write_text(EPHEMERAL_NODE)
    results = []
    for i in range(args.runs):
        for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
            print(f"pair {i + 1}/{args.runs}: demo, {variant} ...", file=sys.stderr)
            results.append(run_once(variant, args.work / f"{variant}-{i}", args.epochs, hooks))
            print(json.dumps(results[-1]), file=sys.stderr)
    summary = summarise(results)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**summary, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
