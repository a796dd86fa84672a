"""A job coordinated in a background thread (:class:`lianmo.coordinator.jobs.Job`), against
scripted party handles: outcomes reach ``wait``, cancellation reaches every party, the
output folder says the same as the handle."""

from __future__ import annotations

import json
import threading
import time
import typing as t
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from lianmo.config import JobSpec
from lianmo.coordinator.jobs import Connect, Job
from lianmo.coordinator.output import read_metrics, read_status
from lianmo.coordinator.results import BinaryMetrics, JobMetrics, JobStatus, RegressionMetrics
from lianmo.coordinator.run import PartyControl
from lianmo.errors import JobCancelledError, JobFailedError, TransportError
from lianmo.transport.control import JobStatusInfo
from tests.coordinator.test_coordinator_run import SPEC, Scripted

RESULTS: dict[str, dict[str, t.Any]] = {
    "broker": {
        "role": "guest",
        "validation": {"auc": 0.91, "ks": 0.7, "rows": 114},
        "train_rows": 455,
        "validation_rows": 114,
        "phase_seconds": {"align": 1.5, "train": 3.25},
        "messages_sent": 12,
        "bytes_sent": 4096,
        "model_digest": "ab" * 32,
    },
    "platform": {"role": "host", "messages_sent": 7, "model_digest": "cd" * 32},
    "arbiter": {
        "role": "arbiter",
        "losses": [0.61],
        "round_losses": [0.7, 0.6],
        "epoch_seconds": [2.5],
    },
}


class Party(Scripted):
    """A scripted party that reports a real-looking result once it succeeded."""

    def _status(self, state: str) -> JobStatusInfo:
        status = super()._status(state)
        if state != "succeeded":
            return status
        result = json.dumps(RESULTS[self.name]).encode()
        return JobStatusInfo(status.job_id, status.party, state, result_json=result)


def _connect(controls: Mapping[str, PartyControl], gate: threading.Event | None = None) -> Connect:
    @contextmanager
    def connect(spec: JobSpec) -> Iterator[Mapping[str, PartyControl]]:
        if gate is not None:
            gate.wait(10)  # as a health check waits for a party that does not answer yet
        yield controls

    return connect


def _job(tmp_path: Path, controls: Mapping[str, PartyControl], **kw: t.Any) -> Job:
    return Job(SPEC, tmp_path / "out", _connect(controls), poll_interval=0.01, **kw)


def test_a_job_runs_in_the_background_and_its_metrics_are_metrics_json(tmp_path: Path) -> None:
    controls = {n: Party(n, ["running", "running", "succeeded"]) for n in SPEC.party_names}
    seen: list[JobStatus] = []
    job = _job(tmp_path, controls, on_progress=seen.append).start()
    assert (tmp_path / "out" / "job.json").exists()  # written before submit returns
    result = job.wait(timeout=10)
    assert result.metrics == read_metrics(tmp_path / "out") == job.metrics()
    assert result.metrics.to_json() == json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert result.metrics.validation == BinaryMetrics(rows=114, auc=0.91, ks=0.7)
    assert result.metrics.loss == (0.61,) and result.metrics.loss_per_round == (0.7, 0.6)
    assert result.metrics.parties["broker"].phase_seconds == {"align": 1.5, "train": 3.25}
    assert job.status().state == "succeeded" and job.done()
    assert {p.state for p in job.status().parties.values()} == {"succeeded"}
    assert seen[0].state == "running" and seen[-1].state == "succeeded"
    recorded = read_status(tmp_path / "out")
    assert recorded is not None and recorded.state == "succeeded"


def test_a_failing_party_is_named_by_wait_and_in_the_output(tmp_path: Path) -> None:
    controls = {
        "broker": Party("broker", ["running"]),
        "platform": Party("platform", ["running", "failed"], error="column 'x', data row 3"),
        "arbiter": Party("arbiter", ["running"]),
    }
    job = _job(tmp_path, controls).start()
    with pytest.raises(JobFailedError, match="party 'platform': column 'x', data row 3") as info:
        job.wait(timeout=10)
    assert info.value.party == "platform" and not isinstance(info.value, JobCancelledError)
    recorded = read_status(tmp_path / "out")
    assert recorded is not None and recorded.state == "failed"
    assert recorded.failed_party == "platform" and "data row 3" in str(recorded.error)
    assert controls["broker"].calls[-1] == controls["arbiter"].calls[-1] == "cancel"
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_cancel_from_another_thread_cancels_every_party(tmp_path: Path) -> None:
    controls = {n: Party(n, ["running"]) for n in SPEC.party_names}
    job = _job(tmp_path, controls).start()
    deadline = time.monotonic() + 10
    while len(job.status().parties) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    status = job.cancel(timeout=10)
    assert status.state == "cancelled" and job.done()
    assert all(c.calls[-1] == "cancel" for c in controls.values())
    with pytest.raises(JobCancelledError, match=r"was cancelled \(by this coordinator\)"):
        job.wait()
    recorded = read_status(tmp_path / "out")
    assert recorded is not None and recorded.state == "cancelled"
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_cancel_before_the_parties_answer_ends_the_job_at_once(tmp_path: Path) -> None:
    controls = {n: Party(n, ["running"]) for n in SPEC.party_names}
    gate = threading.Event()
    job = Job(SPEC, tmp_path / "out", _connect(controls, gate), poll_interval=0.01).start()
    started = time.monotonic()
    assert job.cancel(timeout=5).state == "cancelled"
    assert time.monotonic() - started < 2
    gate.set()  # the parties answer now: nothing must reach them
    job._thread.join(5)
    assert all(c.calls == [] for c in controls.values())
    with pytest.raises(JobCancelledError, match="before it reached the parties"):
        job.wait()


def test_a_party_cancelled_by_another_coordinator_cancels_the_job(tmp_path: Path) -> None:
    controls = {n: Party(n, ["running"]) for n in SPEC.party_names}
    controls["arbiter"] = Party("arbiter", ["running", "cancelled"])
    job = _job(tmp_path, controls).start()
    with pytest.raises(JobCancelledError, match="party 'arbiter' reports: cancelled") as info:
        job.wait(timeout=10)
    assert isinstance(info.value, JobFailedError)  # exit code 8, as any stopped job
    assert job.status().state == "cancelled" and job.status().failed_party is None


def test_parties_that_cannot_be_reached_fail_the_job_with_the_transport_error(
    tmp_path: Path,
) -> None:
    @contextmanager
    def unreachable(spec: JobSpec) -> Iterator[Mapping[str, PartyControl]]:
        raise TransportError("party 'platform' at 127.0.0.1:1 is not serving after 30s")
        yield {}

    job = Job(SPEC, tmp_path / "out", unreachable).start()
    with pytest.raises(TransportError, match="is not serving"):
        job.wait(timeout=10)
    recorded = read_status(tmp_path / "out")
    assert recorded is not None and recorded.state == "failed"
    assert "is not serving" in str(recorded.error)


def test_a_broken_progress_callback_does_not_stop_the_job(tmp_path: Path) -> None:
    controls = {n: Party(n, ["running", "succeeded"]) for n in SPEC.party_names}

    def broken(status: JobStatus) -> None:
        raise ValueError("a notebook widget failed")

    assert _job(tmp_path, controls, on_progress=broken).start().wait(timeout=10).metrics


def test_wait_and_metrics_say_when_the_job_is_still_running(tmp_path: Path) -> None:
    controls = {n: Party(n, ["running"]) for n in SPEC.party_names}
    job = _job(tmp_path, controls).start()
    try:
        with pytest.raises(TimeoutError, match="job 'j' is still"):
            job.wait(timeout=0.05)
        with pytest.raises(TimeoutError):
            job.metrics()
    finally:
        job.cancel(timeout=10)


def test_wait_inside_the_jobs_own_callback_refuses_rather_than_hangs(tmp_path: Path) -> None:
    controls = {n: Party(n, ["running", "succeeded"]) for n in SPEC.party_names}
    errors: list[BaseException] = []

    def waits(status: JobStatus) -> None:
        try:
            job.wait()
        except RuntimeError as exc:
            errors.append(exc)

    job = _job(tmp_path, controls, on_progress=waits).start()
    job.wait(timeout=10)
    assert errors and "would never return" in str(errors[0])


def test_metrics_round_trip_through_json(tmp_path: Path) -> None:
    raw = {
        "job_id": "sb",
        "task": "train",
        "wall_seconds": 9.5,
        "validation": {"rmse": 3.9, "mae": 3.2, "r2": 0.21, "rows": 84},
        "loss": [20.5, 12.25],
        "validation_loss": [21.0, 13.0],
        "trees": 2,
        "parties": {
            "broker": {
                "role": "guest",
                "phase_seconds": {"train": 1.0},
                "protocol_seconds": {},
                "protocol_counts": {"encrypt": 3},
                "messages_sent": 1,
                "bytes_sent": 2,
                "messages_received": 3,
                "bytes_received": 4,
                "model_digest": None,
                "audit_head": "ef" * 32,
            }
        },
    }
    metrics = JobMetrics.from_json(raw)
    assert metrics.to_json() == raw
    assert isinstance(metrics.validation, RegressionMetrics) and metrics.validation.r2 == 0.21
    status = JobStatus.from_json(json.loads(json.dumps(JobStatus("j", "running").to_json())))
    assert status.state == "running" and status.parties == {}
