"""A node's metrics during a real in-process job: messages, bytes, rounds, phases, states.

A four-epoch coordinated hetero LR job on the breast data runs through three in-process
nodes, each counting into its own :class:`NodeMetrics`. A recorder beside the channels
keeps every envelope; each time the guest sends one, it also reads the guest's registry
as a scrape would (the job gauges are computed at scrape time), so the test sees the
round and phase gauges move while the job runs. Every label value any registry showed
is checked against what labels may carry: never an id, a feature value or a path.
"""

from __future__ import annotations

import csv
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from lianmo.metrics import JOB_STATES, NodeMetrics
from lianmo.transport.envelope import Direction, Envelope
from tests.node.inprocess_nodes import (
    ARBITER,
    GUEST,
    GUEST_FILE,
    HOST,
    HOST_FILE,
    WireRecorder,
    make_nodes,
    run_in_process,
    train_spec,
)

JOB = "breast-metrics"
LABEL_NAMES = {"job", "peer", "direction", "state", "phase"}


class GuestScraper:
    """At every message the guest sends: the guest's round and phase gauges, and every
    label (name, value) any party's registry shows."""

    def __init__(self, metrics: dict[str, NodeMetrics]) -> None:
        self.metrics = metrics
        self.rounds: list[float] = []
        self.phases: list[str] = []
        self.labels: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def on_message(self, direction: Direction, envelope: Envelope) -> None:
        if direction != "sent" or envelope.sender != GUEST:
            return
        with self._lock:
            guest = self.metrics[GUEST].registry
            value = guest.get_sample_value("lianmo_job_round", {"job": JOB})
            if value is not None:
                self.rounds.append(value)
            for family in guest.collect():
                if family.name == "lianmo_job_phase":
                    self.phases += [s.labels["phase"] for s in family.samples]
            self.labels |= all_labels(self.metrics.values())


def all_labels(metrics: Iterable[NodeMetrics]) -> set[tuple[str, str]]:
    return {
        pair
        for m in metrics
        for family in m.registry.collect()
        if family.name.startswith("lianmo_")
        for sample in family.samples
        for pair in sample.labels.items()
    }


def forbidden_labels(labels: set[tuple[str, str]], ids: set[str], root: Path) -> list[str]:
    """Labels that are not ours to show: an unknown name, a number (an id or a feature
    value: the breast ids and cells are all numbers), a known id, or a path."""
    out = []
    for name, value in sorted(labels):
        if name not in LABEL_NAMES:
            out.append(f"label name {name!r}")
        try:
            float(value)
            out.append(f"{name}={value!r} is a number")
        except ValueError:
            pass
        if value in ids or "/" in value or str(root) in value:
            out.append(f"{name}={value!r} is an id or a path")
    return out


def read_ids(shared_data: Path) -> set[str]:
    ids = set()
    for file in (GUEST_FILE, HOST_FILE):
        with open(shared_data / file, newline="") as f:
            ids |= {row["id"] for row in csv.DictReader(f)}
    return ids


def test_a_job_moves_the_message_counters_and_the_job_gauges(
    tmp_path: Path, shared_data: Path
) -> None:
    metrics = {name: NodeMetrics(party=name) for name in (GUEST, HOST, ARBITER)}
    wire, scraper = WireRecorder(), GuestScraper(metrics)
    nodes = make_nodes(tmp_path, shared_data, observers=[wire, scraper], metrics=metrics)
    assert nodes[GUEST].metrics is metrics[GUEST]  # what the serving path reaches
    run_in_process(nodes, train_spec(JOB, epochs=4))  # raises if the job fails

    # 1. every message and payload byte, per peer and direction, as the wire saw them
    for party, m in metrics.items():
        reg = m.registry
        for direction, envelopes in (("sent", wire.sent), ("received", wire.received)):
            counts: Counter[str] = Counter()
            sizes: Counter[str] = Counter()
            for env in envelopes:
                me, peer = (env.sender, env.receiver)[:: 1 if direction == "sent" else -1]
                if me == party:
                    counts[peer] += 1
                    sizes[peer] += len(env.payload)
            assert counts, (party, direction)
            for peer in {GUEST, HOST, ARBITER} - {party}:
                labels = {"peer": peer, "direction": direction}
                assert reg.get_sample_value("lianmo_messages_total", labels) == (
                    counts[peer] or None
                )
                assert reg.get_sample_value("lianmo_message_bytes_total", labels) == (
                    sizes[peer] or None
                )

    # 2. the round gauge rose to the last round while the job ran; the phases in order
    # (the guest's own thread updates and reads its gauges, so this sequence is fixed)
    last = nodes[GUEST].status("coordinator", JOB).checkpoint_round
    assert last == 3  # four epochs of one mini-batch each
    assert scraper.rounds == sorted(scraper.rounds), scraper.rounds
    assert scraper.rounds[0] == -1 and scraper.rounds[-1] == last
    assert len(set(scraper.rounds)) >= 4, scraper.rounds
    assert list(dict.fromkeys(scraper.phases)) == ["align", "train", "predict"]

    # 3. once finished, the job counts as succeeded and its per-job series are gone
    for m in metrics.values():
        reg = m.registry
        states = {s: reg.get_sample_value("lianmo_jobs", {"state": s}) for s in JOB_STATES}
        assert states == {**dict.fromkeys(JOB_STATES, 0.0), "succeeded": 1.0}
        assert reg.get_sample_value("lianmo_job_round", {"job": JOB}) is None

    # 4. no label carries an id, a feature value or a path
    labels = scraper.labels | all_labels(metrics.values())
    assert ("job", JOB) in labels and ("peer", ARBITER) in labels
    assert not forbidden_labels(labels, read_ids(shared_data), tmp_path)


def test_the_label_check_catches_an_id_a_value_and_a_path(
    tmp_path: Path, shared_data: Path
) -> None:
    ids = read_ids(shared_data)
    planted = NodeMetrics()
    planted.serving_ids.labels(model=sorted(ids)[0]).inc()
    planted.serving_partials.labels(model="m", caller=str(tmp_path / "x.csv"), outcome="ok").inc()
    planted.serving_peer_errors.labels(peer="platform", reason="0.254879").inc()
    found = forbidden_labels(all_labels([planted]), ids, tmp_path)
    assert any("is an id" in f for f in found)
    assert any("caller=" in f and "path" in f for f in found)
    assert any("reason='0.254879' is a number" in f for f in found)
