"""Domain side of the control service: job status records and the handler a node implements."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

JobState = t.Literal["prepared", "running", "succeeded", "failed", "cancelled", "interrupted"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class JobStatusInfo:
    """What one party reports about one job.

    ``error`` is the party's own error text and ``error_kind`` the lianmo error class
    name, so the coordinator can show them as they are. ``result_json`` holds the
    party's result summary once the job succeeded. ``checkpoint_round`` is the last
    round the party checkpointed (-1: none), from which a resumed job goes on.
    """

    job_id: str
    party: str
    state: str
    phase: str = ""
    step: int = 0
    total_steps: int = 0
    error: str = ""
    error_kind: str = ""
    result_json: bytes = b""
    detail: str = ""
    checkpoint_round: int = -1

    @property
    def finished(self) -> bool:
        """True once the job can no longer change state at this party."""
        return self.state in TERMINAL_STATES


class ControlHandler(t.Protocol):
    """What a party node does when the coordinator calls it.

    ``caller`` is the authenticated identity (certificate name) of the coordinator.
    Methods raise :class:`lianmo.errors.LianmoError` subclasses, which the gRPC layer
    maps to status codes and carries back with their text and class.
    """

    def prepare(self, caller: str, job_id: str, spec_json: bytes) -> JobStatusInfo: ...

    def start(self, caller: str, job_id: str) -> JobStatusInfo: ...

    def status(self, caller: str, job_id: str) -> JobStatusInfo: ...

    def cancel(self, caller: str, job_id: str) -> JobStatusInfo: ...

    def resume(self, caller: str, job_id: str) -> JobStatusInfo: ...
