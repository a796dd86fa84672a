"""Time SecureBoost over real gRPC on loopback, against pooled XGBoost and the plain phe path.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/bench_secureboost.py --json OUT.json [--data-set NAME]  # see DATA_SETS

Runs FATE's benchmark configuration (30 trees, depth 3, 32 bins, learning rate 0.3,
validation share 0.2, seed 42) with 2048-bit keys. The split is not stratified, so that
pooled XGBoost can use the very same rows (a stratified split is drawn from the guest's
secret per-job randomness). Guest and host are two ``lianmo party serve`` processes with
mutual TLS, exactly as users run them, each with its default compute backend (a process
pool over all cores; on a small machine both parties share the same cores). Writes::

    {"data", "auc", "ks", "pooled_auc", "wall_s", "phases": {...}, "phe": {...}, ...}

- ``pooled_auc``: XGBoost (``tree_method="hist"``, the same trees, depth, bins and
  learning rate) trained on all columns pooled, on the very same training and
  validation rows.
- ``phases``: the job's wall time split into encrypting gradients (guest), building
  histograms (host: histograms, subtraction, running sums, packing, re-randomising),
  decrypting (guest) and everything else (alignment, binning, routing, waiting, gRPC).
- ``phe``: the same protocol's Paillier work done with plain ``phe`` objects, the way a
  straightforward implementation does it (g and h encrypted separately, one ciphertext
  addition per row and feature for each, one decryption per candidate sum for each),
  timed per operation on a sample in this run and multiplied by the operation counts of
  this run; and the ratio to lianmo's time for the same phases.

``--data-set credit-raw`` reads the credit files as institutions hold them (categories as
text, missing cells; the catalogue declares the categorical columns), and pooled XGBoost
uses its native missing-value and categorical handling on the same rows.

This is a benchmark, not a test. ``--smoke`` runs 2 trees on the small breast data.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import phe

from lianmo.cli.demo import party_processes, write_party_config
from lianmo.cli.main import run_and_report
from lianmo.cli.wiring import write_identities
from lianmo.config import JobSpec
from lianmo.data.split import validation_mask
from lianmo.data.table import load_table
from lianmo.models.metrics import auc

#: catalogue ``categorical`` keys per data set: (guest's, host's)
CATEGORICAL = {
    "credit-raw": (
        ["sex", "education", "marriage"],
        [f"pay_{k}" for k in range(1, 7)],
    ),
}
DATA_SETS = {
    # name: (guest file, host file, id column, label column)
    "default_credit": (
        "default_credit_hetero_guest.csv",
        "default_credit_hetero_host.csv",
        "id",
        "y",
    ),
    "credit": ("credit_broker.csv", "credit_platform.csv", "client_id", "default_next_month"),
    # the same people as institutions hold them: categories as text, missing cells
    "credit-raw": (
        "credit_broker_raw.csv",
        "credit_platform_raw.csv",
        "client_id",
        "default_next_month",
    ),
    "breast": ("breast_hetero_guest.csv", "breast_hetero_host.csv", "id", "y"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--data-set", choices=sorted(DATA_SETS), default="default_credit")
    parser.add_argument("--trees", type=int, default=30)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--bins", type=int, default=32)
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--phe-sample", type=int, default=40, help="phe operations timed")
    parser.add_argument("--smoke", action="store_true", help="2 trees on breast, quick")
    parser.add_argument("--output", type=Path, default=Path("bench-secureboost-output"))
    args = parser.parse_args()
    if args.smoke:
        args.data_set, args.trees, args.phe_sample = "breast", 2, 5

    guest_file, host_file, id_col, label = DATA_SETS[args.data_set]
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    certs = out / "certs"
    write_identities(certs, ["guest", "host", "coordinator"], force=True)
    guest_cats, host_cats = CATEGORICAL.get(args.data_set, ([], []))
    configs = {
        "guest": write_party_config(
            out / "parties" / "guest",
            "guest",
            certs,
            {"data": (args.data / guest_file, id_col, label)},
            dataset_keys={"data": {"categorical": guest_cats}},
        ),
        "host": write_party_config(
            out / "parties" / "host",
            "host",
            certs,
            {"data": (args.data / host_file, id_col, None)},
            dataset_keys={"data": {"categorical": host_cats}},
        ),
    }
    model = {
        "type": "secureboost",
        "trees": args.trees,
        "depth": args.depth,
        "max_bins": args.bins,
        "learning_rate": 0.3,
        "key_bits": args.key_bits,
    }
    print(f"SecureBoost on {args.data_set}: {model}", file=sys.stderr)
    with party_processes(configs) as addresses:
        spec = JobSpec.from_dict(
            {
                "job_id": f"bench-sb-{int(time.time())}",
                "seed": 42,
                "parties": [
                    {"name": n, "role": n, "address": addresses[n], "dataset": "data"}
                    for n in ("guest", "host")
                ],
                "alignment": {"min_intersection": 100},
                "validation": {"share": 0.2, "stratify": False},
                "model": model,
            }
        )
        metrics = run_and_report(
            spec,
            out / "job",
            ca=certs / "ca.pem",
            cert=certs / "coordinator.pem",
            key=certs / "coordinator.key",
        )
    guest, host = metrics["parties"]["guest"], metrics["parties"]["host"]
    seconds = {**guest["protocol_seconds"], **host["protocol_seconds"]}
    counts = {**guest["protocol_counts"], **host["protocol_counts"]}
    wall = float(metrics["wall_seconds"])
    phases = {
        "encrypt_gradients_s": round(seconds.get("encrypt", 0.0), 3),
        "build_histograms_s": round(seconds.get("histogram", 0.0), 3),
        "decrypt_s": round(seconds.get("decrypt", 0.0), 3),
    }
    phases["everything_else_s"] = round(wall - sum(phases.values()), 3)
    trees = int(metrics.get("trees", args.trees))
    traffic = {
        name: {
            "messages_sent": p["messages_sent"],
            "bytes_sent": p["bytes_sent"],
            "messages_per_tree": round(p["messages_sent"] / trees, 1),
            "bytes_per_tree": round(p["bytes_sent"] / trees),
        }
        for name, p in metrics["parties"].items()
    }
    crypto_s = sum(phases[k] for k in ("encrypt_gradients_s", "build_histograms_s", "decrypt_s"))
    phe_costs = _phe_costs(args.key_bits, args.phe_sample)
    phe_total = {
        "encrypt_s": 2 * counts.get("encryptions", 0) * phe_costs["encrypt"],
        "histogram_s": 2 * counts.get("placements", 0) * phe_costs["add"]
        + 2 * counts.get("subtractions", 0) * phe_costs["sub"],
        "decrypt_s": 2 * counts.get("candidates", 0) * phe_costs["decrypt"],
    }
    result = {
        "data": f"{args.data_set} ({guest_file} + {host_file})",
        "auc": metrics["validation"]["auc"],
        "ks": metrics["validation"]["ks"],
        "pooled_auc": _pooled_auc(args, guest_file, host_file, id_col, label),
        "wall_s": round(wall, 3),
        "train_s": guest["phase_seconds"].get("train"),
        "phases": phases,
        "counts": counts,
        "phe": {
            "per_op_s": phe_costs,
            "extrapolated_s": {k: round(v, 1) for k, v in phe_total.items()},
            "crypto_phases_s": round(crypto_s, 3),
            "speedup_crypto_phases": round(sum(phe_total.values()) / max(crypto_s, 1e-9), 1),
            "method": "phe ops timed on a sample in this run x this run's operation counts; "
            "g and h as separate ciphertexts, no packing",
        },
        "traffic": traffic,
        "trees": trees,
        "config": {**model, "validation_share": 0.2, "stratified": False, "seed": 42},
        "validation_rows": metrics.get("validation_rows"),
        "train_rows": metrics.get("train_rows"),
        "channel": "gRPC over loopback, mutual TLS, one process per party",
    }
    print(json.dumps({k: v for k, v in result.items() if k != "traffic"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _phe_costs(key_bits: int, sample: int) -> dict[str, float]:
    """Seconds per phe encryption, ciphertext addition, subtraction and decryption."""
    public, private = phe.generate_paillier_keypair(n_length=key_bits)
    rnd = random.Random(0)
    values = [rnd.uniform(-1, 1) for _ in range(sample)]
    start = time.perf_counter()
    encrypted = [public.encrypt(v) for v in values]
    t_enc = (time.perf_counter() - start) / sample
    reps = 50 * sample
    start = time.perf_counter()
    total = encrypted[0]
    for i in range(reps):
        total = total + encrypted[i % sample]
    t_add = (time.perf_counter() - start) / reps
    start = time.perf_counter()
    for i in range(sample):
        _ = encrypted[i] - encrypted[(i + 1) % sample]
    t_sub = (time.perf_counter() - start) / sample
    start = time.perf_counter()
    for c in encrypted:
        private.decrypt(c)
    t_dec = (time.perf_counter() - start) / sample
    return {"encrypt": t_enc, "add": t_add, "sub": t_sub, "decrypt": t_dec}


def _pooled_auc(
    args: argparse.Namespace, guest_file: str, host_file: str, id_col: str, label: str
) -> float | None:
    """XGBoost on all columns pooled, on the same split of the common rows (ids and seed)."""
    try:
        import xgboost  # noqa: PLC0415 - optional, installed with the dev extras
    except ImportError:
        return None
    guest_cats, host_cats = CATEGORICAL.get(args.data_set, ([], []))
    g = load_table(
        args.data / guest_file, id_column=id_col, label_column=label, categorical=guest_cats
    )
    h = load_table(args.data / host_file, id_column=id_col, categorical=host_cats)
    where = h.index_of()
    rows = np.array([i for i, row_id in enumerate(g.ids) if row_id in where])
    g = g.select(rows)
    h = h.select(np.array([where[row_id] for row_id in g.ids]))
    assert g.y is not None
    X, y = np.hstack([g.X, h.X]), g.y
    val = validation_mask(g.ids, 0.2, 42)
    # NaN is missing; categorical columns hold codes: XGBoost's native handling of both
    kinds = ["c" if name in g.categories else "q" for name in g.feature_names]
    kinds += ["c" if name in h.categories else "q" for name in h.feature_names]
    model = xgboost.XGBClassifier(
        n_estimators=args.trees,
        max_depth=args.depth,
        max_bin=args.bins,
        learning_rate=0.3,
        tree_method="hist",
        feature_types=kinds,
        enable_categorical=True,
    )
    model.fit(X[~val], y[~val])
    return round(float(auc(y[val], model.predict_proba(X[val])[:, 1])), 6)


if __name__ == "__main__":
    sys.exit(main())
