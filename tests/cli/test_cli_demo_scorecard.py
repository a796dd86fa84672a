"""`lianmo demo --workflow scorecard`: its two job specs, its closing lines, and the whole
workflow end to end on three real party processes over mutual TLS (2048-bit keys)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lianmo.cli.demo_scorecard import (
    SCORE_FOLDER,
    SCORE_JOB,
    TRAIN_JOB,
    DemoResults,
    score_spec,
    scorecard_spec,
    summary_lines,
)
from lianmo.config import JobSpec, ScorecardSpec

ADDRESSES = {"broker": "127.0.0.1:1", "platform": "127.0.0.1:2", "arbiter": "127.0.0.1:3"}


def test_the_training_spec_is_the_default_scorecard_with_the_demos_parties() -> None:
    spec = JobSpec.from_dict(scorecard_spec(ADDRESSES, epochs=3, key_bits=3072))
    assert spec.job_id == TRAIN_JOB and spec.task == "train"
    assert spec.model == ScorecardSpec(epochs=3, key_bits=3072)  # every other setting default
    assert [(p.name, p.role) for p in spec.parties] == [
        ("broker", "guest"),
        ("platform", "host"),
        ("arbiter", "arbiter"),
    ]
    assert spec.party("platform").address == "127.0.0.1:2"


def test_the_scoring_spec_scores_the_same_tables_with_the_trained_shares() -> None:
    train = JobSpec.from_dict(scorecard_spec(ADDRESSES, epochs=1, key_bits=2048))
    spec = JobSpec.from_dict(score_spec(ADDRESSES))
    assert (spec.task, spec.model_job) == ("predict", TRAIN_JOB)
    assert spec.arbiter is None  # scoring needs no key holder
    assert [(p.name, p.dataset) for p in spec.parties] == [
        (p.name, p.dataset) for p in train.parties if p.dataset
    ]


def _results(reports: dict[str, tuple[Path, ...]]) -> DemoResults:
    return DemoResults(
        roles={"broker": "guest", "platform": "host"},
        trained={
            "broker": {
                "validation": {"auc": 0.76789, "ks": 0.41852, "rows": 4926},
                "scorecard": {"gini": 0.53578, "columns": 5, "kept": 1, "host_columns": 18},
            },
            "platform": {"scorecard": {"columns": 18, "kept": 13}},
        },
        scored={
            "broker": {"scored": 25186, "stability": {"score_psi": 0.31, "max_csi": 0.0002}},
            "platform": {"stability": {"max_csi": 0.1234, "columns_over_0.25": 0}},
        },
        reports=reports,
    )


def test_the_closing_lines_show_each_figure_from_the_parties_results() -> None:
    report = Path("out/parties/broker/jobs") / TRAIN_JOB / "report.html"
    lines = summary_lines(_results({"broker": (report,), "platform": ()}))
    assert lines[0] == (
        "scorecard: validation AUC 0.7679  KS 0.4185  Gini 0.5358  (4926 rows); kept 14 of 23 "
        "columns (broker 1 of 5, platform 13 of 18)"
    )
    assert lines[1] == (
        "scored the same 25186 rows: score PSI 0.3100 (shifted); largest CSI broker 0.0002, "
        "platform 0.1234"
    )
    assert lines[2:] == ["model reports (report.md beside each):", f"  broker     guest  {report}"]


def test_the_closing_lines_say_when_no_party_wrote_a_report() -> None:
    lines = summary_lines(_results({"broker": (), "platform": ()}))
    assert lines[-1] == "no report.html in the parties' job folders"


@pytest.mark.parametrize(
    ("psi", "reading"), [(0.0, "stable"), (0.1, "worth a look"), (0.25, "shifted")]
)
def test_psi_readings(psi: float, reading: str) -> None:
    from lianmo.cli.demo_scorecard import psi_reading

    assert psi_reading(psi) == reading


def test_the_scorecard_demo_end_to_end(tmp_path: Path) -> None:
    """Real nodes, one epoch (about a minute on 2 cores): both jobs, the printed figures
    are the parties' own, the scoring job's files are where the docs say."""
    output = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "lianmo.cli.main", "demo", "--workflow", "scorecard"]
        + ["--epochs", "1", "--output", str(output)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = output / "parties" / "broker" / "jobs"
    trained = json.loads((jobs / TRAIN_JOB / "result.json").read_text())
    scored = json.loads((jobs / SCORE_JOB / "result.json").read_text())
    host = json.loads((output / "parties/platform/jobs" / TRAIN_JOB / "result.json").read_text())
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["validation"]["auc"] == trained["validation"]["auc"] > 0.75
    assert json.loads((output / SCORE_FOLDER / "metrics.json").read_text())["task"] == "predict"
    found = re.search(
        r"scorecard: validation AUC (\S+)  KS (\S+)  Gini (\S+) .* kept (\d+) of (\d+) columns",
        done.stdout,
    )
    assert found, done.stdout
    card = trained["scorecard"]
    assert float(found[1]) == round(trained["validation"]["auc"], 4)
    assert float(found[2]) == round(trained["validation"]["ks"], 4)
    assert float(found[3]) == round(card["gini"], 4)
    assert int(found[4]) == card["kept"] + host["scorecard"]["kept"] > 0
    assert int(found[5]) == card["columns"] + card["host_columns"] == 23
    psi = scored["stability"]["score_psi"]
    assert f"score PSI {psi:.4f} (stable)" in done.stdout  # the same rows: no shift
    assert (jobs / SCORE_JOB / "scores.csv").read_text().startswith("id,probability,score,reason_1")
    assert (output / "parties/platform/jobs" / SCORE_JOB / "stability.json").exists()
    for path in re.findall(r"\S+/report\.html", done.stdout):
        assert (tmp_path / path.rstrip(",")).exists()
