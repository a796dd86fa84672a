"""A job coordinated in a background thread: the handle the Python API returns.

:class:`Job` runs :func:`lianmo.coordinator.run.run_job` in a thread of its own and
writes the job's output folder as it goes (job.json, coordinator.json, metrics.json). It
installs no signal handler and works from any thread, so a notebook, a web service or
the ``lianmo`` command can drive it; the command alone turns Ctrl-C into :meth:`Job.cancel`.
How the parties are reached is given to it (``connect``): the composition root
(:mod:`lianmo.cli.client`) wires gRPC and TLS, tests wire scripted handles.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path

from lianmo.config import JobSpec
from lianmo.coordinator.output import job_status, start_output, write_output, write_status
from lianmo.coordinator.results import JobMetrics, JobResult, JobStatus
from lianmo.coordinator.run import PartyControl, run_job
from lianmo.errors import JobCancelledError, JobFailedError, LianmoError
from lianmo.transport.control import JobStatusInfo

_LOG = logging.getLogger("lianmo.coordinator")

#: opens the coordinator's handles on the parties of a job (waiting until they answer,
#: if it must) and closes them on leaving; a cancellation set meanwhile is noticed after
Connect = Callable[[JobSpec], AbstractContextManager[Mapping[str, PartyControl]]]
ProgressListener = Callable[[JobStatus], None]


class Job:
    """A job run by this coordinator in a background thread.

    Made by :meth:`lianmo.Client.submit` (or ``resume``, ``attach``); the thread starts
    with :meth:`start`. ``on_progress`` is called from that thread with a
    :class:`JobStatus` after every poll of the parties (about twice a second) and once
    when the job ends; an exception it raises is logged and ignored.

    The thread is a daemon: a script that ends without :meth:`wait` leaves the parties
    to finish on their own, and ``lianmo job watch OUTPUT`` takes the job up again.
    """

    def __init__(
        self,
        spec: JobSpec,
        output: Path,
        connect: Connect,
        *,
        resume: bool = False,
        fresh: bool = True,
        on_progress: ProgressListener | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self.spec = spec
        self.output = Path(output)
        self._connect = connect
        self._resume = resume
        self._fresh = fresh
        self._listener = on_progress
        self._poll_interval = poll_interval
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._reached_parties = False
        self._ended = False
        self._status = JobStatus(job_id=spec.job_id, state="starting")
        self._result: JobResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"lianmo-job-{spec.job_id}", daemon=True
        )

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    def __repr__(self) -> str:
        return f"<lianmo.Job {self.job_id!r} {self._status.state} output={str(self.output)!r}>"

    def start(self) -> Job:
        """Write the output folder's job.json (and clear old metrics), then start coordinating."""
        if self._fresh:
            start_output(self.output, self.spec)
        self._thread.start()
        return self

    def status(self) -> JobStatus:
        """Where the job stands, as last polled from the parties (no call of its own)."""
        with self._lock:
            return self._status

    def done(self) -> bool:
        """True once the job succeeded, failed or was cancelled."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> JobResult:
        """Block until the job ends; return its result.

        Raises
        ------
        JobFailedError
            If a party failed (``party`` names it, ``reason`` says why);
            :class:`JobCancelledError` if the job was cancelled.
        LianmoError
            If the parties could not be reached (TransportError, AuthenticationError).
        TimeoutError
            If the job is still running after ``timeout`` seconds.
        """
        if threading.current_thread() is self._thread and not self._done.is_set():
            raise RuntimeError("Job.wait() inside the job's own on_progress would never return")
        if not self._done.wait(timeout):
            raise TimeoutError(f"job '{self.job_id}' is still {self.status().state}")
        if self._result is None:
            raise self._error or RuntimeError(f"job '{self.job_id}' ended without a result")
        return self._result

    def metrics(self) -> JobMetrics:
        """The metrics of the finished job (what metrics.json holds).

        Raises what :meth:`wait` raises, and TimeoutError if the job is still running.
        """
        return self.wait(timeout=0).metrics

    def cancel(self, timeout: float | None = None) -> JobStatus:
        """Cancel the job at every party; wait (up to ``timeout``) until it is done.

        Cancelling a finished job changes nothing. Returns the job's status.
        """
        with self._lock:
            self._cancel.set()
            before_parties = not self._reached_parties
        if before_parties:  # nothing reached a party yet: the job ends here
            self._end("cancelled", JobCancelledError(self.job_id, "before it reached the parties"))
        if threading.current_thread() is not self._thread:
            self._done.wait(timeout)
        return self.status()

    # -- the coordinating thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            with self._connect(self.spec) as controls:
                if not self._enter_parties():
                    return  # cancelled while the parties were being reached
                report = run_job(
                    self.spec,
                    controls,
                    on_progress=self._progress,
                    poll_interval=self._poll_interval,
                    resume=self._resume,
                    cancel=self._cancel,
                )
            write_output(self.output, report)
            self._end("succeeded", result=JobResult(self.job_id, self.output, report.job_metrics()))
        except JobCancelledError as exc:
            self._end("cancelled", exc)
        except BaseException as exc:  # every outcome must reach wait()
            if not isinstance(exc, LianmoError):
                _LOG.error("job %s: the coordinator failed", self.job_id, exc_info=exc)
            self._end("failed", exc)

    def _enter_parties(self) -> bool:
        with self._lock:
            if self._cancel.is_set():
                return False
            self._reached_parties = True
        self._progress({})
        return True

    def _progress(self, statuses: Mapping[str, JobStatusInfo]) -> None:
        status = job_status(self.spec, "running", statuses)
        with self._lock:
            if self._ended:
                return
            self._status = status
        write_status(self.output, status)
        self._notify(status)

    def _end(
        self, state: str, error: BaseException | None = None, result: JobResult | None = None
    ) -> None:
        """Record how the job ended, tell the listener, then release :meth:`wait`."""
        party, text = None, None
        if isinstance(error, JobCancelledError):
            text = str(error)
        elif isinstance(error, JobFailedError):
            party, text = error.party, error.reason
        elif error is not None:
            text = str(error) if isinstance(error, LianmoError) else f"internal error: {error!r}"
        with self._lock:
            if self._ended:
                return
            self._ended = True
            status = dataclasses.replace(
                self._status, state=state, failed_party=party, error=text, updated=time.time()
            )
            self._status, self._error, self._result = status, error, result
        try:
            write_status(self.output, status)
        except OSError:
            _LOG.exception("job %s: cannot record its end in %s", self.job_id, self.output)
        self._notify(status)
        self._done.set()

    def _notify(self, status: JobStatus) -> None:
        if self._listener is None:
            return
        try:
            self._listener(status)
        except Exception:  # a broken progress display must not stop the job
            _LOG.exception("job %s: on_progress raised", self.job_id)
