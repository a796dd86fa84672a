"""Run a job from the command line on top of the Python API: the progress view, Ctrl-C
(which cancels the job at every party), the summary, and the detached coordinator.

Signal handling lives here and only here: :class:`lianmo.Client` and its jobs never
touch signals, so they work in a notebook or off the main thread.
"""

from __future__ import annotations

import os
import signal
import sys
import typing as t
from pathlib import Path

import click

from lianmo.cli.client import Client
from lianmo.cli.progress import ProgressView
from lianmo.cli.summary import print_summary
from lianmo.config import JobSpec
from lianmo.coordinator.jobs import Job
from lianmo.coordinator.output import read_spec, start_output
from lianmo.coordinator.results import JobResult, JobStatus

LOG_FILE = "coordinator.log"  # a detached coordinator's output, in the job's folder


def stop_on_signals() -> None:
    """Turn SIGTERM (and SIGINT, even if inherited as ignored) into KeyboardInterrupt.

    Coordinator commands then unwind through their ``finally`` blocks: the job is
    cancelled at every party and any node processes they started are stopped.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


class CommandProgress:
    """A job's ``on_progress`` for the command: one line once the parties answer, then
    the live progress view (a bar in a terminal, plain lines otherwise)."""

    def __init__(self, spec: JobSpec, *, resume: bool = False) -> None:
        parties = ", ".join(f"{p.name}={p.role}" for p in spec.parties)
        n = len(spec.parties)
        how = f"resuming with {n} parties" if resume else f"{n} parties reachable"
        purpose = f", purpose '{spec.purpose}'" if spec.purpose else ""
        self._banner = f"job '{spec.job_id}': {how} ({parties}){purpose}"
        self._announced = False
        self._view = ProgressView()

    def __call__(self, status: JobStatus) -> None:
        answered = any(p.state != "unreachable" for p in status.parties.values())
        if not self._announced and status.state != "starting" and answered:
            self._announced = True  # not before a party answered: the banner says reachable
            click.echo(self._banner, err=True)
        if status.parties:
            self._view({n: p.to_info(status.job_id, n) for n, p in status.parties.items()})

    def close(self) -> None:
        self._view.close()


def follow(job: Job, view: CommandProgress, *, cancel_on_interrupt: bool) -> JobResult:
    """Wait for ``job``; on Ctrl-C (or SIGTERM) cancel it everywhere first, if asked."""
    try:
        return job.wait()
    except KeyboardInterrupt:
        if cancel_on_interrupt:
            job.cancel()
        else:
            click.echo(
                f"\nstopped watching job '{job.job_id}'; its parties go on (lianmo job watch "
                f"{job.output} to follow it again, lianmo job cancel {job.output} to stop it)",
                err=True,
            )
        raise
    finally:
        view.close()


def run_and_report(
    spec: JobSpec, output: Path, *, ca: Path, cert: Path, key: Path, resume: bool = False
) -> dict[str, t.Any]:
    """Coordinate ``spec`` over gRPC, show progress, write and print the results.

    Ctrl-C or SIGTERM cancels the job at every party. Returns metrics.json's content.
    """
    stop_on_signals()
    client = Client(ca=ca, cert=cert, key=key)
    view = CommandProgress(spec, resume=resume)
    if resume:
        job = client.resume(output, on_progress=view)
    else:
        job = client.submit(spec, output, on_progress=view)
    return report(follow(job, view, cancel_on_interrupt=True))


def watch_and_report(job_ref: str, *, ca: Path, cert: Path, key: Path) -> None:
    """Coordinate a submitted job until it ends; Ctrl-C stops watching, not the job."""
    stop_on_signals()
    client = Client(ca=ca, cert=cert, key=key)
    folder = client.job_folder(job_ref)
    view = CommandProgress(read_spec(folder))
    report(follow(client.attach(folder, on_progress=view), view, cancel_on_interrupt=False))


def report(result: JobResult) -> dict[str, t.Any]:
    """Print a finished job's summary; return metrics.json's content."""
    metrics = result.metrics.to_json()
    print_summary(metrics, result.metrics_path)
    return metrics


def start_detached(spec: JobSpec, output: Path, *, ca: Path, cert: Path, key: Path) -> int:
    """Write the job's output folder and start ``lianmo job watch OUTPUT`` in a session of
    its own (no terminal: closing this one does not stop it); return its process id."""
    Client(ca=ca, cert=cert, key=key)  # a bad identity fails here, not in the background
    start_output(output, spec)
    argv = [sys.executable, "-m", "lianmo.cli.main", "job", "watch", str(output.resolve())]
    for flag, path in (("--ca", ca), ("--cert", cert), ("--key", key)):
        argv += [flag, str(path.resolve())]
    log_flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(output / LOG_FILE), log_flags, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    # posix_spawn, not subprocess: nothing here waits for the child, and it outlives us
    return os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True)
