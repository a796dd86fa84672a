"""The coordinator's failure handling, against scripted party handles."""

from __future__ import annotations

import time

import pytest

from lianmo.config import JobSpec
from lianmo.coordinator.run import run_job
from lianmo.errors import AuthenticationError, JobFailedError, TransportError, UnknownJobError
from lianmo.transport.control import JobStatusInfo

SPEC = JobSpec.from_dict(
    {
        "job_id": "j",
        "parties": [
            {"name": "broker", "role": "guest", "address": "-", "dataset": "d"},
            {"name": "platform", "role": "host", "address": "-", "dataset": "d"},
            {"name": "arbiter", "role": "arbiter", "address": "-"},
        ],
    }
)


class Scripted:
    """A party handle whose status follows a script; records the calls it gets."""

    def __init__(
        self, name: str, states: list[str | BaseException], error: str = "", held: str = ""
    ) -> None:
        self.name, self.states, self.error, self.calls = name, states, error, []
        self.held = held  # the state of a job this party already holds under the id

    def _status(self, state: str) -> JobStatusInfo:
        return JobStatusInfo(
            job_id="j",
            party=self.name,
            state=state,
            error=self.error,
            error_kind="DataError" if self.error else "",
            result_json=b"{}" if state == "succeeded" else b"",
        )

    def prepare(self, job_id: str, spec_json: bytes) -> JobStatusInfo:
        self.calls.append("prepare")
        return self._status(self.held or "prepared")

    def start(self, job_id: str) -> JobStatusInfo:
        self.calls.append("start")
        return self._status("running")

    def status(self, job_id: str) -> JobStatusInfo:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(state, BaseException):
            raise state
        return self._status(state)

    def cancel(self, job_id: str) -> JobStatusInfo:
        self.calls.append("cancel")
        return self._status("cancelled")

    def resume(self, job_id: str) -> JobStatusInfo:
        self.calls.append("resume")
        return self._status("running")


def test_the_first_failing_party_is_named_and_the_others_cancelled() -> None:
    controls = {
        "broker": Scripted("broker", ["running"]),
        "platform": Scripted("platform", ["running", "failed"], error="bad.csv row 3: 'abc'"),
        "arbiter": Scripted("arbiter", ["running"]),
    }
    with pytest.raises(JobFailedError, match=r"'platform': bad.csv row 3: 'abc' \(DataError\)"):
        run_job(SPEC, controls, poll_interval=0)
    assert controls["broker"].calls[-1] == controls["arbiter"].calls[-1] == "cancel"
    assert "cancel" not in controls["platform"].calls


def test_an_unreachable_party_is_blamed_once_the_limit_has_passed() -> None:
    controls = {
        "broker": Scripted("broker", ["running"]),
        "platform": Scripted("platform", [TransportError("platform unreachable")]),
        "arbiter": Scripted("arbiter", ["running"]),
    }
    started = time.monotonic()
    with pytest.raises(JobFailedError, match=r"unreachable for \d+s: platform unreachable") as info:
        run_job(SPEC, controls, poll_interval=0.01, unreachable_limit_s=0.3)
    assert time.monotonic() - started >= 0.3  # it waited for the party to come back
    assert info.value.party == "platform"
    assert controls["broker"].calls[-1] == controls["arbiter"].calls[-1] == "cancel"


@pytest.mark.parametrize(
    "error",
    [AuthenticationError("its certificate expired"), UnknownJobError("no job 'j' here")],
    ids=["certificate", "job-gone"],
)
def test_a_party_failing_for_good_is_blamed_at_once(error: Exception) -> None:
    controls = {
        "broker": Scripted("broker", ["running"]),
        "platform": Scripted("platform", [error]),
        "arbiter": Scripted("arbiter", ["running"]),
    }
    started = time.monotonic()
    with pytest.raises(JobFailedError, match=f"{error} \\({type(error).__name__}\\)") as info:
        run_job(SPEC, controls, poll_interval=0.01, unreachable_limit_s=60)
    assert time.monotonic() - started < 30  # not the unreachable limit
    assert info.value.party == "platform"


def test_ctrl_c_cancels_every_party() -> None:
    controls = {
        "broker": Scripted("broker", [KeyboardInterrupt()]),
        "platform": Scripted("platform", ["running"]),
        "arbiter": Scripted("arbiter", ["running"]),
    }
    with pytest.raises(KeyboardInterrupt):
        run_job(SPEC, controls, poll_interval=0)
    assert all(c.calls[-1] == "cancel" for c in controls.values())


def test_success_collects_every_result() -> None:
    controls = {n: Scripted(n, ["running", "succeeded"]) for n in SPEC.party_names}
    report = run_job(SPEC, controls, poll_interval=0)
    assert set(report.results) == set(SPEC.party_names)


@pytest.mark.parametrize("held", ["cancelled", "failed", "interrupted"])
def test_running_a_stopped_job_id_again_says_to_choose_a_new_one_or_resume(held: str) -> None:
    # e.g. the platform refused the first run at prepare and the others were cancelled:
    # a second run under the same id would only watch the stopped job
    controls = {
        "broker": Scripted("broker", ["running"], held=held),
        "platform": Scripted("platform", ["running"]),
        "arbiter": Scripted("arbiter", ["running"]),
    }
    with pytest.raises(JobFailedError, match=rf"'broker' already has a job 'j' that stopped "
                       rf"\({held}\); run the job again with a new job_id, or continue it "
                       r"with `lianmo job resume j`"):  # fmt: skip
        run_job(SPEC, controls, poll_interval=0)
    assert "start" not in controls["broker"].calls
    # resuming the same id is what resume is for
    controls = {n: Scripted(n, ["succeeded"], held=held) for n in ("broker", "platform", "arbiter")}
    run_job(SPEC, controls, poll_interval=0, resume=True)
    assert all(c.calls[:2] == ["prepare", "resume"] for c in controls.values())
