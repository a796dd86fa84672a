"""The spooled inbox: durable before acknowledged, rebuilt after a restart, re-readable
from a checkpoint's position, bounded per job, and no partial file left looking whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from lianmo.errors import ProtocolError, TransportError
from lianmo.transport.envelope import Envelope
from lianmo.transport.inbox import Inbox
from lianmo.transport.spool import Spool

JOB, ME = "job-1", "platform"
PARTIES = ("broker", "platform", "arbiter")


def env(seq: int, payload: bytes = b"", sender: str = "broker") -> Envelope:
    return Envelope.build(
        job_id=JOB,
        round=seq,
        tag="step",
        sender=sender,
        receiver=ME,
        seq=seq,
        payload_type="lianmo.v1.Signal",
        payload=payload or f"payload {seq}".encode(),
    )


def spooled_inbox(directory: Path, **kw: int) -> Inbox:
    return Inbox(JOB, ME, PARTIES, spool=Spool(directory), **kw)


def test_a_restarted_node_gets_every_acknowledged_message_back(tmp_path: Path) -> None:
    inbox = spooled_inbox(tmp_path)
    for seq in range(3):
        assert inbox.put(env(seq)) is False
    inbox.put(env(0, sender="arbiter"))
    assert inbox.take("broker", 1).payload == b"payload 0"
    restored = Inbox.restore(JOB, ME, PARTIES, Spool(tmp_path))
    assert restored.arrived("broker") == 3 and restored.arrived("arbiter") == 1
    assert [restored.take("broker", 1).payload for _ in range(3)] == [
        b"payload 0",
        b"payload 1",
        b"payload 2",
    ]
    # a resend of what the spool holds is a duplicate after the restart too
    assert restored.put(env(1)) is True
    with pytest.raises(ProtocolError, match="differs from the message it already holds"):
        restored.put(env(1, b"something else"))


def test_rewind_reads_again_from_a_checkpoint_position(tmp_path: Path) -> None:
    inbox = spooled_inbox(tmp_path)
    for seq in range(4):
        inbox.put(env(seq))
    for _ in range(3):
        inbox.take("broker", 1)
    assert inbox.position() == {"broker": 3, "arbiter": 0}
    inbox.rewind({"broker": 1, "arbiter": 0})
    assert inbox.take("broker", 1).seq == 1
    with pytest.raises(TransportError, match="the spool is incomplete"):
        inbox.rewind({"broker": 9})


def test_the_per_job_limit_counts_every_sender_and_refuses_before_writing(
    tmp_path: Path,
) -> None:
    inbox = spooled_inbox(tmp_path, max_job_bytes=25)
    inbox.put(env(0, b"x" * 10))
    inbox.put(env(0, b"y" * 10, sender="arbiter"))
    with pytest.raises(ProtocolError, match="over its per-job limit of 25 bytes; raise max_job_mb"):
        inbox.put(env(1, b"z" * 10))
    assert inbox.arrived("broker") == 1
    assert not list((tmp_path / "broker").glob("*000001.msg"))


def test_a_corrupted_stream_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    inbox = spooled_inbox(tmp_path)
    good = env(0, b"abcdef")
    with pytest.raises(ProtocolError, match="fails its sha256 check"):
        inbox.put_stream(good, [b"abc", b"xyz"], size=6)
    with pytest.raises(ProtocolError, match="truncated or oversized: header says 6 bytes"):
        inbox.put_stream(good, [b"abc"], size=6)
    assert list((tmp_path / "broker").iterdir()) == []
    assert inbox.put_stream(good, [b"abc", b"def"], size=6) is False
    assert inbox.take("broker", 1).payload == b"abcdef"


def test_abandoned_temporaries_are_removed_and_a_gap_is_refused(tmp_path: Path) -> None:
    inbox = spooled_inbox(tmp_path)
    inbox.put(env(0))
    (tmp_path / "broker" / ".000000000001.123.456.tmp").write_bytes(b"half a message")
    restored = Inbox.restore(JOB, ME, PARTIES, Spool(tmp_path))
    assert restored.arrived("broker") == 1
    assert not list((tmp_path / "broker").glob(".*.tmp"))
    restored.put(env(1))
    (tmp_path / "broker" / "000000000000.msg").unlink()  # seq 1 remains, seq 0 is gone
    with pytest.raises(TransportError, match="has a gap or a stranger"):
        Inbox.restore(JOB, ME, PARTIES, Spool(tmp_path))
