"""``lianmo audit verify`` on real job logs: untouched logs pass, each kind of tampering is
caught and the first bad record is named (party, sequence number, what is wrong)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lianmo.audit.log import GENESIS, canonical, read_records, record_digest, signed_bytes
from lianmo.audit.signing import SigningKey, key_id
from lianmo.audit.store import PayloadStore
from lianmo.audit.verify import JobVerdict, Problem, verify
from lianmo.cli.main import main
from tests.audit.jobs import PARTIES, AuditedJobs
from tests.node.inprocess_nodes import ARBITER, GUEST, HOST

Record = dict[str, object]


def _verdict(jobs: AuditedJobs, job_id: str) -> JobVerdict:
    (verdict,) = [v for v in verify([jobs.handed()]) if v.job_id == job_id]
    return verdict


def _first(verdict: JobVerdict) -> Problem:
    assert verdict.problems, "tampering went unnoticed"
    return verdict.problems[0]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _message_seq(path: Path, **match: object) -> int:
    for r in read_records(path):
        if r["kind"] == "message" and all(r.get(k) == v for k, v in match.items()):
            return int(str(r["seq"]))
    raise AssertionError(f"no message {match} in {path}")


def _rewrite(
    path: Path,
    key: SigningKey,
    edit: Callable[[list[Record]], list[Record]],
    *,
    republish: bool = True,
) -> None:
    """What a dishonest party could do with its own key: edit, re-chain, re-sign, republish."""
    records = edit(list(read_records(path)))
    prev = GENESIS
    for seq, r in enumerate(records):
        r["seq"], r["prev"] = seq, prev
        r["hash"] = prev = record_digest(r)
        r["sig"] = key.sign(signed_bytes(r))
    path.write_text("".join(canonical(r).decode() + "\n" for r in records))
    if not republish:
        return
    result = path.parent / "result.json"
    data = json.loads(result.read_text())
    data["audit_head"] = prev
    result.write_text(json.dumps(data))


def test_untouched_logs_of_every_job_verify(audited_jobs: AuditedJobs) -> None:
    verdicts = verify([audited_jobs.handed()])
    assert [v.job_id for v in verdicts] == ["lr-a", "lr-b", "lr-p", "sb-a"]
    for v in verdicts:
        assert v.ok, [str(p) for p in v.problems]
        assert sorted(v.logs) == sorted(PARTIES) and sorted(v.expected_parties) == sorted(PARTIES)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "verify", str(audited_jobs.handed())])
    assert exit_info.value.code == 0


def test_old_jobs_still_verify_after_every_party_rotated_its_key(
    audited_jobs: AuditedJobs,
) -> None:
    before, after = _verdict(audited_jobs, "lr-a"), _verdict(audited_jobs, "lr-b")
    assert before.ok and after.ok
    for party in PARTIES:
        old, new = (str(v.logs[party].start["signing_key"]) for v in (before, after))
        assert key_id(old) != key_id(new)
        assert (
            new
            == SigningKey.load(audited_jobs.configs[party].signing_key_path, party=party).public_hex
        )


def test_flipping_one_byte_of_a_record_names_it(audited_jobs: AuditedJobs, tmp_path: Path) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(GUEST, "lr-a") / "audit.jsonl"
    k = _message_seq(log, tag="lr.masked_gradient")
    lines = _lines(log)
    lines[k] = re.sub(r'"size":(\d)', lambda m: f'"size":{(int(m[1]) + 1) % 10}', lines[k], count=1)
    log.write_text("".join(lines))
    problem = _first(_verdict(jobs, "lr-a"))
    assert (problem.party, problem.seq) == (GUEST, k)
    assert "was altered: its content does not match its hash" in problem.text


def test_flipping_one_byte_of_a_stored_payload_names_the_record(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(HOST, "lr-a") / "audit.jsonl"
    k = _message_seq(log, tag="lr.masked_gradient", round=1)
    digest = str(list(read_records(log))[k]["sha256"])
    payload = jobs.job_dir(HOST, "lr-a") / "payloads" / digest
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0x01
    payload.write_bytes(bytes(data))
    problem = _first(_verdict(jobs, "lr-a"))
    assert (problem.party, problem.seq) == (HOST, k)
    assert f"payload {digest[:16]}... in the store" in problem.text and "altered" in problem.text


@pytest.mark.parametrize(
    ("tamper", "seq", "text"),
    [
        ("delete", 12, "carries seq 13 where 12 belongs"),
        ("reorder", 12, "carries seq 15 where 12 belongs"),
        ("forge", 12, "has no valid signature by the party's signing key"),
        ("swap", 12, "belongs to party 'broker' in job 'lr-b'"),
    ],
)
def test_deleted_reordered_forged_or_foreign_records_are_named(
    audited_jobs: AuditedJobs, tmp_path: Path, tamper: str, seq: int, text: str
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(GUEST, "lr-a") / "audit.jsonl"
    lines = _lines(log)
    if tamper == "delete":
        del lines[seq]
    elif tamper == "reorder":
        lines[seq], lines[seq + 3] = lines[seq + 3], lines[seq]
    elif tamper == "swap":
        lines[seq] = _lines(jobs.job_dir(GUEST, "lr-b") / "audit.jsonl")[seq]
    else:  # re-chain from the edit on, as someone without the party's key would have to
        records = [json.loads(line) for line in lines]
        records[seq]["round"] = 99
        for r in records[seq:]:
            r["prev"] = records[r["seq"] - 1]["hash"]
            r["hash"] = record_digest(r)
        lines = [canonical(r).decode() + "\n" for r in records]
    log.write_text("".join(lines))
    problem = _first(_verdict(jobs, "lr-a"))
    assert (problem.party, problem.seq) == (GUEST, seq), str(problem)
    assert text in problem.text


def test_a_truncated_log_is_detected(audited_jobs: AuditedJobs, tmp_path: Path) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(ARBITER, "lr-a") / "audit.jsonl"
    lines = _lines(log)
    log.write_text("".join(lines[:-3]))
    problems = [p for p in _verdict(jobs, "lr-a").problems if p.party == ARBITER]
    assert problems and problems[0].seq is None
    assert f"ends at record {len(lines) - 4} without job_end" in problems[0].text
    log.write_text("".join(lines)[:-30])  # cut mid-record
    problem = _first(_verdict(jobs, "lr-a"))
    assert (problem.party, problem.seq) == (ARBITER, len(lines) - 1)
    assert f"line {len(lines)} is not a JSON record" in problem.text


def test_dropping_a_record_before_job_end_is_named(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(ARBITER, "lr-a") / "audit.jsonl"
    lines = _lines(log)
    log.write_text("".join(lines[:-2] + lines[-1:]))  # job_end kept, the record before it gone
    problem = _first(_verdict(jobs, "lr-a"))
    assert (problem.party, problem.seq) == (ARBITER, len(lines) - 2)


def test_a_re_signed_log_shorter_than_its_published_head_is_caught(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")  # lr-b: signed with the party's current key
    log = jobs.job_dir(ARBITER, "lr-b") / "audit.jsonl"
    key = SigningKey.load(jobs.configs[ARBITER].signing_key_path, party=ARBITER)
    _rewrite(log, key, lambda records: [*records[:-3], records[-1]], republish=False)
    problems = [p for p in _verdict(jobs, "lr-b").problems if p.party == ARBITER]
    assert any("differs from the audit_head in result.json" in p.text for p in problems)


def test_a_received_message_the_sender_never_sent_is_named(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")  # lr-b: signed with the party's current key
    log = jobs.job_dir(HOST, "lr-b") / "audit.jsonl"
    key = SigningKey.load(jobs.configs[HOST].signing_key_path, party=HOST)

    def claim_one_more(records: list[Record]) -> list[Record]:
        fake = {
            **records[-2],
            "kind": "message",
            "direction": "received",
            "peer": GUEST,
            "tag": "lr.extra",
            "round": 98,
            "msg_seq": 999,
            "payload_type": "lianmo.v1.Signal",
            "size": 0,
            "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "peer_head": GENESIS,
        }
        for name in ("state", "sha256_model"):
            fake.pop(name, None)
        return [*records[:-1], fake, records[-1]]

    (jobs.job_dir(HOST, "lr-b") / "payloads").joinpath(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    ).write_bytes(b"")
    _rewrite(log, key, claim_one_more)
    verdict = _verdict(jobs, "lr-b")
    problem = _first(verdict)
    assert (problem.party, problem.seq) == (HOST, len(_lines(log)) - 2), str(problem)
    assert (
        f"claims to have received 'lr.extra' (not a step of this lianmo version) round 98 "
        f"from '{GUEST}'" in problem.text
    )
    assert f"which '{GUEST}' never logged sending" in problem.text


def test_a_received_payload_other_than_the_one_sent_is_named(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")  # lr-b: signed with the party's current key
    job = jobs.job_dir(HOST, "lr-b")
    key = SigningKey.load(jobs.configs[HOST].signing_key_path, party=HOST)
    k = _message_seq(job / "audit.jsonl", direction="received", peer=ARBITER, tag="lr.gradient")
    forged = b"a different payload"
    digest = PayloadStore(job / "payloads").put(forged)

    def swap_payload(records: list[Record]) -> list[Record]:
        records[k]["sha256"] = digest
        return records

    _rewrite(job / "audit.jsonl", key, swap_payload)
    problem = _first(_verdict(jobs, "lr-b"))
    assert (problem.party, problem.seq) == (HOST, k), str(problem)
    assert (
        f"but '{ARBITER}' logged sending 'lr.gradient' (arbiter → guest or host: "
        "X_pᵀ 4d + r_p, decrypted)" in problem.text
    )
    assert "differs in sha256" in problem.text


def test_a_log_re_signed_with_another_key_is_caught_by_the_peers_logs(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(GUEST, "lr-a") / "audit.jsonl"
    other = SigningKey.generate()

    def new_key(records: list[Record]) -> list[Record]:
        records[0]["signing_key"] = other.public_hex
        return records

    _rewrite(log, other, new_key)
    problems = _verdict(jobs, "lr-a").problems
    keys = [p for p in problems if "signed with a key other than the one" in p.text]
    assert {(p.party, p.seq) for p in keys} == {(GUEST, 0)}
    assert {p.text.split("(record")[1].split("of '")[1].rstrip("')") for p in keys} == {
        HOST,
        ARBITER,
    }
    # and re-chaining it from record 0 left none of the heads its peers logged
    (anchor,) = [p for p in problems if p not in keys]
    assert anchor.party == GUEST and "which is no record of this log" in anchor.text


def test_a_missing_party_log_and_the_cli_exit_code(
    audited_jobs: AuditedJobs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    shutil.rmtree(jobs.job_dir(ARBITER, "lr-a"))
    problems = _verdict(jobs, "lr-a").problems
    assert any(p.party == ARBITER and "no log of this party was found" in p.text for p in problems)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "verify", str(jobs.handed() / "t" / GUEST), str(jobs.handed() / "t" / HOST)])
    assert exit_info.value.code == 9
    out = capsys.readouterr()
    assert "FAIL job 'lr-a'" in out.out and "no log of this party was found" in out.err
