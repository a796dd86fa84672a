"""Attacks on ``lianmo audit verify`` (issue 18): a party's log held back, the job spec
altered, timestamps moved, a log rewritten and re-signed by its own party after the job,
secrets handed over with the logs. Each is a real attempt on the logs of real jobs, and
verify must fail naming the party (or refuse, naming the file)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lianmo.audit.log import canonical, read_records, record_digest, signed_bytes
from lianmo.audit.signing import SigningKey
from lianmo.audit.verify import JobVerdict, Problem, verify
from lianmo.cli.main import main
from lianmo.errors import AuditError
from tests.audit.jobs import AuditedJobs, hand_to_auditors
from tests.audit.test_audit_verify import Record, _rewrite
from tests.node.inprocess_nodes import ARBITER, GUEST, HOST

JOB = "lr-b"  # signed with the parties' current keys, which the dishonest party re-signs with


def _verdict(jobs: AuditedJobs, job_id: str = JOB) -> JobVerdict:
    (verdict,) = [v for v in verify([jobs.handed()]) if v.job_id == job_id]
    return verdict


def _of(verdict: JobVerdict, party: str) -> list[Problem]:
    return [p for p in verdict.problems if p.party == party]


def _key(jobs: AuditedJobs, party: str) -> SigningKey:
    return SigningKey.load(jobs.configs[party].signing_key_path, party=party)


def _spec_file(jobs: AuditedJobs, party: str) -> Path:
    start = next(read_records(jobs.job_dir(party, JOB) / "audit.jsonl"))
    return jobs.job_dir(party, JOB) / "payloads" / str(start["spec_sha256"])


# ---- every party's log ------------------------------------------------------------------------


def test_a_withheld_log_is_named_even_with_every_stored_spec_removed(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    """Without the spec, the peers' own message records still say who took part."""
    jobs = audited_jobs.copy(tmp_path / "t")
    shutil.rmtree(jobs.job_dir(ARBITER, JOB))
    for party in (GUEST, HOST):
        _spec_file(jobs, party).unlink()
    verdict = _verdict(jobs)
    (missing,) = _of(verdict, ARBITER)
    assert "no log of this party was found, but 'broker' logged exchanging messages" in (
        missing.text
    )
    for party in (GUEST, HOST):
        (problem,) = _of(verdict, party)
        assert problem.seq == 0 and "the job spec it ran: payload" in problem.text
        assert "is missing from the store" in problem.text


def test_a_withheld_log_is_named_when_the_spec_is_edited_to_leave_its_party_out(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    shutil.rmtree(jobs.job_dir(ARBITER, JOB))
    for party in (GUEST, HOST):
        path = _spec_file(jobs, party)
        spec = json.loads(path.read_bytes())
        spec["parties"] = [p for p in spec["parties"] if p["name"] != ARBITER]
        path.write_bytes(canonical(spec))
    verdict = _verdict(jobs)
    assert not verdict.ok
    assert any("no log of this party was found" in p.text for p in _of(verdict, ARBITER))
    for party in (GUEST, HOST):
        assert any(
            p.seq == 0 and "the job spec it ran" in p.text and "was altered" in p.text
            for p in _of(verdict, party)
        )


def test_an_altered_spec_file_fails_verification(audited_jobs: AuditedJobs, tmp_path: Path) -> None:
    """A spec edited in one store (here: a larger intersection minimum) is named."""
    jobs = audited_jobs.copy(tmp_path / "t")
    path = _spec_file(jobs, HOST)
    spec = json.loads(path.read_bytes())
    spec["min_intersection"] = int(spec.get("min_intersection", 1)) + 100
    path.write_bytes(canonical(spec))
    verdict = _verdict(jobs)
    (problem,) = verdict.problems
    assert (problem.party, problem.seq) == (HOST, 0)
    assert f"the job spec it ran: payload {path.name[:16]}... in the store" in problem.text
    assert "was altered" in problem.text
    assert verdict.spec() is not None  # the other parties' copies still say what ran


# ---- timestamps -------------------------------------------------------------------------------


def test_a_timestamp_moved_and_re_signed_breaks_the_chain(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    """The arbiter re-dates one record and signs it again: the hash covers the time."""
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(ARBITER, JOB) / "audit.jsonl"
    records = list(read_records(log))
    k = next(i for i, r in enumerate(records) if r["kind"] == "round")
    records[k]["time"] = float(str(records[k]["time"])) + 0.5
    records[k]["sig"] = _key(jobs, ARBITER).sign(signed_bytes(records[k]))
    log.write_text("".join(canonical(r).decode() + "\n" for r in records))
    (problem,) = _verdict(jobs).problems
    assert (problem.party, problem.seq) == (ARBITER, k)
    assert "was altered: its content does not match its hash" in problem.text


def test_a_timestamp_moved_back_is_caught_even_in_a_re_chained_log(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(GUEST, JOB) / "audit.jsonl"
    k = 20

    def backdate(records: list[Record]) -> list[Record]:
        records[k]["time"] = float(str(records[k - 1]["time"])) - 60
        return records

    _rewrite(log, _key(jobs, GUEST), backdate)
    problem = _of(_verdict(jobs), GUEST)[0]
    assert problem.seq == k
    assert "before the record preceding it" in problem.text and "timestamp was moved" in (
        problem.text
    )


def test_timestamps_moved_forward_in_order_are_caught_by_the_peers_anchors(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    """Re-dating the second half of the job by an hour keeps the order, not the chain."""
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(GUEST, JOB) / "audit.jsonl"
    half = len(log.read_text().splitlines()) // 2

    def shift(records: list[Record]) -> list[Record]:
        for r in records[half:]:
            r["time"] = float(str(r["time"])) + 3600
        return records

    _rewrite(log, _key(jobs, GUEST), shift)
    (problem,) = _verdict(jobs).problems
    assert problem.party == GUEST and int(str(problem.seq)) > half
    assert "which is no record of this log: the log was rewritten after the job" in problem.text


# ---- anchors ------------------------------------------------------------------------------------


def test_an_arbiter_rewriting_a_logged_loss_is_caught_by_the_heads_its_peers_logged(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    """A consistent rewrite: edited, re-chained, re-signed with the arbiter's own key, the
    new head republished in result.json. Chain, signatures and messages all hold."""
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(ARBITER, JOB) / "audit.jsonl"
    rounds = [r for r in read_records(log) if r["kind"] == "round"]

    def lower_the_loss(records: list[Record]) -> list[Record]:
        records[int(str(rounds[1]["seq"]))]["loss"] = 0.1
        return records

    _rewrite(log, _key(jobs, ARBITER), lower_the_loss)
    verdict = _verdict(jobs)
    (problem,) = verdict.problems
    assert problem.party == ARBITER
    first_send_after = next(
        r
        for r in read_records(log)
        if r["seq"] > rounds[1]["seq"] and r["kind"] == "message" and r["direction"] == "sent"
    )
    assert problem.seq == first_send_after["seq"]
    assert f"round {first_send_after['round']} to '{first_send_after['peer']}'" in problem.text
    assert "which is no record of this log: the log was rewritten after the job" in problem.text


def test_a_received_record_without_the_senders_head_is_named(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    """A party cannot drop the heads it logged (to shield a peer's rewrite) unnoticed."""
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(HOST, JOB) / "audit.jsonl"
    k = next(
        int(str(r["seq"]))
        for r in read_records(log)
        if r["kind"] == "message" and r["direction"] == "received"
    )

    def drop_head(records: list[Record]) -> list[Record]:
        del records[k]["peer_head"]
        return records

    _rewrite(log, _key(jobs, HOST), drop_head)
    problem = _of(_verdict(jobs), HOST)[0]
    assert problem.seq == k and "without the sender's audit head" in problem.text


# ---- secrets ------------------------------------------------------------------------------------


def test_verify_refuses_a_state_root_holding_seeds_and_signing_keys(
    audited_jobs: AuditedJobs,
) -> None:
    with pytest.raises(AuditError, match="refusing to verify") as info:
        verify([audited_jobs.root])
    text = str(info.value)
    assert "drbg.seed (a party's DRBG seed" in text and ".signing.key (a key file)" in text
    assert "never be handed to auditors" in text


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [
        ("drbg.seed", b"\x01" * 32, "a party's DRBG seed"),
        ("tls.key", b"anything", "a key file"),
        ("notes.txt", b"x\n-----BEGIN EC PRIVATE KEY-----\nMHc\n", "a PEM private key"),
    ],
    ids=["seed", "key-file", "pem-under-another-name"],
)
def test_verify_refuses_a_handed_folder_with_one_secret_in_it(
    audited_jobs: AuditedJobs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    what: str,
) -> None:
    handed = hand_to_auditors([audited_jobs.root], tmp_path / "handed")
    assert all(v.ok for v in verify([handed]))
    secret = handed / audited_jobs.root.name / HOST / "jobs" / JOB / name
    secret.write_bytes(content)
    with pytest.raises(AuditError, match=f"1 secret file.*{secret} \\({what}"):
        verify([handed])
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "verify", str(handed), "--json"])
    assert exit_info.value.code == AuditError.exit_code
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["jobs"] == [] and str(secret) in out["error"]


def test_rechained_records_hash_their_time(tmp_path: Path) -> None:
    """The digest the attacks above re-chain with covers the record's time."""
    record: Record = {"format": "lianmo.audit/v3", "seq": 0, "kind": "x", "time": 1.0}
    moved = {**record, "time": 2.0}
    assert record_digest(record) != record_digest(moved)
    legacy = {**record, "format": "lianmo.audit/v2"}
    assert record_digest(legacy) == record_digest({**legacy, "time": 2.0})
