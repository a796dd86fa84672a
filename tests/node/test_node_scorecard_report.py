"""The scorecard's model report at each party, from a real in-process scorecard job.

A training and a predict job run through three in-process nodes on the breast data
(real 2048-bit keys); each data party's job folder must then hold its report: the
guest's with every performance chart and its own columns, a host's with its own
columns only (no performance section, no event counts). The ``lianmo report`` command
rewrites them and refuses, naming the job, what it cannot report on.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lianmo.cli.main import main
from lianmo.config import JobSpec
from lianmo.models.metrics import auc
from lianmo.node.scorecard_report import (
    Validation,
    job_share,
    scoring_report,
    training_report,
    write_job_report,
)
from lianmo.node.scorecard_share import ScorecardShare
from lianmo.report import render_html
from tests.node.inprocess_nodes import GUEST, HOST, make_nodes, run_in_process, train_spec

TRAIN, PREDICT, LR = "sc-report", "sc-report-predict", "lr-report"
PERFORMANCE = ("roc", "ks", "lift", "gain", "score-distribution", "calibration", "score-bands")
SVG = re.compile(r"<svg\b")


@dataclass(frozen=True)
class Run:
    root: Path

    def job(self, party: str, job: str) -> Path:
        return self.root / party / "jobs" / job

    def html(self, party: str, job: str) -> str:
        return (self.job(party, job) / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Run:
    root = tmp_path_factory.mktemp("scorecard-report")
    nodes = make_nodes(root, shared_data)
    try:
        train = train_spec(TRAIN, type="scorecard", epochs=3, batch_size=320,
                           learning_rate=0.3, min_iv=0.1, top_k=12)  # fmt: skip
        assert run_in_process(nodes, train).results[GUEST]["scorecard"]["kept"] > 0
        predict = JobSpec.from_dict(
            {**json.loads(train_spec(PREDICT).to_json()), "task": "predict", "model_job": TRAIN}
        )
        run_in_process(nodes, predict)
        run_in_process(nodes, train_spec(LR))
    finally:
        for node in nodes.values():
            node.close()
    return Run(root)


def _chart_ids(html: str) -> set[str]:
    return set(re.findall(r'<svg [^>]*\bid="([^"]+)"', html))


def _titles(html: str, chart_id: str) -> str:
    """The text of a chart's title element (its SVG group ``<id>-title``)."""
    start = re.search(rf'<svg [^>]*\bid="{re.escape(chart_id)}"', html)
    assert start is not None, chart_id
    svg = html[start.start() :]
    root = ET.fromstring(svg[: svg.index("</svg>") + len("</svg>")])
    for element in root.iter():
        if element.get("id") == f"{chart_id}-title":
            return " ".join("".join(element.itertext()).split())
    raise AssertionError(f"chart {chart_id} has no title")


# ---- training ------------------------------------------------------------------------------


def test_the_guest_report_has_every_performance_chart_titled(run: Run) -> None:
    html = run.html(GUEST, TRAIN)
    share = json.loads((run.job(GUEST, TRAIN) / "model.json").read_text())
    ids = _chart_ids(html)

    # every performance chart, the IV chart and one WOE chart per own kept column
    kept = [c for c in share["columns"] if c["status"] == "kept"]
    assert set(PERFORMANCE) <= ids and 0 < len(kept) < len(share["columns"])
    assert len(SVG.findall(html)) == len(PERFORMANCE) + 1 + len(kept)
    assert _titles(html, "roc").startswith("ROC curve (AUC ")
    assert _titles(html, "ks").startswith("KS curve (KS ")
    woe_titles = {_titles(html, c) for c in ids if c.startswith("woe-")}
    assert woe_titles == {f"{c['name']}: WOE per bin (IV {c['iv']:.4f})" for c in kept}
    for chart in ids:
        _titles(html, chart)  # each one titled
    # Markdown twin: the same sections, its charts in report-charts/
    md = (run.job(GUEST, TRAIN) / "report.md").read_text(encoding="utf-8")
    assert "## Summary" in md and "## Scorecard points" in md and "## Column selection" in md
    assert "](report-charts/roc.svg)" in md
    assert (run.job(GUEST, TRAIN) / "report-charts" / "roc.svg").exists()


def test_the_guest_report_shows_its_validation_metrics(run: Run) -> None:
    text = (run.job(GUEST, TRAIN) / "validation.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    y = np.array([int(r["label"]) for r in rows])
    p = np.array([float(r["probability"]) for r in rows])
    result = json.loads((run.job(GUEST, TRAIN) / "result.json").read_text())
    html = run.html(GUEST, TRAIN)

    expected = auc(y, p)
    assert expected == pytest.approx(result["validation"]["auc"], abs=1e-5)
    assert f"<td>AUC</td><td class=num>{expected:.4f}</td>" in html
    assert f"<td>Gini</td><td class=num>{2 * expected - 1:.4f}</td>" in html
    assert f"{int(y.sum()):,} events in {len(y):,} rows" in html


def test_the_guest_report_has_its_points_table_with_the_base_points(run: Run) -> None:
    share = ScorecardShare.load(run.job(GUEST, TRAIN) / "model.json", party=GUEST, role="guest")
    table = share.points_table()
    html = run.html(GUEST, TRAIN)

    assert table.base is not None
    assert f"Base points (held by this party): {table.base:.2f}." in html
    for ch, column in zip(table.characteristics, share.kept, strict=True):
        for label, points in zip(column.labels, ch.points, strict=True):
            shown = f"{points:.2f}".lstrip("-") if round(points, 2) == 0 else f"{points:.2f}"
            assert f"<td>{ch.name}</td><td>{label}</td>" in html
            assert f"<td class=num>{shown}</td>" in html
    # every own column's status, dropped ones with the reason
    for column in share.columns:
        assert f"<td>{column.name}</td><td class=num>{column.iv:.4f}</td><td>" in html
        assert column.status in html


def test_the_host_report_has_no_performance_and_no_event_counts(run: Run) -> None:
    html = run.html(HOST, TRAIN)
    share = ScorecardShare.load(run.job(HOST, TRAIN) / "model.json", party=HOST, role="host")
    ids = _chart_ids(html)

    assert not ids & set(PERFORMANCE)
    report = training_report(share, None)
    kept = {f"woe-{i}" for i, c in enumerate(report.columns, 1) if c.status == "kept"}
    assert len(kept) == len(share.feature_names)
    assert ids == {"iv", *kept}
    for absent in ("Summary", "AUC", "Calibration", "Lift", "Base points", "base points"):
        assert absent not in html
    # its own bins: rows and WOE, events and event rate unknown ("—")
    first = share.columns[0]
    assert f"<td>{first.labels[0]}</td><td class=num>{int(first.counts[0]):,}</td>" in html
    assert "<td class=num>—</td><td class=num>—</td>" in html
    assert not re.search(r"\d%</td>", html)  # no event rate, no performance table
    assert "Scorecard points" in html and "Column selection" in html


def test_a_report_shows_nothing_its_holder_does_not_hold(run: Run) -> None:
    guest = ScorecardShare.load(run.job(GUEST, TRAIN) / "model.json", party=GUEST, role="guest")
    host = ScorecardShare.load(run.job(HOST, TRAIN) / "model.json", party=HOST, role="host")
    guest_html, host_html = run.html(GUEST, TRAIN), run.html(HOST, TRAIN)

    for column in host.columns:  # the guest's report: none of the host's bins
        assert f"{column.labels[1]}" not in guest_html
    for column in guest.columns:
        assert f"{column.labels[1]}" not in host_html
    with pytest.raises(Exception, match="host: its report shows no performance"):
        training_report(host, run.job(GUEST, TRAIN) / "validation.csv")


# ---- scoring -------------------------------------------------------------------------------


def test_the_scoring_reports_show_psi_at_the_guest_and_csi_everywhere(run: Run) -> None:
    for party in (GUEST, HOST):
        stability = json.loads((run.job(party, PREDICT) / "stability.json").read_text())
        html = run.html(party, PREDICT)
        ids = _chart_ids(html)
        assert "csi" in ids
        for item in stability["csi"]:
            assert f"<h4>{item['column']}: CSI {item['csi']:.4f}</h4>" in html
        if party == GUEST:
            assert "score-psi" in ids
            assert f"Population stability of the score (PSI {stability['psi']['psi']:.4f})" in html
        else:
            assert "psi" not in stability and "score-psi" not in ids


def test_a_malformed_stability_file_is_named(run: Run) -> None:
    share = job_share(run.job(HOST, PREDICT), HOST)
    with pytest.raises(Exception, match="stability file is malformed"):
        scoring_report(share, {"csi": [{"column": share.feature_names[0]}]})
    with pytest.raises(Exception, match="which the model share of party 'platform' does not"):
        scoring_report(share, {"csi": [{"column": "nope"}]})


# ---- the command ---------------------------------------------------------------------------


def _party_toml(run: Run, party: str) -> Path:
    config = run.root / f"{party}.toml"
    config.write_text(
        f'name = "{party}"\nlisten = "127.0.0.1:0"\nstate_dir = "{run.root / party}"\n'
        '[tls]\ncert = "c.pem"\nkey = "c.key"\nca = "ca.pem"\n',
        encoding="utf-8",
    )
    return config


def _cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["report", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.mark.parametrize(("party", "job"), [(GUEST, TRAIN), (HOST, TRAIN), (GUEST, PREDICT)])
def test_the_command_writes_the_report(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str], party: str, job: str
) -> None:
    code, out, err = _cli(capsys, "--config", _party_toml(run, party), job, "--out", tmp_path)

    assert (code, err) == (0, "")
    assert out.splitlines() == [str(tmp_path / "report.html"), str(tmp_path / "report.md")]
    written = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert written == run.html(party, job)  # the same bytes as the job wrote
    assert (tmp_path / "report-charts" / "csi.svg" if job == PREDICT else tmp_path
            / "report-charts" / "iv.svg").exists()  # fmt: skip


def test_the_command_rewrites_into_the_job_folder(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run.job(HOST, TRAIN) / "report.html"
    before = report.read_bytes()
    report.unlink()

    code, out, _ = _cli(capsys, "--config", _party_toml(run, HOST), run.job(HOST, TRAIN))

    assert code == 0 and out.splitlines()[0] == str(report)
    assert report.read_bytes() == before


@pytest.mark.parametrize(
    ("party", "job", "code", "message"),
    [
        (GUEST, "nope", 2, "party 'broker' has no job 'nope'"),
        (GUEST, LR, 2, f"job '{LR}' of party 'broker' is not a scorecard job (its model share"),
        ("arbiter", TRAIN, 2, "party 'arbiter' is the arbiter of job 'sc-report'"),
    ],
)
def test_the_command_refuses_what_it_cannot_report(
    run: Run,
    capsys: pytest.CaptureFixture[str],
    party: str,
    job: str,
    code: int,
    message: str,
) -> None:
    got, out, err = _cli(capsys, "--config", _party_toml(run, party), job)

    assert (got, out) == (code, "")
    assert message in err


def test_write_job_report_names_what_the_folder_lacks(run: Run, tmp_path: Path) -> None:
    share = job_share(run.job(GUEST, TRAIN), GUEST)
    empty = tmp_path / "job"
    empty.mkdir()
    with pytest.raises(Exception, match="holds neither a model share"):
        write_job_report(empty, share)
    (empty / "model.json").write_bytes(share.to_json())
    with pytest.raises(Exception, match="cannot read the validation rows"):
        write_job_report(empty, share)
    assert Validation.read(run.job(GUEST, TRAIN) / "validation.csv").y.size > 0
    assert render_html(training_report(share, None)).count("<svg") == 1 + len(share.kept)


def test_a_report_that_fails_leaves_the_job_whole(
    run: Run,
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("lianmo.node.scorecard_job.write_job_report", broken)
    nodes = make_nodes(run.root, shared_data)
    job = "sc-report-broken"
    spec = JobSpec.from_dict(
        {**json.loads(train_spec(job).to_json()), "task": "predict", "model_job": TRAIN}
    )
    try:
        with caplog.at_level("WARNING", logger="lianmo.node"):
            report = run_in_process(nodes, spec)
    finally:
        for node in nodes.values():
            node.close()

    assert report.results[GUEST]["scored"] > 0
    assert (run.job(GUEST, job) / "scores.csv").exists()
    assert not (run.job(GUEST, job) / "report.html").exists()
    warnings = [r.getMessage() for r in caplog.records if "model report" in r.getMessage()]
    assert len(warnings) == 2  # the guest and the host
    assert all("OSError: disk full" in w and "lianmo report" in w for w in warnings)
