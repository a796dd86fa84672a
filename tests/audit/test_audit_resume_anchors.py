"""A party that fails mid-round and resumes stays verifiable, anchors included.

The host fails right after sending round 1's masked gradient, which the arbiter takes and
logs with the host's head of that moment. On resuming, the host cuts its log back to its
round-0 checkpoint and sends the message again; the arbiter keeps the first copy. That
head is in no record of the host's final log, yet it lies in the window a resume redoes,
which verify allows (docs/audit.md, "Anchors").
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lianmo.audit.log import read_records
from lianmo.audit.verify import verify
from lianmo.coordinator.run import run_job
from lianmo.errors import JobFailedError, LianmoError
from lianmo.transport.envelope import Direction, Envelope
from tests.audit.jobs import hand_to_auditors
from tests.node.inprocess_nodes import (
    ARBITER,
    HOST,
    DirectControl,
    fixed_seeds,
    make_nodes,
    train_spec,
)


class _FailOnce:
    """Fails the host's job once, just after it sent (and logged) one chosen message."""

    def __init__(self, tag: str, round: int) -> None:
        self.tag, self.round = tag, round
        self.fired = threading.Event()

    def on_message(self, direction: Direction, envelope: Envelope) -> None:
        if (
            direction == "sent"
            and envelope.sender == HOST
            and (envelope.tag, envelope.round) == (self.tag, self.round)
            and not self.fired.is_set()
        ):
            self.fired.set()
            raise LianmoError("injected failure after sending")


def test_a_resumed_party_whose_peer_kept_the_first_copy_still_verifies(
    tmp_path: Path, shared_data: Path
) -> None:
    fault = _FailOnce("lr.masked_gradient", 1)
    nodes = make_nodes(tmp_path, shared_data, observers=[fault], seed_for=fixed_seeds)
    controls = {n: DirectControl(node) for n, node in nodes.items()}
    spec = train_spec("resumed")
    with pytest.raises(JobFailedError):
        run_job(spec, controls, poll_interval=0.05)
    for node in nodes.values():
        node.wait(spec.job_id, timeout=60)
    assert fault.fired.is_set()
    run_job(spec, controls, poll_interval=0.05, resume=True)
    for node in nodes.values():
        node.wait(spec.job_id, timeout=60)

    host = list(read_records(tmp_path / HOST / "jobs" / spec.job_id / "audit.jsonl"))
    arbiter = read_records(tmp_path / ARBITER / "jobs" / spec.job_id / "audit.jsonl")
    hashes = {r["hash"] for r in host}
    kept = [
        r
        for r in arbiter
        if r["kind"] == "message" and r["direction"] == "received" and r["peer"] == HOST
        if r["peer_head"] not in hashes
    ]
    assert [(r["tag"], r["round"]) for r in kept] == [("lr.masked_gradient", 1)]
    assert any(r["kind"] == "resume" for r in host)

    (verdict,) = verify([hand_to_auditors([tmp_path], tmp_path.with_name("handed"))])
    assert verdict.ok, [str(p) for p in verdict.problems]
