"""Issue 22's suitability acceptance: multi-class SecureBoost through real nodes vs pooled XGBoost.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/suitability_check.py [--demo-output DIR] [--output suitability-check-output]
                                        [--json OUT.json] [--check] [--lr]

The federated run is ``lianmo demo --scenario suitability`` itself (party processes over
mutual TLS, 2048-bit keys; the shipped ``vehicle_scale_hetero`` tables, the same rows as
``../shared/data``): run here into ``--output``, or a finished one read from
``--demo-output`` (``.ci/run`` runs the demo first and passes its output). Its training
job (:data:`lianmo.cli.demo_suitability.MODEL`: 30 rounds of one tree per class, depth
3, learning rate 0.3, 32 bins, l2 1, min child weight 1) is held against pooled XGBoost
on both parties' columns in one place, with the same hyperparameters and rows: the
validation rows are the ids in the broker's ``validation_scores.csv``, every other
common id trains. Two pooled figures:

- ``same bins, same objective`` (the bar): each party's columns binned as the party
  bins them (:class:`lianmo.models.binning.QuantileBins` fitted on its training rows),
  XGBoost on the bin numbers, each its own histogram bin (the same candidate splits as
  SecureBoost), with SecureBoost's softmax derivatives (``h = p(1-p)``; XGBoost's own
  ``multi:softprob`` takes ``2p(1-p)``, which halves every leaf weight) and start scores
  (log class priors): the same model grown in one place;
- ``same bins`` and ``own bins``: stock ``multi:softprob`` on those bin numbers, and
  XGBoost ``hist`` with ``max_bin=32`` on the raw columns (its own sketch).

Bar: federated validation accuracy within 0.01 of ``same bins, same objective`` (either
side: lossless means equal) and at least both stock figures minus 0.01; ``--check``
exits 1 otherwise. ``--lr`` also trains multi-class (one-vs-rest) coordinated LR on the same
tables through real nodes (``scripts/lr_check.py``'s settings, about 2 minutes) and
records its accuracy and pooled one-vs-rest LR's. About 3 minutes on 2 cores with the
demo run.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import numpy as np

from lianmo.cli.demo_suitability import MODEL, PARTIES, TRAIN_JOB
from lianmo.data.table import Table, load_table
from lianmo.demo_data import demo_file
from lianmo.models.binning import QuantileBins

TOLERANCE = 0.01


def run_demo(output: Path) -> None:
    """``lianmo demo --scenario suitability --output OUTPUT`` (its secrets beside it)."""
    command = [sys.executable, "-m", "lianmo.cli.main", "demo", "--scenario", "suitability"]
    subprocess.run([*command, "--output", str(output)], check=True)


def tables() -> tuple[Table, Table]:
    """The broker's and the platform's shipped tables, on their common ids, broker order."""
    files = {name: demo_file(str(row[2])) for name, row in PARTIES.items()}
    g = load_table(files["broker"], id_column="id", label_column="y")
    h = load_table(files["platform"], id_column="id")
    where = h.index_of()
    g = g.select(np.array([k for k, i in enumerate(g.ids) if i in where]))
    return g, h.select(np.array([where[i] for i in g.ids]))


def validation_ids(demo_output: Path) -> set[str]:
    """The broker's validation rows of the training job (its validation_scores.csv)."""
    path = demo_output / "parties" / "broker" / "jobs" / TRAIN_JOB / "validation_scores.csv"
    with path.open(newline="") as fh:
        return {row["id"] for row in csv.DictReader(fh)}


def softmax_objective(y: np.ndarray, margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SecureBoost's multi-class derivatives (docs/secureboost.md): ``g = p - onehot``,
    ``h = p (1 - p)`` (XGBoost's own ``multi:softprob`` takes ``h = 2 p (1 - p)``)."""
    z = margin - margin.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    onehot = np.eye(margin.shape[1])[y.astype(np.int64)]
    return p - onehot, p * (1.0 - p)


def xgboost_accuracy(
    X: np.ndarray, y: np.ndarray, val: np.ndarray, max_bin: int, *, same_objective: bool
) -> float:
    """XGBoost with the demo model's hyperparameters; validation accuracy. With
    ``same_objective``: SecureBoost's derivatives and start scores (log class priors of
    the training rows, centred), else XGBoost's ``multi:softprob`` from 0."""
    import xgboost  # noqa: PLC0415 - dev extras only

    model = xgboost.XGBClassifier(
        n_estimators=MODEL["trees"],
        max_depth=MODEL["depth"],
        learning_rate=MODEL["learning_rate"],
        max_bin=max_bin,
        reg_lambda=1.0,
        min_child_weight=1.0,
        gamma=0.0,
        tree_method="hist",
        objective=softmax_objective if same_objective else "multi:softprob",
    )
    if not same_objective:
        model.fit(X[~val], y[~val])
        return float(np.mean(model.predict(X[val]) == y[val]))
    prior = np.bincount(y[~val], minlength=int(y.max()) + 1) / (~val).sum()
    start = np.log(np.clip(prior, 1e-6, None))
    start = np.tile(start - start.mean(), (len(y), 1))
    model.fit(X[~val], y[~val], base_margin=start[~val])
    margin = model.predict(X[val], output_margin=True, base_margin=start[val])
    return float(np.mean(np.asarray(margin).argmax(axis=1) == y[val]))


def pooled(g: Table, h: Table, val: np.ndarray) -> dict[str, float]:
    """Pooled XGBoost accuracy on the same rows: on each party's own bins with
    SecureBoost's objective (the bar) and with XGBoost's, and on the raw columns."""
    assert g.y is not None
    y = g.y.astype(np.int64)
    codes = [QuantileBins.fit(T.X[~val], MODEL["max_bins"]).transform(T.X) for T in (g, h)]
    same = np.hstack(codes).astype(np.float64)
    raw = np.hstack([g.X, h.X])
    return {
        "same_bins_same_objective": xgboost_accuracy(same, y, val, 256, same_objective=True),
        "same_bins": xgboost_accuracy(same, y, val, 256, same_objective=False),
        "own_bins": xgboost_accuracy(raw, y, val, MODEL["max_bins"], same_objective=False),
    }


def lr_figures(output: Path) -> dict[str, float]:
    """Coordinated one-vs-rest LR through real nodes (lr_check's settings) and pooled."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lr_accuracy import file_data_set, through_nodes  # noqa: PLC0415
    from lr_check import VEHICLE_MODEL, pooled_ovr_accuracy  # noqa: PLC0415

    files = [(demo_file(str(row[2])), "id", row[3]) for row in PARTIES.values()]
    ds = file_data_set("vehicle", files[0], files[1])
    run = through_nodes(ds, output / "lr", VEHICLE_MODEL, job_id="suitability-check-lr")
    return {
        "federated": float(run.metrics["validation"]["accuracy"]),
        "pooled_ovr": pooled_ovr_accuracy(ds),
        "wall_s": run.wall_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--demo-output", type=Path, help="a finished suitability demo's output")
    parser.add_argument("--output", type=Path, default=Path("suitability-check-output"))
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--check", action="store_true", help="exit 1 below the bar")
    parser.add_argument("--lr", action="store_true", help="also one-vs-rest LR through nodes")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    demo = args.demo_output
    if demo is None:
        demo = args.output / "demo"
        run_demo(demo)
    metrics = json.loads((demo / "metrics.json").read_text())
    validation = metrics["validation"]
    g, h = tables()
    val_ids = validation_ids(demo)
    val = np.array([str(i) in val_ids for i in g.ids])
    result: dict[str, t.Any] = {
        "federated": float(validation["accuracy"]),
        "log_loss": float(validation["log_loss"]),
        "validation_rows": int(validation["rows"]),
        "trees": int(metrics["trees"]),
        "model": MODEL,
        "pooled": pooled(g, h, val),
    }
    same = result["pooled"]["same_bins_same_objective"]
    stock = min(result["pooled"]["same_bins"], result["pooled"]["own_bins"])
    result["gap"] = round(same - result["federated"], 6)
    result["pass"] = (
        abs(result["gap"]) <= TOLERANCE
        and result["federated"] >= stock - TOLERANCE
        and int(val.sum()) == result["validation_rows"]
        and result["trees"] == MODEL["trees"] * 4
    )
    p = result["pooled"]
    print(
        f"multi-class SecureBoost (demo run, {result['validation_rows']} validation rows, "
        f"{result['trees']} trees): accuracy {result['federated']:.4f}, log loss "
        f"{result['log_loss']:.4f}\npooled XGBoost on the same bins with SecureBoost's "
        f"objective: {same:.4f} (gap {result['gap']:+.4f}, bar ±{TOLERANCE}); with XGBoost's "
        f"multi:softprob: same bins {p['same_bins']:.4f}, own 32 bins {p['own_bins']:.4f}",
        flush=True,
    )
    if args.lr:
        result["lr"] = lr_figures(args.output)
        print(
            f"one-vs-rest coordinated LR through nodes: accuracy {result['lr']['federated']:.4f}"
            f" (pooled one-vs-rest LR {result['lr']['pooled_ovr']:.4f})",
            flush=True,
        )
    result["total_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.check and not result["pass"]:
        print("below the bar (or not the demo's rows and trees)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
