"""Retention on real audited jobs: a pruned job verifies with a note and refuses replay; a
payload missing without a valid prune statement, or under an altered, forged or moved
statement, fails verification; a dry run and a job too young remove nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lianmo.audit.pruned import STATEMENT_NAME, read_statement
from lianmo.audit.report import render_markdown
from lianmo.audit.signing import SigningKey
from lianmo.audit.store import PayloadStore
from lianmo.audit.verify import JobVerdict, verify
from lianmo.cli.main import main
from lianmo.errors import AuditError
from lianmo.node.job_secrets import seed_path
from lianmo.node.replay import replay_job
from lianmo.node.retention import PruneResult, prune_jobs
from tests.audit.jobs import PARTIES, AuditedJobs, old_key_path
from tests.node.inprocess_nodes import GUEST, HOST

KEPT_FILES = ("audit.jsonl", "result.json", "spec.json", "model.json")


@pytest.fixture(scope="module")
def pruned(audited_jobs: AuditedJobs, tmp_path_factory: pytest.TempPathFactory) -> AuditedJobs:
    """A copy of the audited jobs with lr-b (signed with the parties' current keys) pruned."""
    jobs = audited_jobs.copy(tmp_path_factory.mktemp("pruned") / "root")
    for party in PARTIES:
        config = jobs.configs[party]
        signer = SigningKey.load(config.signing_key_path, party=party)
        (result,) = prune_jobs(config, older_than=0, signer=signer, job_ids=["lr-b"])
        assert result.pruned, result.reason
    return jobs


def _verdict(jobs: AuditedJobs, job_id: str) -> JobVerdict:
    (verdict,) = [v for v in verify([jobs.handed()]) if v.job_id == job_id]
    return verdict


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _signer(jobs: AuditedJobs, party: str) -> SigningKey:
    return SigningKey.load(jobs.configs[party].signing_key_path, party=party)


def test_a_pruned_job_keeps_its_log_and_outputs_and_loses_inbox_checkpoints_and_payloads(
    audited_jobs: AuditedJobs, pruned: AuditedJobs
) -> None:
    for party in PARTIES:
        before = _digests(audited_jobs.job_dir(party, "lr-b"))
        after = _digests(pruned.job_dir(party, "lr-b"))
        for name in KEPT_FILES:
            assert after.get(name) == before.get(name), (party, name)
        assert not any(k.startswith(("inbox/", "checkpoints/")) for k in after)
        assert any(k.startswith("checkpoints/") for k in before)
        statement = read_statement(pruned.job_dir(party, "lr-b"))
        assert statement is not None
        (spec_digest,) = statement.kept
        assert [k for k in after if k.startswith("payloads/")] == [f"payloads/{spec_digest}"]
        removed = {k.removeprefix("payloads/") for k in before if k.startswith("payloads/")}
        assert set(statement.removed) == removed - {spec_digest}
        freed = sum(
            (audited_jobs.job_dir(party, "lr-b") / k).stat().st_size
            for k in before
            if k not in after
        )
        assert statement.bytes_freed == freed > 0
        assert seed_path(pruned.configs[party], "lr-b").exists()  # the seed is kept
        # the other jobs were not named, so they are untouched
        assert _digests(pruned.job_dir(party, "lr-a")) == _digests(
            audited_jobs.job_dir(party, "lr-a")
        )


def test_a_pruned_job_verifies_with_a_note_that_replay_is_no_longer_possible(
    pruned: AuditedJobs,
) -> None:
    verdict = _verdict(pruned, "lr-b")
    assert verdict.ok, verdict.problems
    assert len(verdict.notes) == len(PARTIES)
    for note in verdict.notes:
        assert "payloads pruned on" in note and "replay is no longer possible" in note
    assert "Retention: party 'broker': payloads pruned on" in render_markdown(verdict)
    assert _verdict(pruned, "lr-a").notes == []


def test_the_verify_command_prints_the_note_and_its_json_carries_it(
    pruned: AuditedJobs, capsys: pytest.CaptureFixture[str]
) -> None:
    handed = pruned.handed()
    with pytest.raises(SystemExit) as info:
        main(["audit", "verify", str(handed)])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "PASS job 'lr-b'" in out
    assert "note: party 'platform': payloads pruned on" in out
    with pytest.raises(SystemExit):
        main(["audit", "verify", "--json", str(handed)])
    report = json.loads(capsys.readouterr().out)
    jobs = {j["job_id"]: j for j in report["jobs"]}
    assert report["ok"] and len(jobs["lr-b"]["notes"]) == 3 and jobs["lr-a"]["notes"] == []


@pytest.mark.parametrize("party", [GUEST, HOST])
def test_replay_refuses_a_pruned_job_saying_why(pruned: AuditedJobs, party: str) -> None:
    with pytest.raises(AuditError, match="was pruned on .*replay is no longer possible"):
        replay_job(pruned.configs[party], pruned.job_dir(party, "lr-b"))


def test_a_payload_missing_without_a_prune_statement_fails_verification(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "root")
    store = PayloadStore(jobs.job_dir(HOST, "lr-b") / "payloads")
    victim = next(p for p in sorted(store.directory.iterdir()))
    records = (jobs.job_dir(HOST, "lr-b") / "audit.jsonl").read_text()
    if f'"spec_payload":"{victim.name}"' in records:
        victim = sorted(store.directory.iterdir())[1]
    victim.unlink()
    verdict = _verdict(jobs, "lr-b")
    assert not verdict.ok and verdict.notes == []
    problem = verdict.problems[0]
    assert problem.party == HOST and "is missing from the store" in problem.text
    assert "pruned.json" in problem.text


def test_a_pruned_job_handed_over_without_its_statement_fails_verification(
    pruned: AuditedJobs,
) -> None:
    handed = pruned.handed()
    (handed / "root" / GUEST / "jobs" / "lr-b" / STATEMENT_NAME).unlink()
    (verdict,) = [v for v in verify([handed]) if v.job_id == "lr-b"]
    assert not verdict.ok
    assert verdict.problems[0].party == GUEST
    assert "is missing from the store" in verdict.problems[0].text


def _edit_statement(path: Path, **changes: object) -> None:
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    "change",
    ["pruned_at", "removed", "signing_key"],
)
def test_an_altered_prune_statement_fails_verification(pruned: AuditedJobs, change: str) -> None:
    handed = pruned.handed()
    path = handed / "root" / HOST / "jobs" / "lr-b" / STATEMENT_NAME
    raw = json.loads(path.read_text())
    new = {
        "pruned_at": raw["pruned_at"] + 86400 * 400,  # claim it was pruned a year later
        "removed": [*raw["removed"], raw["kept"][0]],  # cover for a removed job spec too
        "signing_key": SigningKey.generate().public_hex,
    }[change]
    _edit_statement(path, **{change: new})
    (verdict,) = [v for v in verify([handed]) if v.job_id == "lr-b"]
    assert not verdict.ok
    texts = [p.text for p in verdict.problems if p.party == HOST]
    assert any("has no valid signature by the key the log is signed with" in t for t in texts)
    assert any("is missing from the store" in t for t in texts)  # its payloads count as missing


def test_a_statement_forged_under_another_key_fails_verification(pruned: AuditedJobs) -> None:
    handed = pruned.handed()
    folder = handed / "root" / HOST / "jobs" / "lr-b"
    statement = read_statement(folder)
    assert statement is not None
    forged = statement.signed(SigningKey.generate())
    (folder / STATEMENT_NAME).write_bytes(forged.to_json())
    (verdict,) = [v for v in verify([handed]) if v.job_id == "lr-b"]
    assert not verdict.ok
    assert "no valid signature" in verdict.problems[0].text


def test_a_statement_moved_to_another_job_fails_verification(
    pruned: AuditedJobs, tmp_path: Path
) -> None:
    """lr-a's payloads removed by hand, under lr-b's (valid) statement copied beside it."""
    jobs = pruned.copy(tmp_path / "root")
    source, target = jobs.job_dir(GUEST, "lr-b"), jobs.job_dir(GUEST, "lr-a")
    (target / STATEMENT_NAME).write_bytes((source / STATEMENT_NAME).read_bytes())
    verdict = _verdict(jobs, "lr-a")
    assert not verdict.ok
    assert "statement for job 'lr-b', not for this log" in verdict.problems[0].text


def test_a_dry_run_and_a_job_too_young_remove_nothing(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "root")
    config = jobs.configs[GUEST]
    before = _digests(config.state_dir)
    dry = prune_jobs(config, older_than=0, signer=_signer(jobs, GUEST), dry_run=True)
    young = prune_jobs(config, older_than=30 * 86400, signer=_signer(jobs, GUEST))
    assert _digests(config.state_dir) == before
    by_id = {r.job_id: r for r in dry}
    assert by_id["lr-b"].pruned and by_id["lr-b"].dry_run and by_id["lr-b"].bytes_freed > 0
    assert by_id["lr-b"].describe().startswith("would prune job 'lr-b' (succeeded, ended ")
    assert all(not r.pruned and "less than 30 days ago" in r.reason for r in young)


def test_a_job_signed_before_a_key_rotation_needs_its_old_key(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "root")
    config = jobs.configs[HOST]
    (kept,) = prune_jobs(config, older_than=0, signer=_signer(jobs, HOST), job_ids=["lr-a"])
    assert not kept.pruned and "rotated its signing key" in kept.reason
    assert not (jobs.job_dir(HOST, "lr-a") / STATEMENT_NAME).exists()
    old = SigningKey.load(old_key_path(config), party=HOST)
    (done,) = prune_jobs(config, older_than=0, signer=old, job_ids=["lr-a"])
    assert done.pruned
    assert "payloads pruned on" in _verdict(jobs, "lr-a").notes[0]


def _toml(jobs: AuditedJobs, party: str, extra: str = "") -> Path:
    config = jobs.configs[party]
    path = jobs.root / f"{party}.toml"
    path.write_text(
        f'name = "{party}"\nlisten = "127.0.0.1:0"\nstate_dir = "{config.state_dir}"\n'
        f'[tls]\ncert = "{config.cert}"\nkey = "{config.key}"\nca = "{config.ca}"\n{extra}'
    )
    return path


def test_the_prune_command_prints_what_it_removed_per_job(
    audited_jobs: AuditedJobs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = audited_jobs.copy(tmp_path / "root")
    path = _toml(jobs, GUEST, "[retention]\nprune_after_days = 0\n")
    with pytest.raises(SystemExit) as info:
        main(["state", "prune", "--config", str(path), "--dry-run"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "would prune job 'lr-b' (succeeded, ended " in out
    assert "kept job 'lr-a': its log is signed with key" in out
    assert "(dry run: nothing removed)" in out
    assert not (jobs.job_dir(GUEST, "lr-b") / STATEMENT_NAME).exists()
    with pytest.raises(SystemExit) as info:
        main(["state", "prune", "--config", str(path), "lr-b"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "pruned job 'lr-b'" in out and "inbox " in out and "freed" in out
    assert "pruned 1 of 1 job(s) of party 'broker'" in out
    assert (jobs.job_dir(GUEST, "lr-b") / STATEMENT_NAME).exists()
    with pytest.raises(SystemExit):
        main(["state", "prune", "--config", str(path), "lr-b"])
    assert "kept job 'lr-b': already pruned on " in capsys.readouterr().out


def test_the_prune_command_wants_an_age_or_job_names(
    audited_jobs: AuditedJobs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = audited_jobs.copy(tmp_path / "root")
    path = _toml(jobs, HOST)
    with pytest.raises(SystemExit) as info:
        main(["state", "prune", "--config", str(path)])
    assert info.value.code == 2
    assert "--older-than 30d" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["state", "prune", "--config", str(path), "--older-than", "soon"])
    assert info.value.code == 2
    assert "'soon' is not an age" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["state", "prune", "--config", str(path), "no-such-job"])
    assert "has no job 'no-such-job'" in capsys.readouterr().err


def test_prune_results_describe_themselves() -> None:
    kept = PruneResult("j", False, "it is not finished")
    assert kept.describe() == "kept job 'j': it is not finished"
