"""``lianmo job list``, ``job status --json`` and ``audit verify --json`` on output folders
written by the coordinator's own functions (no party needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lianmo.cli.main import main
from lianmo.coordinator.output import job_status, start_output, write_output, write_status
from lianmo.coordinator.run import JobReport
from lianmo.transport.control import JobStatusInfo
from tests.coordinator.test_coordinator_jobs import RESULTS
from tests.coordinator.test_coordinator_run import SPEC


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Three jobs: one succeeded, one failed at 'platform', one folder never started."""
    done, failed = tmp_path / "jobs" / "a-done", tmp_path / "jobs" / "b-failed"
    start_output(done, SPEC)
    statuses = {n: JobStatusInfo("j", n, "succeeded", checkpoint_round=4) for n in SPEC.party_names}
    write_output(done, JobReport(SPEC, RESULTS, 2.5))
    write_status(done, job_status(SPEC, "succeeded", statuses))
    start_output(failed, SPEC)
    write_status(
        failed, job_status(SPEC, "failed", {}, failed_party="platform", error="bad column")
    )
    (tmp_path / "jobs" / "c-empty").mkdir()
    return tmp_path / "jobs"


def test_job_list_shows_each_jobs_recorded_state(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["job", "list", "--root", str(root)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["JOB", "STATE", "UPDATED", "OUTPUT"]
    assert lines[1].split()[:2] == ["j", "succeeded"] and str(root / "a-done") in lines[1]
    assert "failed" in lines[2] and "(failed at 'platform')" in lines[2]
    assert len(lines) == 3  # the folder without job.json is no job
    code, out, _ = _run(["job", "list", "--root", str(root), "--json"], capsys)
    rows = json.loads(out)
    assert [(r["state"], r["failed_party"]) for r in rows] == [
        ("succeeded", None),
        ("failed", "platform"),
    ]
    assert rows[1]["error"] == "bad column" and rows[0]["output"] == str(root / "a-done")


def test_job_list_of_an_empty_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        _run(["job", "list", "--root", str(tmp_path)], capsys)[1] == f"no jobs under {tmp_path}\n"
    )
    assert json.loads(_run(["job", "list", "--root", str(tmp_path), "--json"], capsys)[1]) == []


def test_job_status_json_holds_the_recorded_state_and_the_metrics(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CA", "CERT", "KEY"):
        monkeypatch.delenv(f"LIANMO_{name}", raising=False)
    code, out, _ = _run(["job", "status", str(root / "a-done"), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["state"] == "succeeded" and data["asked"] is False and data["task"] == "train"
    assert data["parties"]["broker"]["checkpoint_round"] == 4
    assert data["last_common_round"] == 4
    assert data["metrics"] == json.loads((root / "a-done" / "metrics.json").read_text())
    data = json.loads(_run(["job", "status", str(root / "b-failed"), "--json"], capsys)[1])
    assert (data["state"], data["failed_party"], data["metrics"]) == ("failed", "platform", None)


def test_job_status_text_names_the_failed_party(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CA", "CERT", "KEY"):
        monkeypatch.delenv(f"LIANMO_{name}", raising=False)
    code, out, _ = _run(["job", "status", str(root / "b-failed")], capsys)
    assert code == 0
    assert "coordinator: failed (0s ago); failed at party 'platform': bad column" in out


def test_audit_verify_json_without_logs_is_still_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["audit", "verify", str(tmp_path), "--json"], capsys)
    assert code == 1 and json.loads(out) == {
        "ok": False,
        "error": json.loads(out)["error"],
        "jobs": [],
    }
    assert "no audit.jsonl under" in json.loads(out)["error"] and err.startswith("lianmo: error")
