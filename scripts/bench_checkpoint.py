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

The overhead is measured two ways (see :func:`summarise`): inside each durable run, the
time its nodes spent in the disk calls of durable state (checkpoint writes; the spool's
fsync, rename and read-back) against the same run's training phase; and across runs, the
wall time of each durable run over its ephemeral partner's. Pairs alternate the order so
drift of the machine hits both variants. Never run it next to another benchmark: the
machine has two cores. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIANMO = [sys.executable, "-m", "lianmo.cli.main"]
JOB = "credit-demo"
VARIANTS = ("durable", "ephemeral")

HOOKS = """\
\"\"\"Written by scripts/bench_checkpoint.py into the nodes' PYTHONPATH.

LIANMO_BENCH_VARIANT=ephemeral: checkpoints and inbox in memory only.
LIANMO_BENCH_VARIANT=durable: as shipped, timing the disk work of durable state, written
at exit to LIANMO_BENCH_IO_DIR/PARTY.json.
\"\"\"
import atexit
import json
import os
import statistics
import sys
import threading
import time

from lianmo.node import checkpoint, service
from lianmo.transport import inbox as inbox_module
from lianmo.transport import spool

_VARIANT = os.environ.get("LIANMO_BENCH_VARIANT")
_TOTALS = {"checkpoint_write_s": 0.0, "checkpoint_writes": 0, "spool_sync_s": 0.0,
           "spool_syncs": 0, "spool_read_s": 0.0, "spool_reads": 0}
_LOCK = threading.Lock()


def _timed(fn, key, count):
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with _LOCK:
                _TOTALS[key] += time.perf_counter() - started
                _TOTALS[count] += 1
    return timed


class _TimedOs:
    fsync = staticmethod(_timed(os.fsync, "spool_sync_s", "spool_syncs"))
    replace = staticmethod(_timed(os.replace, "spool_sync_s", "spool_syncs"))

    def __getattr__(self, name):
        return getattr(os, name)


def _write_totals():
    argv = sys.argv
    if "--config" in argv and os.environ.get("LIANMO_BENCH_IO_DIR"):
        party = os.path.basename(os.path.dirname(argv[argv.index("--config") + 1]))
        path = os.path.join(os.environ["LIANMO_BENCH_IO_DIR"], party + ".json")
        with open(path, "w") as fh:
            json.dump(_TOTALS, fh)


def _in_memory_checkpoints(directory):
    return checkpoint.JobCheckpoints(None)


def _in_memory_inbox(self, spec, directory):
    return inbox_module.Inbox(
        spec.job_id,
        self.config.name,
        spec.party_names,
        spool=None,
        max_job_bytes=self.config.max_job_mb * 2**20,
    )


if _VARIANT == "ephemeral":
    service.JobCheckpoints = _in_memory_checkpoints
    service.NodeService._new_inbox = _in_memory_inbox
elif _VARIANT == "durable":
    checkpoint.write_atomic = _timed(
        checkpoint.write_atomic, "checkpoint_write_s", "checkpoint_writes"
    )
    spool.os = _TimedOs()
    spool.Spooled.load = _timed(spool.Spooled.load, "spool_read_s", "spool_reads")
    atexit.register(_write_totals)
"""


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def run_once(variant: str, out: Path, epochs: int, hooks: Path) -> dict[str, t.Any]:
    io_dir = out.with_name(out.name + "-io")
    io_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])),
        "LIANMO_BENCH_VARIANT": variant,
        "LIANMO_BENCH_IO_DIR": str(io_dir),
    }
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
        if variant == "durable":
            parties[party_dir.name]["disk"] = json.loads(
                (io_dir / f"{party_dir.name}.json").read_text()
            )
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
    """Both measures of the overhead, and what durable state occupies on disk.

    * ``in_run``: the disk time of durable state each party spent in a durable run,
      against that same run's training phase (as a share, and per round). Immune to
      the machine's drift between runs, but counts only the timed disk calls.
    * ``paired``: the durable run's job wall time over its ephemeral partner's, per
      pair (adjacent runs), and their geometric mean. Counts everything, but carries
      the machine's run-to-run noise (a few per cent here).
    """
    if len({(r["auc"], json.dumps(r["loss"])) for r in results}) != 1:
        raise SystemExit("the variants trained different models: not a fair comparison")
    rounds = results[0]["rounds"]
    durable = [r for r in results if r["variant"] == "durable"]
    in_run: dict[str, dict[str, float]] = {}
    for party in durable[0]["parties"]:
        shares, per_round = [], []
        for run in durable:
            p = run["parties"][party]
            disk = p["disk"]
            disk_s = disk["checkpoint_write_s"] + disk["spool_sync_s"] + disk["spool_read_s"]
            shares.append(disk_s / p["train_s"])
            per_round.append(1000 * disk_s / rounds)
        in_run[party] = {
            "disk_share_of_train": round(statistics.median(shares), 5),
            "disk_ms_per_round": round(statistics.median(per_round), 2),
        }
    ratios = []
    for first, second in zip(results[::2], results[1::2], strict=True):
        by = {first["variant"]: first, second["variant"]: second}
        ratios.append(by["durable"]["job_wall_s"] / by["ephemeral"]["job_wall_s"])
    return {
        "rounds": rounds,
        "in_run": in_run,
        "paired_ratios": [round(r, 4) for r in ratios],
        "paired_ratio_geomean": round(statistics.geometric_mean(ratios), 4),
        "disk": {
            p: {k: v[k] for k in ("checkpoint_bytes", "spool_bytes", "spool_files")}
            | {"timed_calls": v["disk"]}
            for p, v in durable[0]["parties"].items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--runs", type=int, default=2, help="pairs of (durable, ephemeral) runs")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / "bench-checkpoint-output")
    args = parser.parse_args()
    hooks = args.work / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    (hooks / "sitecustomize.py").write_text(HOOKS)
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
