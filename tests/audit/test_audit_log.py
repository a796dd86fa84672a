"""The hash-chained audit log: chaining, tamper detection, reopening, and a real job's log."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from lianmo.audit.log import (
    GENESIS,
    LEGACY_FORMAT,
    AuditLog,
    MessageStats,
    read_records,
    verify_chain,
)
from lianmo.errors import LianmoError
from lianmo.transport.envelope import Envelope
from lianmo.transport.memory import MemoryHub
from lianmo.transport.messages import Signal
from tests.node.inprocess_nodes import (
    ARBITER,
    GUEST,
    HOST,
    WireRecorder,
    make_nodes,
    run_in_process,
    train_spec,
)

N = 8


def _log(path: Path, n: int = N) -> Path:
    log = AuditLog(path, party="broker", job_id="job-1")
    log.record("job_start", spec_sha256="ab" * 32, role="guest")
    for i in range(n - 1):
        log.record("decision", step=i, value=f"v{i}", ok=i % 2 == 0, loss=0.5 / (i + 1))
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines), encoding="utf-8")


def _env(seq: int, payload: bytes, **kw: object) -> Envelope:
    fields: dict[str, object] = dict(
        job_id="job-1", round=0, tag="t", sender="a", receiver="b", seq=seq, payload_type="x"
    )
    fields.update(kw)
    return Envelope.build(payload=payload, **fields)  # type: ignore[arg-type]


# ---- the chain ------------------------------------------------------------------------------


def test_records_chain_and_verify_returns_the_count(tmp_path: Path) -> None:
    path = _log(tmp_path / "audit.jsonl")
    assert verify_chain(path) == N
    records = list(read_records(path))
    assert [r["seq"] for r in records] == list(range(N))
    assert records[0]["prev"] == GENESIS
    for before, after in zip(records, records[1:], strict=False):
        assert after["prev"] == before["hash"]
    assert {r["party"] for r in records} == {"broker"} and {r["job_id"] for r in records} == {
        "job-1"
    }
    assert records[3]["kind"] == "decision" and records[3]["value"] == "v2"


def test_an_empty_log_verifies_with_no_records(tmp_path: Path) -> None:
    (tmp_path / "audit.jsonl").write_text("")
    assert verify_chain(tmp_path / "audit.jsonl") == 0


@pytest.mark.parametrize("k", [0, 3, N - 1])
def test_flipping_one_byte_of_a_record_is_detected(tmp_path: Path, k: int) -> None:
    path = _log(tmp_path / "audit.jsonl")
    lines = _lines(path)
    at = lines[k].index('"party":"broker"') + len('"party":"b')
    lines[k] = lines[k][:at] + "R" + lines[k][at + 1 :]  # still valid JSON
    _write(path, lines)
    with pytest.raises(
        LianmoError, match=rf"record {k} was altered: its content does not match its hash"
    ):
        verify_chain(path)


def test_flipping_a_byte_that_breaks_the_json_names_the_line(tmp_path: Path) -> None:
    path = _log(tmp_path / "audit.jsonl")
    lines = _lines(path)
    lines[4] = "[" + lines[4][1:]
    _write(path, lines)
    with pytest.raises(LianmoError, match=r"line 5 is not a JSON record"):
        verify_chain(path)


def test_flipping_a_byte_of_the_stored_hash_is_detected(tmp_path: Path) -> None:
    path = _log(tmp_path / "audit.jsonl")
    lines = _lines(path)
    record = json.loads(lines[2])
    h = record["hash"]
    record["hash"] = ("1" if h[0] != "1" else "2") + h[1:]
    lines[2] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    _write(path, lines)
    with pytest.raises(LianmoError, match=r"record 2 was altered"):
        verify_chain(path)


def test_rewriting_a_record_with_a_fresh_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = _log(tmp_path / "audit.jsonl")
    lines = _lines(path)
    record = json.loads(lines[3])
    record["value"] = "forged"
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    record["hash"] = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    lines[3] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    _write(path, lines)
    with pytest.raises(LianmoError, match=r"record 4 does not link to the record before it"):
        verify_chain(path)


@pytest.mark.parametrize("k", [0, 3, N - 2])
def test_deleting_a_record_is_detected(tmp_path: Path, k: int) -> None:
    path = _log(tmp_path / "audit.jsonl")
    lines = _lines(path)
    del lines[k]
    _write(path, lines)
    with pytest.raises(LianmoError, match=rf"record {k} carries seq {k + 1} where {k} belongs"):
        verify_chain(path)


def test_reordering_two_records_is_detected(tmp_path: Path) -> None:
    path = _log(tmp_path / "audit.jsonl")
    lines = _lines(path)
    lines[2], lines[5] = lines[5], lines[2]
    _write(path, lines)
    with pytest.raises(LianmoError, match=r"record 2 carries seq 5 where 2 belongs"):
        verify_chain(path)


def test_truncating_the_middle_is_detected(tmp_path: Path) -> None:
    path = _log(tmp_path / "audit.jsonl")
    lines = _lines(path)
    _write(path, lines[:3] + lines[6:])
    with pytest.raises(LianmoError, match=r"record 3 carries seq 6 where 3 belongs"):
        verify_chain(path)


def test_a_record_cut_off_mid_line_is_detected(tmp_path: Path) -> None:
    path = _log(tmp_path / "audit.jsonl")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(LianmoError, match=rf"line {N} is not a JSON record"):
        verify_chain(path)


def test_dropping_whole_records_at_the_end_is_not_detected_by_the_chain(tmp_path: Path) -> None:
    """A limit of a bare hash chain: a clean prefix is itself a valid chain. Only the
    count (or a signed final record such as ``job_end`` checked by ``verify``) shows it."""
    path = _log(tmp_path / "audit.jsonl")
    _write(path, _lines(path)[:5])
    assert verify_chain(path) == 5


# ---- reopening -------------------------------------------------------------------------------


def test_reopening_an_existing_log_continues_the_chain(tmp_path: Path) -> None:
    path = _log(tmp_path / "audit.jsonl", n=3)
    last = list(read_records(path))[-1]
    again = AuditLog(path, party="broker", job_id="job-1")
    again.record("checkpoint", round=4)
    again.record("job_end", state="succeeded")
    assert verify_chain(path) == 5
    records = list(read_records(path))
    assert records[3]["seq"] == 3 and records[3]["prev"] == last["hash"]
    assert [r["kind"] for r in records[3:]] == ["checkpoint", "job_end"]


def test_opening_a_new_file_starts_at_genesis(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "fresh.jsonl", party="p", job_id="j")
    log.record("job_start")
    (record,) = read_records(tmp_path / "fresh.jsonl")
    assert record["seq"] == 0 and record["prev"] == GENESIS


# seq: the chain breaks at verify time; party: a forged party passes verify_chain; prev:
# silently dropped. (time, job_id, format and hash behave like these.)
@pytest.mark.parametrize("field", ["seq", "party", "prev"])
def test_a_record_field_cannot_overwrite_the_chain_metadata(tmp_path: Path, field: str) -> None:
    """``record(kind, **fields)`` must refuse fields that would replace the record's own
    sequence number, time, party, job or format (``**fields`` is spread after them)."""
    log = AuditLog(tmp_path / "audit.jsonl", party="broker", job_id="job-1")
    log.record("job_start")
    with pytest.raises(LianmoError, match=field):
        log.record("decision", **{field: 7})
    assert verify_chain(tmp_path / "audit.jsonl") == 1


# ---- message observers -------------------------------------------------------------------------


def test_message_stats_count_messages_and_bytes_per_direction() -> None:
    stats = MessageStats()
    stats.on_message("sent", _env(0, b"abc"))
    stats.on_message("sent", _env(1, b""))
    stats.on_message("received", _env(0, b"12345", sender="b", receiver="a"))
    assert stats.summary() == {
        "messages_sent": 2,
        "bytes_sent": 3,
        "messages_received": 1,
        "bytes_received": 5,
    }
    assert MessageStats().summary() == dict.fromkeys(stats.summary(), 0)


def test_message_records_hold_the_header_and_digest_never_the_payload(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", party="a", job_id="job-1")
    secret = b"0.449512,1,0,1"
    log.on_message("sent", _env(3, secret, round=2, tag="lr.residual"))
    log.on_message("received", _env(0, b"xy", sender="b", receiver="a"))
    sent, received = read_records(tmp_path / "audit.jsonl")
    assert sent == {
        **sent,
        "kind": "message",
        "direction": "sent",
        "peer": "b",
        "round": 2,
        "tag": "lr.residual",
        "msg_seq": 3,
        "payload_type": "x",
        "size": len(secret),
        "sha256": hashlib.sha256(secret).hexdigest(),
    }
    assert received["direction"] == "received" and received["peer"] == "b"
    assert secret.decode() not in (tmp_path / "audit.jsonl").read_text()


def test_a_channel_stamps_the_senders_head_and_the_receiver_logs_it(tmp_path: Path) -> None:
    hub = MemoryHub("job-1", ["a", "b"])
    logs = {p: AuditLog(tmp_path / f"{p}.jsonl", party=p, job_id="job-1") for p in "ab"}
    channels = {p: hub.channel(p, [logs[p]]) for p in "ab"}
    for p in "ab":
        channels[p].anchor(lambda p=p: logs[p].head)  # type: ignore[misc]
    logs["a"].record("job_start")
    head_before_send = logs["a"].head
    channels["a"].send("b", "t", Signal("go"))
    channels["b"].recv("a", "t")
    (received,) = read_records(tmp_path / "b.jsonl")
    assert received["direction"] == "received" and received["peer_head"] == head_before_send
    sent = list(read_records(tmp_path / "a.jsonl"))[1]
    assert sent["direction"] == "sent" and "peer_head" not in sent


# ---- timestamps ---------------------------------------------------------------------------------


def test_time_is_chained_so_moving_it_breaks_the_record(tmp_path: Path) -> None:
    path = _log(tmp_path / "audit.jsonl")
    lines = _lines(path)
    record = json.loads(lines[3])
    record["time"] += 1.0
    lines[3] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    _write(path, lines)
    with pytest.raises(LianmoError, match=r"record 3 was altered"):
        verify_chain(path)


def test_timestamps_never_go_backwards_even_when_the_clock_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter([100.0, 50.0, 120.0, 119.5])
    monkeypatch.setattr("lianmo.audit.log.time.time", lambda: next(clock))
    log = AuditLog(tmp_path / "audit.jsonl", party="p", job_id="j")
    log.record("job_start")
    log.record("a")
    log.record("b")
    reopened = AuditLog(tmp_path / "audit.jsonl", party="p", job_id="j")
    reopened.record("c")  # the clock went back across a restart, too
    times = [r["time"] for r in read_records(tmp_path / "audit.jsonl")]
    assert times == [100.0, 100.0, 120.0, 120.0]


def _legacy_log(path: Path) -> Path:
    """A log as lianmo wrote it before format v3: time outside the hashed content."""
    prev, lines = GENESIS, []
    for seq, kind in enumerate(["job_start", "phase", "job_end"]):
        r: dict[str, object] = {
            "format": LEGACY_FORMAT,
            "seq": seq,
            "party": "p",
            "job_id": "j",
            "kind": kind,
            "prev": prev,
        }
        body = json.dumps(r, sort_keys=True, separators=(",", ":")).encode()
        r["hash"] = prev = hashlib.sha256(body).hexdigest()
        r["time"] = 1000.0 + seq
        lines.append(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n")
    _write(path, lines)
    return path


def test_a_legacy_v2_log_still_verifies_but_is_not_extended(tmp_path: Path) -> None:
    path = _legacy_log(tmp_path / "audit.jsonl")
    assert verify_chain(path) == 3
    with pytest.raises(LianmoError, match="written by an older lianmo .format 'lianmo.audit/v2'"):
        AuditLog(path, party="p", job_id="j")


def test_a_log_mixing_formats_is_refused(tmp_path: Path) -> None:
    path = _legacy_log(tmp_path / "audit.jsonl")
    lines = _lines(path)
    fresh = AuditLog(tmp_path / "new.jsonl", party="p", job_id="j")
    fresh.record("job_start")
    _write(path, [*_lines(tmp_path / "new.jsonl"), *lines[1:]])
    with pytest.raises(LianmoError, match="record 1 has format 'lianmo.audit/v2', not 'lianmo"):
        verify_chain(path)


# ---- the log of a real job ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, shared_data: Path):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("audit-job")
    recorder = WireRecorder()
    spec = train_spec("breast-audit")
    run_in_process(make_nodes(tmp, shared_data, [recorder]), spec)
    dirs = {p: tmp / p / "jobs" / spec.job_id for p in (GUEST, HOST, ARBITER)}
    return spec, recorder, dirs


def _key(e: Envelope) -> tuple[str, str, int]:
    return (e.sender, e.receiver, e.seq)


@pytest.mark.parametrize("party", [GUEST, HOST, ARBITER])
def test_a_real_job_logs_every_message_with_its_digest(job, party: str) -> None:  # type: ignore[no-untyped-def]
    spec, recorder, dirs = job
    path = dirs[party] / "audit.jsonl"
    records = list(read_records(path))
    assert verify_chain(path) == len(records)
    messages = [r for r in records if r["kind"] == "message"]
    sent = {_key(e): e for e in recorder.sent if e.sender == party}
    received = {_key(e): e for e in recorder.received if e.receiver == party}
    assert len(sent) > 5 and len(received) > 5
    counts = Counter(r["direction"] for r in messages)
    assert counts == {"sent": len(sent), "received": len(received)}
    for r in messages:
        if r["direction"] == "sent":
            env = sent.pop((party, str(r["peer"]), int(str(r["msg_seq"]))))
        else:
            env = received.pop((str(r["peer"]), party, int(str(r["msg_seq"]))))
        assert r["sha256"] == env.sha256.hex() == hashlib.sha256(env.payload).hexdigest()
        assert (r["tag"], r["round"], r["size"], r["payload_type"]) == (
            env.tag,
            env.round,
            len(env.payload),
            env.payload_type,
        )
    assert not sent and not received  # one record per message, none missing
    result = json.loads((dirs[party] / "result.json").read_text())
    assert result["messages_sent"] == counts["sent"]
    assert result["messages_received"] == counts["received"]


@pytest.mark.parametrize("party", [GUEST, HOST, ARBITER])
def test_a_real_job_logs_its_spec_model_and_end(job, party: str) -> None:  # type: ignore[no-untyped-def]
    spec, _, dirs = job
    records = list(read_records(dirs[party] / "audit.jsonl"))
    assert records[0]["kind"] == "job_start"
    assert records[0]["spec_sha256"] == spec.digest()
    assert records[0]["role"] == spec.party(party).role
    assert records[-1]["kind"] == "job_end" and records[-1]["state"] == "succeeded"
    assert {r["party"] for r in records} == {party}
    assert {r["job_id"] for r in records} == {spec.job_id}
    models = [r for r in records if r["kind"] == "model"]
    if party == ARBITER:
        assert models == []
    else:
        (model,) = models
        digest = hashlib.sha256((dirs[party] / "model.json").read_bytes()).hexdigest()
        assert model["sha256"] == digest
        assert json.loads((dirs[party] / "result.json").read_text())["model_digest"] == digest


def test_what_one_party_logged_as_sent_the_other_logged_as_received(job) -> None:  # type: ignore[no-untyped-def]
    _, _, dirs = job
    logged: dict[str, set[tuple[object, ...]]] = {"sent": set(), "received": set()}
    for party, d in dirs.items():
        for r in read_records(d / "audit.jsonl"):
            if r["kind"] == "message":
                ends = (party, r["peer"]) if r["direction"] == "sent" else (r["peer"], party)
                logged[str(r["direction"])].add((*ends, r["msg_seq"], r["tag"], r["sha256"]))
    assert len(logged["sent"]) > 30  # 2 rounds: breast's host needs batches of 320 rows
    assert logged["sent"] == logged["received"]
