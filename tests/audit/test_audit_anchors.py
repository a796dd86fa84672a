"""Which audit heads anchor a sender's log: in its chain before the send, or sent again
inside the window a resume redoes (after ``resume``, before the next ``checkpoint``)."""

from __future__ import annotations

import pytest

from lianmo.audit.anchors import Record, unanchored

PEER = "b"


def _log(*kinds: str) -> list[Record]:
    """Sender records: ``send`` is a message to PEER (msg_seq counts up), hashes h0, h1..."""
    records: list[Record] = []
    msg = 0
    for i, kind in enumerate(kinds):
        r: Record = {"seq": i, "hash": f"h{i}", "kind": kind}
        if kind == "send":
            r.update(kind="message", direction="sent", peer=PEER, msg_seq=msg, tag="t", round=0)
            msg += 1
        records.append(r)
    return records


def _receipts(*heads: str) -> list[Record]:
    return [
        {"seq": 100 + i, "kind": "message", "direction": "received", "msg_seq": i, "peer_head": h}
        for i, h in enumerate(heads)
    ]


def test_heads_of_earlier_records_anchor() -> None:
    log = _log("job_start", "send", "checkpoint", "round", "send")
    assert unanchored(log, PEER, _receipts("h0", "h3")) is None


@pytest.mark.parametrize(
    ("kinds", "heads", "at", "why"),
    [
        (("job_start", "checkpoint", "send"), ("forged",), 2, "which is no record of this log"),
        (("job_start", "checkpoint", "send", "round"), ("h3",), 2, "places after this send"),
        (("job_start", "checkpoint", "send"), ("h2",), 2, "places after this send"),
        (("job_start", "checkpoint", "send"), ("",), 2, "carried no audit head"),
        (
            ("job_start", "checkpoint", "resume", "send", "checkpoint", "send"),
            ("h0", "cut-off"),
            5,
            "which is no record of this log",
        ),
    ],
    ids=["foreign", "later-record", "itself", "none", "after-the-redo-window"],
)
def test_heads_that_do_not_anchor_are_named(
    kinds: tuple[str, ...], heads: tuple[str, ...], at: int, why: str
) -> None:
    found = unanchored(_log(*kinds), PEER, _receipts(*heads))
    assert found is not None and found.sent["seq"] == at and why in found.why


def test_a_head_from_a_cut_off_tail_is_accepted_only_in_the_redo_window() -> None:
    """A resumed sender sent the message again; the receiver kept the first copy."""
    log = _log("job_start", "send", "checkpoint", "resume", "send", "checkpoint", "send")
    assert unanchored(log, PEER, _receipts("h0", "cut-off", "h5")) is None
    # before the first checkpoint a restarted party starts its log afresh
    assert unanchored(_log("job_start", "send"), PEER, _receipts("old-run")) is None


def test_the_first_unanchored_send_is_named_and_legacy_receipts_are_skipped() -> None:
    log = _log("job_start", "checkpoint", "send", "send", "send")
    receipts = _receipts("h1", "x", "y")
    del receipts[0]["peer_head"]  # format v2 logs carry no heads
    found = unanchored(log, PEER, receipts)
    assert found is not None and found.sent["seq"] == 3 and found.received["seq"] == 101
