"""Run a job across party nodes: prepare everywhere, start everywhere, watch, collect.

Failures are values until the end: the first party that fails is named with its own
error text, every other party is cancelled, and :class:`JobFailedError` carries that
party and text to the caller, so nobody has to search another institution's logs.
"""

from __future__ import annotations

import dataclasses
import json
import time
import typing as t
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lianmo.config import JobSpec, LrSpec
from lianmo.errors import AuthenticationError, JobFailedError, LianmoError, TransportError
from lianmo.transport.control import JobStatusInfo


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
        """The machine-readable job output: metrics, loss, timings, message counts, digests."""
        out: dict[str, t.Any] = {
            "job_id": self.spec.job_id,
            "task": self.spec.task,
            "wall_seconds": round(self.wall_seconds, 3),
        }
        guest = self.guest_result
        for key in ("validation", "metrics", "scored", "aligned", "train_rows", "validation_rows"):
            if key in guest:
                out[key] = guest[key]
        if self.spec.task == "train" and isinstance(self.spec.model, LrSpec):
            arbiter = self.results[str(self.spec.arbiter)]
            out["loss"] = arbiter.get("losses", [])
            out["loss_per_round"] = arbiter.get("round_losses", [])
            out["epoch_seconds"] = arbiter.get("epoch_seconds", [])
        elif self.spec.task == "train":
            out["loss"] = guest.get("losses", [])
            for key in ("validation_loss", "trees", "best_rounds"):
                if key in guest:
                    out[key] = guest[key]
        out["parties"] = {
            name: {
                "role": r.get("role"),
                "phase_seconds": r.get("phase_seconds", {}),
                "protocol_seconds": r.get("protocol_seconds", {}),
                "protocol_counts": r.get("protocol_counts", {}),
                "messages_sent": r.get("messages_sent"),
                "bytes_sent": r.get("bytes_sent"),
                "messages_received": r.get("messages_received"),
                "bytes_received": r.get("bytes_received"),
                "model_digest": r.get("model_digest"),
                "audit_head": r.get("audit_head"),
            }
            for name, r in self.results.items()
        }
        return out


def run_job(
    spec: JobSpec,
    controls: Mapping[str, PartyControl],
    *,
    on_progress: ProgressCallback = lambda statuses: None,
    poll_interval: float = 0.5,
    resume: bool = False,
    unreachable_limit_s: float = 300.0,
) -> JobReport:
    """Run ``spec`` on the parties behind ``controls``; raise JobFailedError on failure.

    With ``resume`` the job already exists at the parties: every party that stopped
    (failed, cancelled, or interrupted by a node restart) continues from its latest
    checkpoint, and the running ones are watched as they are. While watching, a party
    whose node restarted is resumed at once, and a party that cannot be reached is
    retried for ``unreachable_limit_s`` before the job is failed in its name.
    """
    started = time.perf_counter()
    spec_json = spec.to_json()
    touched: list[str] = []
    current = spec.guest  # the party being called when a call fails
    try:
        for current in spec.party_names:
            touched.append(current)
            controls[current].prepare(spec.job_id, spec_json)
        for current in spec.party_names:
            if resume:
                controls[current].resume(spec.job_id)
            else:
                controls[current].start(spec.job_id)
        statuses = _watch(spec, controls, on_progress, poll_interval, unreachable_limit_s)
    except JobFailedError as exc:
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
) -> dict[str, JobStatusInfo]:
    last: dict[str, JobStatusInfo] = {}
    unreachable_since: dict[str, float] = {}
    while True:
        for name in spec.party_names:
            try:
                status = controls[name].status(spec.job_id)
                if status.state == "interrupted":  # its node restarted: go on from its checkpoint
                    status = controls[name].resume(spec.job_id)
            except AuthenticationError as exc:  # certificates do not heal by waiting
                raise JobFailedError(name, f"{exc} ({type(exc).__name__})") from exc
            except TransportError as exc:  # down or restarting: wait, up to the limit
                now = time.monotonic()
                since = unreachable_since.setdefault(name, now)
                if now - since >= unreachable_limit_s:
                    raise JobFailedError(
                        name, f"unreachable for {now - since:.0f}s: {exc}"
                    ) from exc
                previous = last.get(name, JobStatusInfo(spec.job_id, name, "running"))
                last[name] = dataclasses.replace(previous, detail=f"unreachable: {exc}")
                continue
            except LianmoError as exc:  # e.g. the node no longer knows the job
                raise JobFailedError(name, f"{exc} ({type(exc).__name__})") from exc
            unreachable_since.pop(name, None)
            last[name] = status
        on_progress(dict(last))
        for name, status in last.items():
            if status.state in ("failed", "cancelled"):
                reason = status.error or status.detail or status.state
                kind = f" ({status.error_kind})" if status.error_kind else ""
                raise JobFailedError(name, f"{reason}{kind}")
        if len(last) == len(spec.party_names) and all(
            s.state == "succeeded" for s in last.values()
        ):
            return last
        time.sleep(poll_interval)


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
