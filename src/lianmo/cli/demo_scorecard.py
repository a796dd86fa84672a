"""``lianmo demo --workflow scorecard``: train the credit scorecard, score the same tables
with it, and say how well it ranks, how stable it is and where each party's report is.

Two jobs on the demo's party nodes: the training job (``model: {type: scorecard}`` with
its defaults: bin, WOE/IV, select, WOE-LR, scale) into the demo's output folder, then a
scoring job with the trained shares on the same tables into ``OUTPUT/score/`` (its score
PSI and CSI are near 0: same rows, so it shows what the figures are, not a shift).

The closing lines read each party's own ``result.json`` from its job folder: the demo runs
every party on this machine, so it may; no party learns another's figures this way.
"""

from __future__ import annotations

import json
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click
import yaml

from lianmo.cli.demo import DEMO_PARTIES, DEMO_PURPOSE, demo_spec
from lianmo.config import JobSpec

TRAIN_JOB = "scorecard-demo"
SCORE_JOB = "scorecard-demo-score"
#: the scoring job's coordinator output (job.json, metrics.json), inside the demo's output
SCORE_FOLDER = "score"
#: the model report each data party writes into its job folder (and its Markdown twin)
REPORT_FILE = "report.html"

Json = Mapping[str, t.Any]


def scorecard_spec(addresses: Mapping[str, str], *, epochs: int, key_bits: int) -> dict[str, t.Any]:
    """The training job: the LR demo's parties, alignment and split; a default scorecard."""
    raw = demo_spec(addresses, epochs=epochs, key_bits=key_bits)
    model = {"type": "scorecard", "epochs": epochs, "key_bits": key_bits}
    return {**raw, "job_id": TRAIN_JOB, "model": model}


def score_spec(addresses: Mapping[str, str]) -> dict[str, t.Any]:
    """The scoring job: the data parties score their own tables with the trained shares."""
    return {
        "job_id": SCORE_JOB,
        "seed": 42,
        "purpose": DEMO_PURPOSE,
        "task": "predict",
        "model_job": TRAIN_JOB,
        "parties": [
            {"name": name, "role": role, "address": addresses[name], "dataset": ds}
            for name, (role, ds, _f, _l) in DEMO_PARTIES.items()
            if ds is not None
        ],
        "alignment": {"min_intersection": 1000},
    }


def run_scorecard(
    output: Path,
    addresses: Mapping[str, str],
    *,
    epochs: int,
    key_bits: int,
    ca: Path,
    cert: Path,
    key: Path,
) -> JobSpec:
    """Run both jobs, print the training summary and the scorecard's; the training spec."""
    from lianmo.cli.client import Client
    from lianmo.cli.follow import CommandProgress, follow, run_and_report

    train = _submitted(scorecard_spec(addresses, epochs=epochs, key_bits=key_bits), output)
    run_and_report(train, output, ca=ca, cert=cert, key=key)
    score = _submitted(score_spec(addresses), output / SCORE_FOLDER)
    click.echo(f"scoring the same tables with the trained scorecard (job '{SCORE_JOB}')", err=True)
    view = CommandProgress(score)
    job = Client(ca=ca, cert=cert, key=key).submit(score, output / SCORE_FOLDER, on_progress=view)
    follow(job, view, cancel_on_interrupt=True)
    for line in summary_lines(DemoResults.read(output)):
        click.echo(line)
    return train


def _submitted(raw: dict[str, t.Any], folder: Path) -> JobSpec:
    """Validate ``raw`` and write it as ``folder/job.yaml``, as submitted."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return JobSpec.from_dict(raw)


@dataclass(frozen=True, slots=True)
class DemoResults:
    """What the closing lines show: each data party's ``result.json`` of both jobs, and
    its report files that exist (relative to where the demo was started, if below it)."""

    roles: Mapping[str, str]
    trained: Mapping[str, Json]
    scored: Mapping[str, Json]
    reports: Mapping[str, tuple[Path, ...]]

    @classmethod
    def read(cls, output: Path) -> DemoResults:
        parties = {n: role for n, (role, ds, _f, _l) in DEMO_PARTIES.items() if ds is not None}
        folders = {n: output / "parties" / n / "jobs" for n in parties}
        return cls(
            roles=parties,
            trained={n: _result(f / TRAIN_JOB) for n, f in folders.items()},
            scored={n: _result(f / SCORE_JOB) for n, f in folders.items()},
            reports={
                n: tuple(
                    _shown(f / job / REPORT_FILE)
                    for job in (TRAIN_JOB, SCORE_JOB)
                    if (f / job / REPORT_FILE).exists()
                )
                for n, f in folders.items()
            },
        )


def _result(job_dir: Path) -> Json:
    raw = json.loads((job_dir / "result.json").read_text(encoding="utf-8"))
    return raw if isinstance(raw, Mapping) else {}


def _shown(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def summary_lines(results: DemoResults) -> list[str]:
    """The scorecard's figures: validation AUC, KS and Gini, kept columns per party, the
    scoring job's score PSI and largest CSI per party, and where the reports are."""
    guest = next(n for n, role in results.roles.items() if role == "guest")
    trained = results.trained[guest]
    validation = trained.get("validation") or {}
    card = trained.get("scorecard") or {}
    kept = {n: results.trained[n].get("scorecard") or {} for n in results.roles}
    total = sum(int(k.get("columns", 0)) for k in kept.values())
    lines = [
        f"scorecard: validation AUC {validation.get('auc', float('nan')):.4f}  "
        f"KS {validation.get('ks', float('nan')):.4f}  Gini {card.get('gini', float('nan')):.4f}"
        f"  ({validation.get('rows', '?')} rows); kept "
        f"{sum(int(k.get('kept', 0)) for k in kept.values())} of {total} columns ("
        + ", ".join(f"{n} {k.get('kept', '?')} of {k.get('columns', '?')}" for n, k in kept.items())
        + ")"
    ]
    stability = {n: results.scored[n].get("stability") or {} for n in results.roles}
    psi = stability[guest].get("score_psi")
    scored = results.scored[guest].get("scored", "?")
    lines.append(
        f"scored the same {scored} rows: score PSI "
        + ("n/a" if psi is None else f"{psi:.4f} ({psi_reading(psi)})")
        + "; largest CSI "
        + ", ".join(f"{n} {float(s.get('max_csi', 0.0)):.4f}" for n, s in stability.items())
    )
    if not any(results.reports.values()):
        lines.append(f"no {REPORT_FILE} in the parties' job folders")
        return lines
    lines.append("model reports (report.md beside each):")
    for name, paths in results.reports.items():
        if paths:
            lines.append(
                f"  {name:<10} {results.roles[name]:<6} " + ", ".join(str(p) for p in paths)
            )
    return lines


def psi_reading(psi: float) -> str:
    """The usual reading of a PSI or CSI (docs/scorecard.md)."""
    return "stable" if psi < 0.1 else "worth a look" if psi < 0.25 else "shifted"
