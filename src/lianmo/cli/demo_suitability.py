"""``lianmo demo --scenario suitability``: estimate customers' risk tolerance levels with a
joint multi-class model, then match products to them at the broker.

Two parties: the broker (guest) holds the questionnaire levels (the 4 vehicle classes
of the shipped ``vehicle_scale_hetero`` tables stand in for C1..C4) and 9 columns; the
platform (host) holds 9 behaviour columns. Three steps:

1. a training job: multi-class SecureBoost (:data:`MODEL`) into the demo's output;
2. a scoring job with the trained shares: the broker's ``scores.csv`` holds each
   customer's level probabilities (``OUTPUT/score/`` has the coordinator's side);
3. the matching step, at the broker only (``lianmo suitability match``): the shipped
   product table and holdings, the rule of :mod:`lianmo.models.suitability`; the
   result goes to ``OUTPUT/parties/broker/suitability/matches.csv``.

The closing lines read the broker's own files (its ``result.json``, ``confusion.csv``,
the matches): the demo runs every party on this machine, so it may; the platform
learns none of it.
"""

from __future__ import annotations

import json
import typing as t
from collections.abc import Mapping, Sequence
from pathlib import Path

import click
import yaml

from lianmo.config import JobSpec

TRAIN_JOB = "suitability-demo"
SCORE_JOB = "suitability-demo-score"
SCORE_FOLDER = "score"
ID_COLUMN = "id"
#: what both jobs use the customers' data for
PURPOSE = "suitability"
#: name -> (role, data set, shipped file, label column)
PARTIES: dict[str, tuple[str, str | None, str | None, str | None]] = {
    "broker": ("guest", "risk_levels", "vehicle_scale_hetero_guest.csv.gz", "y"),
    "platform": ("host", "behaviour", "vehicle_scale_hetero_host.csv.gz", None),
}
#: FATE's SecureBoost benchmark settings (30 rounds of depth 3, 32 bins, learning rate
#: 0.3), one tree per level per round; scripts/suitability_check.py holds pooled XGBoost
#: with the same settings to it
MODEL: dict[str, t.Any] = {
    "type": "secureboost",
    "objective": "multiclass",
    "trees": 30,
    "depth": 3,
    "learning_rate": 0.3,
    "max_bins": 32,
}
SPLIT = {"share": 0.2, "stratify": False}  # the validation rows depend on the ids alone
PRODUCTS, HOLDINGS = "suitability_products.csv", "suitability_holdings.csv"
MATCHES = Path("suitability") / "matches.csv"  # in the broker's folder of the output
LEVELS = ("C1", "C2", "C3", "C4", "C5")


def _common(addresses: Mapping[str, str], job_id: str) -> dict[str, t.Any]:
    """What both jobs share: id, seed, the two parties and their data sets."""
    return {
        "job_id": job_id,
        "seed": 42,
        "purpose": PURPOSE,  # each party's catalogue allows it (docs/consent.md)
        "parties": [
            {"name": name, "role": role, "address": addresses[name], "dataset": ds}
            for name, (role, ds, _f, _l) in PARTIES.items()
        ],
        "alignment": {"min_intersection": 100},
    }


def train_spec(addresses: Mapping[str, str], *, key_bits: int) -> dict[str, t.Any]:
    """The training job: multi-class SecureBoost on the broker's levels."""
    return {
        **_common(addresses, TRAIN_JOB),
        "validation": dict(SPLIT),
        "model": {**MODEL, "key_bits": key_bits},
    }


def score_spec(addresses: Mapping[str, str]) -> dict[str, t.Any]:
    """The scoring job: every common customer's level probabilities, at the broker."""
    return {**_common(addresses, SCORE_JOB), "task": "predict", "model_job": TRAIN_JOB}


def run_suitability(
    output: Path,
    addresses: Mapping[str, str],
    *,
    key_bits: int,
    confidence: float | None,
    ca: Path,
    cert: Path,
    key: Path,
) -> JobSpec:
    """Train, score, match at the broker; print the metrics and the matching's summary."""
    from lianmo.cli.client import Client
    from lianmo.cli.follow import CommandProgress, follow, run_and_report
    from lianmo.cli.suitability import run_match, summary_lines
    from lianmo.demo_data import demo_file
    from lianmo.models.suitability import DEFAULT_CONFIDENCE

    train = _submitted(train_spec(addresses, key_bits=key_bits), output)
    run_and_report(train, output, ca=ca, cert=cert, key=key)
    score = _submitted(score_spec(addresses), output / SCORE_FOLDER)
    click.echo(f"scoring every common customer's level (job '{SCORE_JOB}')", err=True)
    view = CommandProgress(score)
    job = Client(ca=ca, cert=cert, key=key).submit(score, output / SCORE_FOLDER, on_progress=view)
    follow(job, view, cancel_on_interrupt=True)
    broker = output / "parties" / "broker"
    out = broker / MATCHES
    out.parent.mkdir(parents=True, exist_ok=True)
    confidence = confidence or DEFAULT_CONFIDENCE
    matches, held = run_match(
        broker / "jobs" / SCORE_JOB / "scores.csv",
        demo_file(PRODUCTS),
        demo_file(HOLDINGS),
        confidence,
        out,
    )
    for line in metric_lines(broker / "jobs" / TRAIN_JOB):
        click.echo(line)
    for line in summary_lines(matches, held, confidence):
        click.echo(line)
    click.echo(f"matches (broker only): {out}")
    return train


def _submitted(raw: dict[str, t.Any], folder: Path) -> JobSpec:
    """Validate ``raw`` and write it as ``folder/job.yaml``, as submitted."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return JobSpec.from_dict(raw)


def metric_lines(job_dir: Path) -> list[str]:
    """The broker's validation metrics of the training job: accuracy, log loss, recall per
    level and the confusion matrix (rows: questionnaire level, columns: predicted)."""
    from lianmo.node.confusion import VALIDATION_FILE, read_confusion

    result = json.loads((job_dir / "result.json").read_text(encoding="utf-8"))
    v = result.get("validation") or {}
    lines = [
        f"levels (broker's validation rows, {v.get('rows', '?')}): accuracy "
        f"{float(v.get('accuracy', float('nan'))):.4f}, log loss "
        f"{float(v.get('log_loss', float('nan'))):.4f}",
    ]
    matrix = read_confusion(job_dir / VALIDATION_FILE)
    recall = [v.get(f"recall_{k}") for k in range(len(matrix))]
    lines.append(
        "recall per level: "
        + ", ".join(
            f"{LEVELS[k]} {'-' if r is None else f'{float(r):.3f}'}" for k, r in enumerate(recall)
        )
    )
    lines += confusion_lines(matrix)
    return lines


def confusion_lines(matrix: Sequence[Sequence[int]]) -> list[str]:
    """The confusion matrix as a small table (true level down, predicted across)."""
    k = len(matrix)
    width = max(5, *(len(str(c)) for row in matrix for c in row))
    head = "confusion (true \\ predicted) " + " ".join(f"{LEVELS[j]:>{width}}" for j in range(k))
    pad = len("confusion (true \\ predicted) ") - 4
    rows = [
        f"{'':{pad}}{LEVELS[i]:<4}" + " ".join(f"{c:>{width}}" for c in row)
        for i, row in enumerate(matrix)
    ]
    return [head, *rows]
