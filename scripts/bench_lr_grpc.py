"""Time hetero LR epochs over real gRPC on loopback: three `lianmo party serve` processes.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/bench_lr_grpc.py --json OUT.json [--data ../shared/data] [--epochs 2]

Runs guest (labels + 13 columns), host (10 columns) and arbiter of
``default_credit_hetero`` as separate node processes with mutual TLS and 2048-bit keys,
exactly as ``lianmo demo`` does for the credit demo, and reports the arbiter's seconds
per epoch (first batch sent to last gradient decrypted), the job's wall time, the
validation AUC and the traffic. Each node uses its default compute backend (a process
pool over all cores), so on a small machine the three parties share the same cores.
This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lianmo.cli.demo import party_processes, write_party_config
from lianmo.cli.main import run_and_report
from lianmo.cli.wiring import write_identities
from lianmo.config import JobSpec


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
        "--validation-share",
        type=float,
        default=0.01,
        help="held-out share; small so an epoch covers nearly all 30,000 rows",
    )
    parser.add_argument("--output", type=Path, default=Path("bench-lr-output"))
    args = parser.parse_args()

    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    certs = out / "certs"
    parties = {
        "guest": ("default_credit_hetero_guest.csv", "y"),
        "host": ("default_credit_hetero_host.csv", None),
        "arbiter": (None, None),
    }
    write_identities(certs, [*parties, "coordinator"], force=True)
    configs = {}
    for name, (file, label) in parties.items():
        datasets = {} if file is None else {"credit": (args.data / file, "id", label)}
        configs[name] = write_party_config(out / "parties" / name, name, certs, datasets)
    started = time.perf_counter()
    with party_processes(configs) as addresses:
        raw = {
            "job_id": f"bench-lr-{int(time.time())}",
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
        spec = JobSpec.from_dict(raw)
        metrics = run_and_report(
            spec,
            out / "job",
            ca=certs / "ca.pem",
            cert=certs / "coordinator.pem",
            key=certs / "coordinator.key",
        )
    epochs = metrics.get("epoch_seconds", [])
    result = {
        "data": "default_credit_hetero",
        "key_bits": args.key_bits,
        "batch_size": args.batch_size,
        "train_rows": metrics.get("train_rows"),
        "epoch_seconds": epochs,
        "mean_epoch_s": round(sum(epochs) / len(epochs), 3) if epochs else None,
        "job_wall_s": metrics.get("wall_seconds"),
        "total_s": round(time.perf_counter() - started, 3),
        "validation": metrics.get("validation"),
        "parties": metrics.get("parties"),
        "channel": "gRPC over loopback, mutual TLS, one process per party",
    }
    print(json.dumps({k: v for k, v in result.items() if k != "parties"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
