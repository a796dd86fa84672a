"""Cost of full auditing on the demo job: the same `lianmo demo` with and without it.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/bench_audit.py --json OUT.json [--runs 1] [--epochs 5]

Runs ``lianmo demo`` (three node processes, mutual TLS, 2048-bit keys) alternately at
audit level ``chain`` (the foundation's hash-chained log: no signatures, no payload
store) and ``full`` (signed records plus the content-addressed payload store), in one
invocation so both see the same machine state, and reports wall time, the training
phase, log and store sizes per party, the size per round, and how long
``lianmo audit verify`` and one party's ``lianmo audit replay`` take. Never run it next
to another benchmark: the machine has two cores. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIANMO = [sys.executable, "-m", "lianmo.cli.main"]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([*LIANMO, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_once(level: str, out: Path, epochs: int) -> dict[str, object]:
    wall = _timed(["demo", "--output", str(out), "--epochs", str(epochs), "--audit-level", level])
    metrics = json.loads((out / "metrics.json").read_text())
    job = out / "parties"
    parties = {}
    for party_dir in sorted(job.iterdir()):
        folder = party_dir / "jobs" / "credit-demo"
        log = folder / "audit.jsonl"
        parties[party_dir.name] = {
            "records": len(log.read_text().splitlines()),
            "log_bytes": log.stat().st_size,
            "store_bytes": _size(folder / "payloads"),
            "bytes_sent": metrics["parties"][party_dir.name]["bytes_sent"],
        }
    rounds = len(metrics.get("loss_per_round", [])) or None
    result: dict[str, object] = {
        "level": level,
        "demo_wall_s": round(wall, 2),
        "job_wall_s": metrics["wall_seconds"],
        "train_s": {p: v["phase_seconds"].get("train") for p, v in metrics["parties"].items()},
        "rounds": rounds,
        "parties": parties,
        "auc": metrics["validation"]["auc"],
    }
    if level == "full":
        result["verify_s"] = round(_timed(["audit", "verify", str(out)]), 2)
        config = out / "parties" / "arbiter" / "party.toml"
        result["replay_arbiter_s"] = round(
            _timed(["audit", "replay", "--config", str(config), "credit-demo"]), 2
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--runs", type=int, default=1, help="pairs of (chain, full) runs")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / "bench-audit-output")
    args = parser.parse_args()
    results = []
    for i in range(args.runs):
        for level in ("chain", "full"):
            out = args.work / f"{level}-{i}"
            print(f"run {i + 1}/{args.runs}: demo at audit level {level} ...", file=sys.stderr)
            results.append(run_once(level, out, args.epochs))
            print(json.dumps(results[-1]), file=sys.stderr)
    chain = [r["job_wall_s"] for r in results if r["level"] == "chain"]
    full = [r["job_wall_s"] for r in results if r["level"] == "full"]
    summary = {
        "runs": results,
        "job_wall_chain_s": min(chain),  # type: ignore[type-var]
        "job_wall_full_s": min(full),  # type: ignore[type-var]
        "overhead_ratio": round(min(full) / min(chain), 4),  # type: ignore[type-var,operator]
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
