"""Issue 21's acceptance run: two-party and coordinated LR through real nodes against pooled LR.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/lr_check.py [--data ../shared/data] [--output lr-check-output]
                               [--json OUT.json] [--check] [--only RUN ...]

Every job runs on ``lianmo party serve`` processes over mutual TLS with 2048-bit keys
(:func:`lr_accuracy.through_nodes`), each party reading its own file, with the validation
split share 0.2, seed 42, not stratified: the split depends on the ids alone, so the
pooled baselines below are fitted and scored on the very same rows.

1. ``credit``: two-party LR (guest and host, no arbiter) on ``default_credit_hetero``
   with the model defaults; validation AUC against pooled scikit-learn
   ``LogisticRegression`` on the standardised columns (``lr_accuracy.pooled_auc``).
2. ``demo``: two-party LR on the demo's tables (``lianmo.demo_data``) with the demo's
   own model section (``lianmo.cli.demo.demo_spec``); the same baseline.
3. The job of (1) audited as ``.ci/run`` audits the demo: ``lianmo audit verify`` over
   its output folder (party configs, logs and job folders, no key or seed), then
   ``lianmo audit replay --config <party.toml> <job>`` for guest and host (their configs
   point at their seeds in the secrets folder beside the output).
4. ``vehicle-coordinated`` and ``vehicle-two-party``: 4-class ``vehicle_scale_hetero``
   (``model.objective: multiclass``) with and without an arbiter; validation accuracy
   against pooled one-vs-rest scikit-learn LR (:func:`pooled_ovr_accuracy`), with the
   hyperparameters of :data:`VEHICLE_MODEL` (why those: its comment).

Bars: AUC at least pooled - 0.005, accuracy at least pooled - 0.01; ``--check`` exits 1
when a bar or an audit step fails. ``--json`` writes every number: the federated and
pooled figures, the gap, the wall seconds (node start to stop) and the job's seconds per
epoch. Layout: ``OUTPUT/<run>/output`` (what an auditor gets), ``OUTPUT/<run>/secrets``
(keys, seeds). About 5 minutes on 2 cores; ``.ci/run`` runs it with ``--check``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # lr_accuracy, beside this file

from lr_accuracy import (  # noqa: E402
    SEED,
    SHARE,
    DataSet,
    NodeRun,
    credit_files,
    demo_files,
    file_data_set,
    pooled_auc,
    prepare,
    through_nodes,
)

from lianmo.cli.demo import DEMO_PARTIES, LR_EPOCHS, demo_spec  # noqa: E402

#: the bars of issue 21's acceptance list, per metric
TOLERANCE = {"auc": 0.005, "accuracy": 0.01}
KEY_BITS = 2048
#: 846 rows of 18 collinear silhouette measures (condition number ~150 after scaling):
#: the defaults (sgd at 0.15, batch 1024, 5 epochs) land near 0.59 against pooled 0.79
#: in the plaintext reference, and sgd or momentum need 100+ epochs. What a user would
#: set instead: batch 256 (the floor is 224: the guest's 9 columns, bias and 4 label
#: columns need 16 rows each), Adam at its usual 0.1, and 50 epochs (150 steps, about
#: as many as the defaults take on 30,000 rows). The Taylor loss's own optimum scores
#: 0.782 here, pooled one-vs-rest 0.788: the bar (0.778) leaves one validation row.
VEHICLE_MODEL: dict[str, t.Any] = {
    "type": "hetero_lr",
    "objective": "multiclass",
    "epochs": 50,
    "batch_size": 256,
    "optimizer": "adam",
    "learning_rate": 0.1,
    "key_bits": KEY_BITS,
}
MARKER = ".lianmo-lr-check"


@dataclass(frozen=True)
class Run:
    """One acceptance job: its data, model section, protocol and bar."""

    name: str
    data: str  # key of :func:`data_sets`
    model: dict[str, t.Any]
    arbiter: bool
    metric: str  # "auc" or "accuracy"
    audit: bool = False
    note: str = field(default="", compare=False)


def runs() -> list[Run]:
    demo = demo_spec(dict.fromkeys(DEMO_PARTIES, "-"), epochs=LR_EPOCHS, key_bits=KEY_BITS)
    return [
        Run("credit", "credit", {"type": "hetero_lr", "key_bits": KEY_BITS}, False, "auc", True),
        Run("demo", "demo", demo["model"], False, "auc"),
        Run("vehicle-coordinated", "vehicle", VEHICLE_MODEL, True, "accuracy"),
        Run("vehicle-two-party", "vehicle", VEHICLE_MODEL, False, "accuracy"),
    ]


def vehicle_files(data: Path) -> tuple[t.Any, t.Any]:
    return (
        (data / "vehicle_scale_hetero_guest.csv", "id", "y"),
        (data / "vehicle_scale_hetero_host.csv", "id", None),
    )


def data_sets(data: Path, names: t.Iterable[str]) -> dict[str, DataSet]:
    """The runs' data sets, each as the nodes read it (each party's own file)."""
    files = {"credit": credit_files(data), "demo": demo_files(), "vehicle": vehicle_files(data)}
    return {name: file_data_set(name, *files[name]) for name in sorted(set(names))}


def pooled_ovr_accuracy(ds: DataSet) -> float:
    """One-vs-rest scikit-learn LR on every column in one place, standardised on the
    training rows: accuracy on the validation rows (labels ``0 .. K-1``)."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 - dev extras only
    from sklearn.multiclass import OneVsRestClassifier  # noqa: PLC0415

    X = np.hstack([prepare(ds.Xg, ds.val, 0.0), prepare(ds.Xh, ds.val, 0.0)])
    model = OneVsRestClassifier(LogisticRegression(max_iter=5000))
    model.fit(X[~ds.val], ds.y[~ds.val].astype(np.int64))
    return float(np.mean(model.predict(X[ds.val]) == ds.y[ds.val].astype(np.int64)))


def pooled(ds: DataSet, metric: str) -> float:
    """The pooled baseline of ``metric`` on ``ds``'s validation rows."""
    return pooled_auc(ds) if metric == "auc" else pooled_ovr_accuracy(ds)


def judge(run: Run, federated: float, baseline: float) -> dict[str, t.Any]:
    """The bar of ``run.metric``: federated at least ``baseline`` minus its tolerance."""
    bar = TOLERANCE[run.metric]
    return {
        "metric": run.metric,
        "federated": round(federated, 6),
        "pooled": round(baseline, 6),
        "gap": round(baseline - federated, 6),
        "tolerance": bar,
        "pass": federated >= baseline - bar,
    }


def audit(job: NodeRun, parties: t.Sequence[str]) -> dict[str, t.Any]:
    """``lianmo audit verify`` over the job's output, ``audit replay`` for each party."""
    log = job.output.parent / "audit.log"
    steps: dict[str, t.Any] = {}
    commands = {"verify": ["verify", str(job.output)]}
    for p in parties:
        commands[f"replay {p}"] = ["replay", "--config", str(job.configs[p]), job.job_id]
    with log.open("w") as out:
        for name, args in commands.items():
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "lianmo.cli.main", "audit", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
            out.write(f"$ lianmo audit {' '.join(args)}\n{proc.stdout}\n")
            seconds = round(time.perf_counter() - started, 1)
            steps[name] = {"pass": proc.returncode == 0, "seconds": seconds}
            verdict = "PASS" if proc.returncode == 0 else f"FAIL (exit {proc.returncode})"
            print(f"audit {name}: {verdict} in {seconds}s (output in {log})", flush=True)
    return {"pass": all(s["pass"] for s in steps.values()), "steps": steps}


def execute(run: Run, ds: DataSet, folder: Path) -> dict[str, t.Any]:
    """Run ``run`` through nodes under ``folder``; its numbers and verdicts."""
    baseline = pooled(ds, run.metric)
    job = through_nodes(ds, folder, run.model, arbiter=run.arbiter, job_id=f"lr-check-{run.name}")
    validation = job.metrics["validation"]
    result = judge(run, float(validation[run.metric]), baseline)
    if int(validation["rows"]) != int(ds.val.sum()):  # the baseline's rows are not the job's
        result["pass"] = False
        result["problem"] = f"{validation['rows']} validation rows, pooled used {ds.val.sum()}"
    seconds = job.metrics.get("epoch_seconds") or []
    result |= {
        "protocol": "coordinated" if run.arbiter else "two-party",
        "wall_s": job.wall_s,
        "job_wall_s": round(float(job.metrics["wall_seconds"]), 1),
        "epochs": len(job.metrics.get("loss") or []),
        "epoch_s": [round(float(s), 2) for s in seconds],
        "mean_epoch_s": round(float(np.mean(seconds)), 2) if len(seconds) else None,
        "validation_rows": int(validation["rows"]),
        "model": run.model,
    }
    if run.audit:
        result["audit"] = audit(job, ["guest", "host"])
    return result


def table(results: dict[str, dict[str, t.Any]]) -> str:
    head = ["run", "protocol", "metric", "federated", "pooled", "gap", "bar", "wall s"]
    head += ["s/epoch", "audit", "ok"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, r in results.items():
        check = r.get("audit", {}).get("pass")
        lines.append(
            f"| {name} | {r['protocol']} | {r['metric']} | {r['federated']:.4f} | "
            f"{r['pooled']:.4f} | {r['gap']:+.4f} | {r['tolerance']} | {r['wall_s']:.0f} | "
            f"{r['mean_epoch_s'] if r['mean_epoch_s'] is not None else '-'} | "
            f"{'-' if check is None else ('pass' if check else 'FAIL')} | "
            f"{'yes' if r['pass'] else 'NO'} |"
        )
    return "\n".join(lines)


def _fresh(folder: Path) -> Path:
    """An empty ``folder``; a previous run's is wiped, a folder this script did not make is
    refused."""
    if folder.exists():
        if not (folder / MARKER).exists() and any(folder.iterdir()):
            raise SystemExit(f"{folder} exists and was not made by lr_check.py; choose --output")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by scripts/lr_check.py; wiped by the next run\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--output", type=Path, default=Path("lr-check-output"))
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a bar or audit fails")
    parser.add_argument("--only", nargs="+", choices=[r.name for r in runs()], help="these runs")
    args = parser.parse_args(argv)
    chosen = [r for r in runs() if not args.only or r.name in args.only]
    sets = data_sets(args.data, [r.data for r in chosen])
    out = _fresh(args.output.resolve())
    started = time.perf_counter()
    results: dict[str, dict[str, t.Any]] = {}
    for run in chosen:
        print(f"== {run.name}: {'coordinated' if run.arbiter else 'two-party'} LR", flush=True)
        results[run.name] = execute(run, sets[run.data], out / run.name)
        r = results[run.name]
        print(
            f"{run.name}: {run.metric} {r['federated']:.4f} vs pooled {r['pooled']:.4f} "
            f"(gap {r['gap']:+.4f}, bar {r['tolerance']}), {r['wall_s']:.0f}s",
            flush=True,
        )
    total = round(time.perf_counter() - started, 1)
    print(table(results))
    print(f"total {total}s (split: share {SHARE}, seed {SEED}, not stratified)")
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "total_s": total}, indent=2) + "\n")
    failed = [
        n for n, r in results.items() if not r["pass"] or not r.get("audit", {}).get("pass", True)
    ]
    if args.check and failed:
        print(f"below the bar or failing the audit: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
