"""Hetero LR against pooled LR on skewed credit columns: clipping and optimisers (issue 21).

Usage: ``PYTHONPATH=src python scripts/lr_accuracy.py [--data DIR] [--json OUT] [--check]
[--nodes OUT_DIR]``

Federated coordinated LR equals the plaintext reference trainer
(``models/logistic.py::train_plaintext_taylor``) up to fixed-point rounding, so this
measures the reference, in seconds instead of hours. For each data set, with the job's
validation split (``validation_mask``, share 0.2, seed 42, not stratified) and every
party's transform fitted on its own training rows, it prints the validation AUC of:

- ``pooled``: scikit-learn ``LogisticRegression`` on all columns in one place,
  standardised (the acceptance baseline), and ``pooled, clipped`` on the same clipped
  inputs the federated model gets (what the Taylor loss itself costs);
- the reference trainer with the job's hyperparameters (the model defaults; the demo's
  own spec for the demo data) and: ``no clip`` (lianmo before ``model.clip``), ``no
  clip, 10 epochs``, ``defaults`` (clip 0.02, sgd), ``clip 0.01``, ``momentum``, ``adam``
  (learning rate 0.03) and ``Taylor optimum`` (the Taylor loss minimised exactly: what
  any optimiser converges to);
- ``σ around u_A (not built)``: a candidate protocol change, the guest expanding the
  sigmoid around its own part of the logit instead of 0 (:func:`guest_sigmoid_auc`).

Data sets: ``default_credit_hetero``; the same made heavy-tailed by :func:`skew` (four
host columns cubed, two guest columns squared with their sign, and 100σ outliers in
0.5% of the rows of six columns: standardised columns then reach 13 to 152σ); the demo
tables; the raw credit tables (categories and missing cells, encoded by each party as a
job does). ``--check`` exits 1 when ``defaults`` is more than 0.005 below ``pooled``
anywhere. Takes about 10 seconds.

``--nodes OUT_DIR`` also trains ``default_credit_hetero`` and its skewed version through
real nodes with the model defaults (:func:`through_nodes`): ``lianmo party serve``
processes (guest, host, arbiter) over mutual TLS with 2048-bit keys, as
``scripts/raw_credit.py`` does, each party reading its own file (the skewed one a CSV
written under ``OUT_DIR``); about 4 minutes each on 2 cores. ``scripts/lr_check.py``
runs issue 21's acceptance jobs (two-party, 4 classes) with the same helpers.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lianmo.config import LrSpec
from lianmo.data.split import validation_mask
from lianmo.data.table import Table, load_table
from lianmo.demo_data import demo_file
from lianmo.models.encoding import ImputeOneHot
from lianmo.models.logistic import train_plaintext_taylor
from lianmo.models.metrics import auc
from lianmo.models.scaler import QuantileClipper, Standardizer
from lianmo.node.lr_job import level_rows, lr_params

DEFAULTS = LrSpec()
DEMO = {"learning_rate": 0.5, "lr_decay": 0.01}  # lianmo demo's spec (cli/demo.py)
TOLERANCE = 0.005
SHARE, SEED = 0.2, 42
PartyFile = tuple[Path, str, str | None]  # a party's CSV, its id column, its label column


@dataclass(frozen=True)
class DataSet:
    name: str
    Xg: np.ndarray  # guest columns (no bias)
    Xh: np.ndarray
    y: np.ndarray
    val: np.ndarray  # validation rows (bool)
    settings: dict[str, t.Any]
    ids: np.ndarray | None = None  # row ids (for --nodes)
    # each party's own file, as the nodes read it (else --nodes writes CSVs of the arrays)
    files: t.Mapping[str, PartyFile] | None = None


def skew(Xg: np.ndarray, Xh: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Heavy tails from real columns: powers and appended outliers (issue 21's recipe)."""
    Xg, Xh = Xg.copy(), Xh.copy()
    cubed, squared = [0, 2, 5, 8], [1, 3]
    Xh[:, cubed] = np.sign(Xh[:, cubed]) * np.abs(Xh[:, cubed]) ** 3
    Xg[:, squared] = np.sign(Xg[:, squared]) * Xg[:, squared] ** 2
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(Xg), size=len(Xg) // 200, replace=False)  # 0.5% of the rows
    for X, columns in ((Xg, [0, 4, 9]), (Xh, [1, 3, 7])):
        for c in columns:
            hit = rng.choice(rows, size=len(rows) // 2, replace=False)
            X[hit, c] = X[hit, c] + 100 * X[:, c].std()
    return Xg, Xh


def joined(
    guest: Path, host: Path, id_col: str, label: str, cats: tuple[list[str], list[str]] = ([], [])
) -> tuple[Table, Table]:
    """Both tables on their common ids, in the guest's file order."""
    g = load_table(guest, id_column=id_col, label_column=label, categorical=cats[0])
    h = load_table(host, id_column=id_col, categorical=cats[1])
    where = h.index_of()
    g = g.select(np.array([k for k, i in enumerate(g.ids) if i in where]))
    return g, h.select(np.array([where[i] for i in g.ids]))


def data_set(
    name: str,
    g: Table,
    h: Table,
    settings: dict[str, t.Any],
    encode: bool = False,
    files: t.Mapping[str, PartyFile] | None = None,
) -> DataSet:
    assert g.y is not None
    val = validation_mask([str(i) for i in g.ids], SHARE, SEED)
    Xg, Xh = g.X, h.X
    if encode:  # as a job does: each party on its own training rows
        rows = level_rows(int((~val).sum()), lr_params(DEFAULTS, SEED))
        Xg, Xh = (
            ImputeOneHot.fit(T.X[~val], T.feature_names, T.categories, min_rows=rows).transform(T.X)
            for T in (g, h)
        )  # fmt: skip
    return DataSet(name, Xg, Xh, g.y, val, settings, np.asarray(g.ids), files)


def file_data_set(
    name: str, guest: PartyFile, host: PartyFile, settings: dict[str, t.Any] | None = None
) -> DataSet:
    """A data set from each party's own file (one id column name), the files kept for
    the nodes to read."""
    if guest[1] != host[1]:
        raise ValueError(f"{name}: the guest's id column {guest[1]!r} is not the host's")
    g, h = joined(guest[0], host[0], guest[1], str(guest[2]))
    return data_set(name, g, h, settings or {}, files={"guest": guest, "host": host})


def credit_files(data: Path) -> tuple[PartyFile, PartyFile]:
    """``default_credit_hetero``: the guest's and the host's files."""
    return (
        (data / "default_credit_hetero_guest.csv", "id", "y"),
        (data / "default_credit_hetero_host.csv", "id", None),
    )


def demo_files() -> tuple[PartyFile, PartyFile]:
    """The demo's tables (lianmo.demo_data): the broker's (guest) and the platform's."""
    return (
        (demo_file("credit_broker.csv.gz"), "client_id", "default_next_month"),
        (demo_file("credit_platform.csv.gz"), "client_id", None),
    )


def data_sets(data: Path) -> list[DataSet]:
    raw = joined(
        data / "credit_broker_raw.csv",
        data / "credit_platform_raw.csv",
        "client_id",
        "default_next_month",
        (["sex", "education", "marriage"], [f"pay_{k}" for k in range(1, 7)]),
    )
    base = file_data_set("default_credit_hetero", *credit_files(data))
    sg, sh = skew(base.Xg, base.Xh)
    return [
        base,
        DataSet("default_credit_hetero, skewed", sg, sh, base.y, base.val, {}, base.ids),
        file_data_set("demo (its spec: lr 0.5, decay 0.01)", *demo_files(), DEMO),
        data_set("raw credit (encoded)", *raw, {}, encode=True),
    ]


def prepare(X: np.ndarray, val: np.ndarray, clip: float) -> np.ndarray:
    """A party's columns as a job transforms them: clipped (if ``clip``), standardised."""
    if clip > 0:
        X = QuantileClipper.fit(X[~val], clip).transform(X)
    return Standardizer.fit(X[~val]).transform(X)


def pooled_auc(ds: DataSet, clip: float = 0.0) -> float:
    """scikit-learn LR on every column in one place, standardised (clipped first if asked)."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 - dev extras only

    X = np.hstack([prepare(ds.Xg, ds.val, clip), prepare(ds.Xh, ds.val, clip)])
    model = LogisticRegression(max_iter=5000).fit(X[~ds.val], ds.y[~ds.val])
    return float(auc(ds.y[ds.val], model.decision_function(X[ds.val])))


def reference_auc(ds: DataSet, *, clip: float, optimizer: str = "sgd", **change: t.Any) -> float:
    """The plaintext reference trainer (what federated LR computes) with the job's settings."""
    settings = {
        "epochs": DEFAULTS.epochs,
        "batch_size": DEFAULTS.batch_size,
        "learning_rate": DEFAULTS.learning_rate,
        "lr_decay": DEFAULTS.lr_decay,
        "l2": DEFAULTS.l2,
        "tol": DEFAULTS.tol,
        "seed": SEED,
        **ds.settings,
        **change,
    }
    Xg = np.hstack([prepare(ds.Xg, ds.val, clip), np.ones((len(ds.y), 1))])
    Xh = prepare(ds.Xh, ds.val, clip)
    train = ~ds.val
    w, _ = train_plaintext_taylor(
        [Xg[train], Xh[train]], ds.y[train], optimizer=optimizer, **settings
    )
    return float(auc(ds.y[ds.val], Xg[ds.val] @ w[0] + Xh[ds.val] @ w[1]))


def guest_sigmoid_auc(ds: DataSet, clip: float) -> float:
    """Not built: the guest expands the sigmoid around its own ``u_A`` instead of 0.

    Residual ``d = σ(u_A) − y + σ'(u_A)·u_B``: exact in the guest's own part, first order
    in the hosts'. In the protocol the guest would multiply ``[[u_B]]`` row by row by
    ``σ'(u_A)`` and the loss would need each host's ``[[u_k²]]`` per row; measured here
    to see whether that protocol change would pay. SGD, the job's other settings.
    """
    from lianmo.data.split import batch_schedule  # noqa: PLC0415
    from lianmo.models.logistic import sigmoid  # noqa: PLC0415

    settings = {
        "learning_rate": DEFAULTS.learning_rate,
        "lr_decay": DEFAULTS.lr_decay,
        **ds.settings,
    }
    Xg = np.hstack([prepare(ds.Xg, ds.val, clip), np.ones((len(ds.y), 1))])
    Xh = prepare(ds.Xh, ds.val, clip)
    train = ~ds.val
    G, H, y = Xg[train], Xh[train], ds.y[train]
    wg, wh = np.zeros(G.shape[1]), np.zeros(H.shape[1])
    step = 0
    for epoch in range(DEFAULTS.epochs):
        for b in batch_schedule(len(y), DEFAULTS.batch_size, epoch, SEED):
            s = sigmoid(G[b] @ wg)
            d = s - y[b] + s * (1.0 - s) * (H[b] @ wh)
            rate = settings["learning_rate"] / (1.0 + settings["lr_decay"] * step)
            wg, wh = wg - rate * G[b].T @ d / len(b), wh - rate * H[b].T @ d / len(b)
            step += 1
    return float(auc(ds.y[ds.val], Xg[ds.val] @ wg + Xh[ds.val] @ wh))


def taylor_optimum_auc(ds: DataSet, clip: float) -> float:
    """The exact minimiser of the Taylor loss (no L2): least squares of ``4y - 2`` on X."""
    X = np.hstack(
        [prepare(ds.Xg, ds.val, clip), np.ones((len(ds.y), 1)), prepare(ds.Xh, ds.val, clip)]
    )
    w = np.linalg.lstsq(X[~ds.val], 4.0 * ds.y[~ds.val] - 2.0, rcond=None)[0]
    return float(auc(ds.y[ds.val], X[ds.val] @ w))


@dataclass(frozen=True)
class NodeRun:
    """A job run by :func:`through_nodes`: its metrics and where an auditor looks.

    ``output`` holds each party's config, node state (job folders, audit logs) and the
    coordinator's results, and no secret; the keys and the parties' DRBG seeds are in
    ``secrets`` beside it (as ``lianmo demo`` hands them over).
    """

    job_id: str
    metrics: dict[str, t.Any]
    output: Path
    secrets: Path
    configs: dict[str, Path]  # party -> its party.toml under ``output``
    wall_s: float  # node start to node stop


def through_nodes(
    ds: DataSet,
    out: Path,
    model: dict[str, t.Any] | None = None,
    *,
    arbiter: bool = True,
    job_id: str = "lr-accuracy",
) -> NodeRun:
    """Train ``ds`` through real ``lianmo party serve`` processes over mutual TLS.

    Guest and host (and the arbiter, with ``arbiter``; a two-party job without) read
    their own files (``ds.files``, or CSVs of ``ds`` written under ``out/data``); the
    job has the validation split of ``ds`` (share ``SHARE``, seed ``SEED``, not
    stratified) and ``model`` (default: the model defaults with 2048-bit keys). Party
    state and results go to ``out/output``, keys and seeds to ``out/secrets``.
    """
    import time  # noqa: PLC0415

    from lianmo.cli.demo import party_processes, write_party_config  # noqa: PLC0415
    from lianmo.cli.main import run_and_report  # noqa: PLC0415
    from lianmo.cli.wiring import write_identities  # noqa: PLC0415
    from lianmo.config import JobSpec  # noqa: PLC0415

    output, secrets = out / "output", out / "secrets"
    output.mkdir(parents=True, exist_ok=True)
    parties = ["guest", "host", *(["arbiter"] if arbiter else [])]
    certs = secrets / "certs"
    write_identities(certs, [*parties, "coordinator"], force=True, ca_dir=secrets / "ca")
    files = dict(ds.files) if ds.files else _party_files(ds, out / "data")
    configs = {
        p: write_party_config(
            output / "parties" / p,
            p,
            certs,
            {"data": files[p]} if p in files else {},
            arbiters=["arbiter"],
            secrets_dir=secrets / "parties" / p,
        )
        for p in parties
    }
    started = time.perf_counter()
    with party_processes(configs) as addresses:
        spec = JobSpec.from_dict(
            {
                "job_id": job_id,
                "seed": SEED,
                "parties": [
                    {"name": p, "role": p, "address": addresses[p]}
                    | ({"dataset": "data"} if p != "arbiter" else {})
                    for p in parties
                ],
                "validation": {"share": SHARE, "stratify": False},
                "model": model or {"type": "hetero_lr", "key_bits": 2048},
            }
        )
        metrics = run_and_report(
            spec,
            output / "job",
            ca=certs / "ca.pem",
            cert=certs / "coordinator.pem",
            key=certs / "coordinator.key",
        )
    wall = time.perf_counter() - started
    return NodeRun(job_id, dict(metrics), output, secrets, configs, round(wall, 1))


def _party_files(ds: DataSet, folder: Path) -> dict[str, PartyFile]:
    """``ds`` as each party's CSV (``id``, the guest's ``y``, ``x0 ..``) under ``folder``."""
    assert ds.ids is not None
    folder.mkdir(parents=True, exist_ok=True)
    _write_csv(folder / "guest.csv", ds.ids, ds.Xg, ds.y)
    _write_csv(folder / "host.csv", ds.ids, ds.Xh, None)
    return {"guest": (folder / "guest.csv", "id", "y"), "host": (folder / "host.csv", "id", None)}


def _write_csv(path: Path, ids: np.ndarray, X: np.ndarray, y: np.ndarray | None) -> None:
    import csv  # noqa: PLC0415

    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["id", *(["y"] if y is not None else []), *(f"x{j}" for j in range(X.shape[1]))]
        )
        for k, row_id in enumerate(ids):
            label = [int(y[k])] if y is not None else []
            out.writerow([row_id, *label, *(repr(float(v)) for v in X[k])])


def measure(ds: DataSet) -> dict[str, float]:
    clip = DEFAULTS.clip
    return {
        "pooled": pooled_auc(ds),
        "pooled, clipped": pooled_auc(ds, clip),
        "no clip": reference_auc(ds, clip=0.0),
        "no clip, 10 epochs": reference_auc(ds, clip=0.0, epochs=10),
        "defaults": reference_auc(ds, clip=clip),
        "clip 0.01": reference_auc(ds, clip=0.01),
        "momentum": reference_auc(ds, clip=clip, optimizer="momentum"),
        "adam": reference_auc(ds, clip=clip, optimizer="adam", learning_rate=0.03),
        "Taylor optimum": taylor_optimum_auc(ds, clip),
        "σ around u_A (not built)": guest_sigmoid_auc(ds, clip),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--check", action="store_true", help="exit 1 if defaults miss pooled")
    parser.add_argument("--nodes", type=Path, help="also train through real nodes, here")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    sets = data_sets(args.data)
    for ds in sets:
        results[ds.name] = measure(ds)
        columns = list(results[ds.name])
        if len(results) == 1:
            print("| data | " + " | ".join(columns) + " |")
            print("|---" * (len(columns) + 1) + "|")
        row = results[ds.name]
        cells = [f"{row['pooled']:.4f}"] + [
            f"{row[c]:.4f} ({row[c] - row['pooled']:+.4f})" for c in columns[1:]
        ]
        print(f"| {ds.name} | " + " | ".join(cells) + " |", flush=True)
    if args.nodes:
        for k, ds in enumerate(sets[:2]):
            metrics = through_nodes(ds, args.nodes / f"set-{k}", job_id=f"lr-accuracy-{k}").metrics
            node_auc = float(metrics["validation"]["auc"])
            results[ds.name]["through nodes"] = node_auc
            print(
                f"{ds.name} through nodes: validation AUC {node_auc:.4f} "
                f"({node_auc - results[ds.name]['pooled']:+.4f} against pooled), "
                f"{metrics['validation']['rows']} rows",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    behind = {n: r["pooled"] - r["defaults"] for n, r in results.items()}
    failed = {n: round(gap, 4) for n, gap in behind.items() if gap > TOLERANCE}
    if args.check and failed:
        print(f"defaults more than {TOLERANCE} AUC below pooled LR: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
