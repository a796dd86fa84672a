"""Run a job across party nodes: prepare everywhere, start everywhere, watch, collect.

Failures are values until the end: the first party that fails is named with its own
error text, every other party is cancelled, and :class:`JobFailedError` carries that
party and text to the caller, so nobody has to search another institution's logs.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import typing as t
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lianmo.config import COORDINATED, JobSpec
from lianmo.coordinator.results import (
    JobMetrics,
    ModelMetrics,
    PartySummary,
    model_metrics_from_json,
)
from lianmo.errors import (
    AuthenticationError,
    ConfigError,
    JobCancelledError,
    JobFailedError,
    LianmoError,
    TransportError,
)
from lianmo.transport.control import JobStatusInfo

#: a party's states of a job that stopped before its end: ``resume`` continues them, a new
#: run of the same job id would only watch them
STOPPED = frozenset({"failed", "cancelled", "interrupted"})


class PartyControl(t.Protocol):
    """The coordinator's handle on one party node (gRPC in production)."""

    def prepare(self, job_id: str, spec_json: bytes) -> JobStatusInfo: ...

    def start(self, job_id: str) -> JobStatusInfo: ...

    def status(self, job_id: str) -> JobStatusInfo: ...

    def cancel(self, job_id: str) -> JobStatusInfo: ...

    def resume(self, job_id: str) -> JobStatusInfo: ...


ProgressCallback = Callable[[Mapping[str, JobStatusInfo]], None]


@dataclass(frozen=True)
class JobReport:
    """The outcome of a successful job: every party's result summary and the wall time."""

    spec: JobSpec
    results: dict[str, dict[str, t.Any]]
    wall_seconds: float

    @property
    def guest_result(self) -> dict[str, t.Any]:
        return self.results[self.spec.guest]

    def metrics(self) -> dict[str, t.Any]:
        """The machine-readable job output (metrics.json): metrics, loss, timings, traffic."""
        return self.job_metrics().to_json()

    def job_metrics(self) -> JobMetrics:
        """The same, typed: the guest's evaluation and counts, losses, each party's summary."""
        guest = self.guest_result
        return JobMetrics(
            job_id=self.spec.job_id,
            task=self.spec.task,
            wall_seconds=round(self.wall_seconds, 3),
            parties={name: PartySummary.from_json(r) for name, r in self.results.items()},
            validation=_evaluation(guest.get("validation")),
            scored_metrics=_evaluation(guest.get("metrics")),
            scored=guest.get("scored"),
            aligned=guest.get("aligned"),
            train_rows=guest.get("train_rows"),
            validation_rows=guest.get("validation_rows"),
            label_protection=guest.get("label_protection"),
            **self._losses(),
        )

    def _losses(self) -> dict[str, t.Any]:
        """Training losses: the arbiter's for coordinated LR, the guest's otherwise
        (two-party LR, SecureBoost)."""
        if self.spec.task != "train":
            return {}
        if isinstance(self.spec.model, COORDINATED) and self.spec.arbiter is not None:
            arbiter = self.results[str(self.spec.arbiter)]
            return {
                "loss": tuple(arbiter.get("losses", [])),
                "loss_per_round": tuple(arbiter.get("round_losses", [])),
                "epoch_seconds": tuple(arbiter.get("epoch_seconds", [])),
            }
        guest = self.guest_result
        out: dict[str, t.Any] = {"loss": tuple(guest.get("losses", []))}
        if "epoch_seconds" in guest:
            out["epoch_seconds"] = tuple(guest["epoch_seconds"])
        if "validation_loss" in guest:
            out["validation_loss"] = tuple(guest["validation_loss"])
        return out | {k: guest[k] for k in ("trees", "best_rounds") if k in guest}


def _evaluation(raw: object) -> ModelMetrics | None:
    return model_metrics_from_json(raw) if isinstance(raw, Mapping) else None


def run_job(
    spec: JobSpec,
    controls: Mapping[str, PartyControl],
    *,
    on_progress: ProgressCallback = lambda statuses: None,
    poll_interval: float = 0.5,
    resume: bool = False,
    unreachable_limit_s: float = 300.0,
    cancel: threading.Event | None = None,
) -> JobReport:
    """Run ``spec`` on the parties behind ``controls``; raise JobFailedError on failure.

    With ``resume`` the job already exists at the parties: every party that stopped
    (failed, cancelled, or interrupted by a node restart) continues from its latest
    checkpoint, and the running ones are watched as they are. While watching, a party
    whose node restarted is resumed at once, and a party that cannot be reached is
    retried for ``unreachable_limit_s`` before the job is failed in its name.

    Setting ``cancel`` (from any thread) cancels the job at every party and raises
    :class:`JobCancelledError`; so does KeyboardInterrupt, which is re-raised.
    """
    started = time.perf_counter()
    stop = cancel or threading.Event()
    touched: list[str] = []
    current = spec.guest  # the party being called when a call fails
    try:
        for current in _each_party(spec, stop):
            touched.append(current)
            prepared = controls[current].prepare(spec.job_id, spec.to_json())
            if not resume and prepared.state in STOPPED:
                raise ConfigError(
                    f"party '{current}' already has a job '{spec.job_id}' that stopped "
                    f"({prepared.state}); run the job again with a new job_id, or continue "
                    f"it with `lianmo job resume {spec.job_id}`"
                )
        for current in _each_party(spec, stop):
            if resume:
                controls[current].resume(spec.job_id)
            else:
                controls[current].start(spec.job_id)
        statuses = _watch(spec, controls, on_progress, poll_interval, unreachable_limit_s, stop)
    except JobFailedError as exc:  # a cancellation by this coordinator names no party
        _cancel_all(spec, controls, touched, except_party=exc.party)
        raise
    except LianmoError as exc:
        _cancel_all(spec, controls, touched, except_party=current)
        raise JobFailedError(current, str(exc)) from exc
    except KeyboardInterrupt:
        _cancel_all(spec, controls, touched, except_party="")  # Ctrl-C stops every party
        raise
    results = {n: json.loads(s.result_json) for n, s in statuses.items()}
    return JobReport(spec=spec, results=results, wall_seconds=time.perf_counter() - started)


def _each_party(spec: JobSpec, cancel: threading.Event) -> t.Iterator[str]:
    for name in spec.party_names:
        _check_cancelled(spec, cancel)
        yield name


def _check_cancelled(spec: JobSpec, cancel: threading.Event) -> None:
    if cancel.is_set():
        raise JobCancelledError(spec.job_id, "by this coordinator")


def last_common_round(spec: JobSpec, statuses: Mapping[str, JobStatusInfo]) -> int:
    """The last round every data party has checkpointed (-1: none yet)."""
    data_parties = [spec.guest, *spec.hosts]
    return min((statuses[p].checkpoint_round for p in data_parties if p in statuses), default=-1)


def _watch(
    spec: JobSpec,
    controls: Mapping[str, PartyControl],
    on_progress: ProgressCallback,
    poll_interval: float,
    unreachable_limit_s: float,
    cancel: threading.Event,
) -> dict[str, JobStatusInfo]:
    last: dict[str, JobStatusInfo] = {}
    unreachable_since: dict[str, float] = {}
    while True:
        for name in spec.party_names:
            _check_cancelled(spec, cancel)
            previous = last.get(name, JobStatusInfo(spec.job_id, name, "running"))
            last[name] = _poll(
                spec, previous, controls[name], unreachable_since, unreachable_limit_s
            )
        on_progress(dict(last))
        _raise_if_stopped(spec, last)
        if len(last) == len(spec.party_names) and all(
            s.state == "succeeded" for s in last.values()
        ):
            return last
        cancel.wait(poll_interval)


def _poll(
    spec: JobSpec,
    previous: JobStatusInfo,
    control: PartyControl,
    unreachable_since: dict[str, float],
    unreachable_limit_s: float,
) -> JobStatusInfo:
    """A party's status, resumed if its node restarted; while it cannot be reached, its
    previous status saying so (until ``unreachable_limit_s`` fails the job)."""
    name = previous.party
    try:
        status = control.status(spec.job_id)
        if status.state == "interrupted":  # its node restarted: go on from its checkpoint
            status = control.resume(spec.job_id)
    except AuthenticationError as exc:  # certificates do not heal by waiting
        raise JobFailedError(name, f"{exc} ({type(exc).__name__})") from exc
    except TransportError as exc:  # down or restarting: wait, up to the limit
        now = time.monotonic()
        since = unreachable_since.setdefault(name, now)
        if now - since >= unreachable_limit_s:
            raise JobFailedError(name, f"unreachable for {now - since:.0f}s: {exc}") from exc
        return dataclasses.replace(previous, detail=f"unreachable: {exc}")
    except LianmoError as exc:  # e.g. the node no longer knows the job
        raise JobFailedError(name, f"{exc} ({type(exc).__name__})") from exc
    unreachable_since.pop(name, None)
    return status


def _raise_if_stopped(spec: JobSpec, statuses: Mapping[str, JobStatusInfo]) -> None:
    """A failed party is named first; a party cancelled by a coordinator cancels the job."""
    for name, status in statuses.items():
        if status.state == "failed":
            reason = status.error or status.detail or status.state
            kind = f" ({status.error_kind})" if status.error_kind else ""
            raise JobFailedError(name, f"{reason}{kind}")
    for name, status in statuses.items():
        if status.state == "cancelled":
            raise JobCancelledError(spec.job_id, status.detail or "cancelled", party=name)


def _cancel_all(
    spec: JobSpec, controls: Mapping[str, PartyControl], touched: list[str], except_party: str
) -> None:
    for name in touched:
        if name == except_party:
            continue
        try:
            controls[name].cancel(spec.job_id)
        except LianmoError:
            pass  # best effort: the party may be the one that is down
