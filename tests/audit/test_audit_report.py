"""``lianmo audit report`` on the logs of real jobs: what it shows adds up to what the logs
hold, tampering turns PASS into FAIL with the problem named, and log text stays inert."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from html import escape
from pathlib import Path

import pytest

from lianmo.audit.log import read_records
from lianmo.audit.report import render_html, render_markdown, write_report
from lianmo.audit.report_blocks import md_escape
from lianmo.audit.signing import key_id
from lianmo.audit.svg import line_chart, nice_ticks
from lianmo.audit.verify import JobVerdict, PartyLog, Problem, verify
from lianmo.cli.main import main
from lianmo.errors import AuditError
from lianmo.wire.steps import REGISTRY
from tests.audit.jobs import boost_spec, hand_to_auditors, predict_spec
from tests.node.inprocess_nodes import (
    ARBITER,
    GUEST,
    HOST,
    fixed_seeds,
    make_nodes,
    run_in_process,
    train_spec,
)

LR, PREDICT, SB = "report-1", "report-p", "sb-report"
PARTIES = (GUEST, HOST, ARBITER)
Record = dict[str, object]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """One state root holding an LR job, a predict job with its model, and a SecureBoost job."""
    path = tmp_path_factory.mktemp("report")
    nodes = make_nodes(path, shared_data, seed_for=fixed_seeds)
    run_in_process(nodes, train_spec(LR))
    run_in_process(nodes, predict_spec(PREDICT, LR))
    run_in_process(nodes, boost_spec(SB))
    return path


@pytest.fixture(scope="module")
def verdicts(root: Path) -> dict[str, JobVerdict]:
    return {v.job_id: v for v in verify([hand_to_auditors([root], root.with_name("handed"))])}


def _log(root: Path, party: str, job_id: str) -> list[Record]:
    return list(read_records(root / party / "jobs" / job_id / "audit.jsonl"))


def _svg(html: str, svg_id: str) -> str:
    found = re.search(rf'<svg [^>]*id="{svg_id}".*?</svg>', html, re.S)
    assert found, f"no <svg id={svg_id!r}> in the report"
    return found.group(0)


def _polylines(svg: str) -> dict[str, int]:
    """Points per series of a line chart."""
    return {
        name: len(points.split())
        for name, points in re.findall(
            r'<polyline [^>]*data-series="([^"]*)" points="([^"]*)"', svg
        )
    }


def _table(markdown: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header row starts with ``header``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_untouched_jobs_pass_and_show_every_party_and_key(
    root: Path, verdicts: dict[str, JobVerdict]
) -> None:
    for job_id in (LR, PREDICT, SB):
        verdict = verdicts[job_id]
        markdown, html = render_markdown(verdict), render_html(verdict)
        assert verdict.ok, [str(p) for p in verdict.problems]
        assert "**Verification: PASS**" in markdown and "Verification: PASS" in html
        assert "FAIL" not in markdown
        rows = {row[0]: row for row in _table(markdown, "| party | role |")}
        assert set(rows) == set(PARTIES)
        for party in PARTIES:
            start = _log(root, party, job_id)[0]
            kid = key_id(str(start["signing_key"]))
            assert rows[party][1] == start["role"] and rows[party][4] == f"`{kid}`"
            assert kid in html
            # every peer logged this party's key as the party itself announced it
            assert rows[party][8].count("✓") == len(PARTIES) - 1


def test_loss_curve_has_one_point_per_logged_round(
    root: Path, verdicts: dict[str, JobVerdict]
) -> None:
    lr_rounds = [r for r in _log(root, ARBITER, LR) if r["kind"] == "round"]
    sb_rounds = [r for r in _log(root, GUEST, SB) if r["kind"] == "round"]
    assert lr_rounds and sb_rounds
    assert _polylines(_svg(render_html(verdicts[LR]), "loss-curve")) == {"loss": len(lr_rounds)}
    assert _polylines(_svg(render_html(verdicts[SB]), "loss-curve")) == {
        "train_loss": len(sb_rounds),
        "validation_loss": len(sb_rounds),
    }
    # the table lists the same rounds with the same losses
    table = _table(render_markdown(verdicts[LR]), "| round |")
    assert [int(row[0]) for row in table] == [r["round"] for r in lr_rounds]
    assert all(
        math.isclose(float(row[2]), float(str(r["loss"])), rel_tol=1e-5)
        for row, r in zip(table, lr_rounds, strict=True)
    )


@pytest.mark.parametrize("job_id", [LR, SB])
def test_message_table_adds_up_to_the_logged_sizes(
    root: Path, verdicts: dict[str, JobVerdict], job_id: str
) -> None:
    sent: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for party in PARTIES:
        for r in _log(root, party, job_id):
            if r["kind"] == "message" and r["direction"] == "sent":
                sent[f"{party} → {r['peer']}"] += int(str(r["size"]))
                count[f"{party} → {r['peer']}"] += 1
    markdown = render_markdown(verdicts[job_id])
    *rows, total = _table(markdown, "| phase | sender → receiver |")
    shown: Counter[str] = Counter()
    shown_count: Counter[str] = Counter()
    for _phase, pair, messages, size in rows:
        shown[pair] += int(size.replace(",", ""))
        shown_count[pair] += int(messages)
    assert shown == sent and shown_count == count
    assert total == ["total", "", str(sum(count.values())), f"{sum(sent.values()):,}"]
    # one bar per (phase, sender, receiver) row of the table, in the volume chart
    volume = _svg(render_html(verdicts[job_id]), "message-volume")
    assert volume.count('class="bar"') == len(rows)
    assert all(f">{pair}</text>" in volume for pair in sent)  # legend


@pytest.mark.parametrize("job_id", [LR, SB])
def test_message_steps_table_names_every_step_as_the_registry_declares_it(
    root: Path, verdicts: dict[str, JobVerdict], job_id: str
) -> None:
    count: Counter[str] = Counter()
    for party in PARTIES:
        for r in _log(root, party, job_id):
            if r["kind"] == "message" and r["direction"] == "sent":
                count[str(r["tag"])] += 1
    rows = _table(render_markdown(verdicts[job_id]), "| step | from → to |")
    assert {row[0]: int(row[3]) for row in rows} == dict(count)
    for tag, who, carries, _n, _size in rows:
        step = REGISTRY.get(tag)
        assert step is not None
        assert (who, carries) == (md_escape(step.direction()), md_escape(step.carries))


def test_html_is_one_self_contained_page_without_scripts(
    verdicts: dict[str, JobVerdict],
) -> None:
    html = render_html(verdicts[LR])
    assert html.startswith("<!DOCTYPE html>") and html.count("<html") == 1
    assert "<script" not in html.lower()
    assert not re.search(r"\b(?:src|href)=", html)  # no images, style sheets or links to fetch
    assert set(re.findall(r"https?://[^\s\"]+", html)) == {"http://www.w3.org/2000/svg"}
    assert "Content-Security-Policy" in html


def test_predict_job_has_no_rounds_and_names_its_model_input(
    root: Path, verdicts: dict[str, JobVerdict]
) -> None:
    verdict = verdicts[PREDICT]
    markdown, html = render_markdown(verdict), render_html(verdict)
    assert "No rounds: a predict job trains nothing." in markdown
    assert 'id="loss-curve"' not in html and 'id="message-volume"' in html
    model = {row[0]: row for row in _table(markdown, "| party | model sha256 |")}
    for party in (GUEST, HOST):
        share = root / party / "jobs" / LR / "model.json"
        assert model[party][2] == f"`{hashlib.sha256(share.read_bytes()).hexdigest()}`"


def test_phases_and_wall_time_come_from_the_record_times(
    root: Path, verdicts: dict[str, JobVerdict]
) -> None:
    markdown = render_markdown(verdicts[LR])
    phases = _table(markdown, "| party | phase |")
    records = _log(root, GUEST, LR)
    named = [str(r["name"]) for r in records if r["kind"] == "phase"]
    assert [row[1] for row in phases if row[0] == GUEST] == ["(setup)", *named]
    wall = {row[0]: row for row in _table(markdown, "| party | job_start (UTC) |")}
    span = float(str(records[-1]["time"])) - float(str(records[0]["time"]))
    assert float(wall[GUEST][3]) == pytest.approx(span, abs=1e-3)
    assert wall[GUEST][4] == "succeeded"
    guest_phases = sum(float(row[3]) for row in phases if row[0] == GUEST)
    assert guest_phases == pytest.approx(span, abs=0.01)  # the phases tile the job


def _flip_a_payload_byte(root: Path, job_id: str) -> None:
    payloads = sorted((root / GUEST / "jobs" / job_id / "payloads").rglob("*"))
    victim = next(p for p in payloads if p.is_file() and p.stat().st_size > 100)
    data = bytearray(victim.read_bytes())
    data[50] ^= 0x01
    victim.write_bytes(bytes(data))


def test_tampered_payload_turns_the_report_to_fail_with_the_problem(
    root: Path, tmp_path: Path
) -> None:
    copy = hand_to_auditors([root], tmp_path / "copy")
    _flip_a_payload_byte(copy / root.name, LR)

    (verdict,) = [v for v in verify([copy]) if v.job_id == LR]
    assert not verdict.ok
    markdown, html = render_markdown(verdict), render_html(verdict)
    assert "**Verification: FAIL**" in markdown and "PASS" not in markdown
    assert 'class="verdict fail"' in html
    for problem in verdict.problems:
        assert f"<li>{escape(str(problem))}</li>" in html
        assert f"- {problem}" in markdown.replace("\\", "")  # Markdown escapes removed
    # what the logs hold is still shown
    assert 'id="loss-curve"' in html and 'id="message-volume"' in html


@pytest.mark.parametrize("tampered", [False, True], ids=["untouched", "tampered"])
def test_cli_report_is_written_and_exits_9_when_verification_fails(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tampered: bool
) -> None:
    copy, out = hand_to_auditors([root], tmp_path / "copy"), tmp_path / "audit-report"
    if tampered:
        _flip_a_payload_byte(copy / root.name, LR)

    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "report", str(copy), "--out", str(out)])

    assert exit_info.value.code == (AuditError.exit_code if tampered else 0)
    markdown = (out / "report.md").read_text()  # written either way
    assert (out / "report.html").is_file()
    verdicts = f"{LR} FAIL" if tampered else f"{LR} PASS"
    assert verdicts in markdown and f"{PREDICT} PASS" in markdown
    err = capsys.readouterr().err
    if tampered:
        assert err == (
            f"lianmo: error: wrote the report to {out}, but 1 of 3 job(s) failed "
            f"verification ({LR}); the report lists the problems\n"
        )
    else:
        assert err == ""


def test_write_report_covers_every_job_once(
    verdicts: dict[str, JobVerdict], tmp_path: Path
) -> None:
    out = tmp_path / "out" / "report"
    paths = write_report(list(verdicts.values()), out)
    assert paths == [out / "report.md", out / "report.html"]
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md"]  # no temp left
    markdown, html = (p.read_text() for p in paths)
    for job_id in (LR, PREDICT, SB):
        assert markdown.count(f"\n## Job {job_id}: ") == 1
        assert html.count(f"<h2>Job {job_id}: ") == 1
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # one page, so every chart gets its own id
    assert len(re.findall(r'<svg [^>]*class="loss-curve"', html)) == 2  # no chart for predict
    assert len(re.findall(r'<svg [^>]*class="message-volume"', html)) == 3
    assert "report-1 PASS, report-p PASS, sb-report PASS" in markdown


# ---- synthetic logs: what a hostile or broken log does to the report --------------------

EVIL = "<script>alert('x')</script> | **bold** [link](http://evil.example)"


def _records(party: str, *kinds: tuple[str, dict[str, object]]) -> list[Record]:
    return [
        {"seq": i, "party": party, "job_id": "j", "kind": kind, "time": 1.7e9 + i, **fields}
        for i, (kind, fields) in enumerate(kinds)
    ]


def _synthetic(tmp_path: Path) -> JobVerdict:
    guest = _records(
        GUEST,
        ("job_start", {"role": "guest", "task": "train", "dataset": EVIL, "signing_key": "zz"}),
        ("phase", {"name": EVIL}),
        ("message", {"direction": "sent", "peer": EVIL, "size": 10, "tag": "t"}),
        ("round", {"round": 0, "loss": 0.5}),
        ("round", {"round": 1, "loss": float("nan")}),
        ("round", {"round": 2, "loss": 0.25}),
        ("evaluation", {"on": "validation", "auc": 0.9, "note": EVIL}),
        ("job_end", {"state": "failed", "error": f"boom\n{EVIL}"}),
    )
    host = _records(
        HOST,
        ("job_start", {"role": "host", "task": "train", "signing_key": "00" * 32}),
        ("phase", {"name": "load"}),
    )  # cut short: no job_end
    logs = {
        GUEST: PartyLog(tmp_path / "g" / "audit.jsonl", guest, GUEST, "j"),
        HOST: PartyLog(tmp_path / "h" / "audit.jsonl", host, HOST, "j"),
    }
    problems = [Problem(GUEST, 3, tmp_path, f"was altered {EVIL}")]
    return JobVerdict("j", logs, problems, expected_parties=(GUEST, HOST, ARBITER))


def test_log_text_is_escaped_in_html(tmp_path: Path) -> None:
    html = render_html(_synthetic(tmp_path))
    assert "<script" not in html and not re.search(r"\b(?:src|href)=", html)
    assert escape(EVIL) in html
    # also inside the SVG charts, where the peer and phase names are labels
    assert escape(EVIL) in _svg(html, "message-volume")


def test_log_text_cannot_break_markdown(tmp_path: Path) -> None:
    markdown = render_markdown(_synthetic(tmp_path))
    assert "<script" not in markdown and "**bold**" not in markdown
    assert not re.search(r"(?<!\\)\]\(", markdown)  # no link: its brackets are escaped
    widths: list[int] = []
    for line in markdown.splitlines():
        if not line.startswith("|"):
            widths = []
            continue
        widths.append(len(re.findall(r"(?<!\\)\|", line)))  # unescaped pipes: cells + 1
        assert widths[-1] == widths[0], line


def test_failed_and_truncated_logs_render_what_is_there(tmp_path: Path) -> None:
    markdown = render_markdown(_synthetic(tmp_path))
    assert "**Verification: FAIL**" in markdown
    parties = {row[0]: row for row in _table(markdown, "| party | role |")}
    assert parties[ARBITER][2] == "(no log)"
    assert parties[GUEST][4] == "not a key" and parties[HOST][4] == "unsigned"
    wall = {row[0]: row for row in _table(markdown, "| party | job_start (UTC) |")}
    assert wall[GUEST][4].startswith("failed: boom ")
    assert wall[HOST][3] == "open (log ends)" and wall[HOST][4] == "no job_end"
    html = render_html(_synthetic(tmp_path))
    assert _polylines(_svg(html, "loss-curve")) == {"loss": 2}  # the NaN is left out


@pytest.mark.parametrize(
    ("lo", "hi"), [(0.0, 1.0), (0.3265, 0.6931), (0.0, 1_191_715.0), (5.0, 5.0), (-2.0, 3.0)]
)
def test_nice_ticks_cover_the_range_in_even_steps(lo: float, hi: float) -> None:
    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and 2 <= len(ticks) <= 12
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1


def test_line_chart_of_nothing_is_still_a_chart() -> None:
    svg = line_chart({"loss": []}, svg_id="x", title="t", x_title="round", y_title="loss")
    assert svg.startswith("<svg ") and svg.endswith("</svg>")
