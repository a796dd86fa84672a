"""``lianmo.Client``: the coordinator's identity wired to the parties over gRPC.

The Python API's entry point. It lives in the composition root (``lianmo.cli``) because
it is where the coordinator's TLS identity, the gRPC control clients and the coordinator
layer's :class:`~lianmo.coordinator.jobs.Job` meet; the coordinator layer itself knows
parties only as :class:`~lianmo.coordinator.run.PartyControl` handles. ``import lianmo``
re-exports it (docs/api.md). Nothing here installs a signal handler or needs the main
thread.
"""

from __future__ import annotations

import os
import typing as t
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from lianmo.config import JobSpec
from lianmo.coordinator.jobs import Connect, Job, ProgressListener
from lianmo.coordinator.output import (
    list_jobs,
    read_spec,
    read_status,
    resolve_job,
    status_from_parties,
    write_status,
)
from lianmo.coordinator.results import JobStatus, PartyStatus
from lianmo.errors import LianmoError
from lianmo.transport.grpc_channel import ControlClient
from lianmo.transport.tls import TlsIdentity

SpecSource = JobSpec | Mapping[str, object] | str | os.PathLike[str]
JobRef = str | os.PathLike[str]


class Client:
    """The coordinator: submits jobs to party nodes and follows them.

    Parameters
    ----------
    ca, cert, key : path
        The coordinator's TLS identity: the CA all parties trust, and the coordinator's
        certificate and private key (the files ``lianmo job run`` takes as --ca/--cert/--key).
    output_root : path, optional
        Where each job's output folder goes (``OUTPUT_ROOT/JOB_ID``), default ``./jobs``.
    poll_interval : float, optional
        Seconds between polls of the parties while a job runs.
    health_timeout_s : float, optional
        How long a new job waits for every party to answer before it fails.

    Raises
    ------
    ConfigError
        If a TLS file is missing, unreadable, or the key does not match the certificate.
    """

    def __init__(
        self,
        *,
        ca: str | os.PathLike[str],
        cert: str | os.PathLike[str],
        key: str | os.PathLike[str],
        output_root: str | os.PathLike[str] = "jobs",
        poll_interval: float = 0.5,
        health_timeout_s: float = 30.0,
    ) -> None:
        self._identity = TlsIdentity.load(Path(cert), Path(key), Path(ca), party="coordinator")
        self.output_root = Path(output_root)
        self._poll_interval = poll_interval
        self._health_timeout_s = health_timeout_s

    def __repr__(self) -> str:
        return f"<lianmo.Client as {self._identity.own_name()!r}, jobs in {self.output_root}>"

    def submit(
        self,
        spec: SpecSource,
        output: str | os.PathLike[str] | None = None,
        *,
        on_progress: ProgressListener | None = None,
    ) -> Job:
        """Start a job and return at once; the job runs in a background thread.

        ``spec`` is a :class:`~lianmo.config.JobSpec`, a mapping with the job.yaml
        fields, or the path of a job.yaml. The output folder (default
        ``output_root/JOB_ID``) gets job.json now, coordinator.json as the job runs and
        metrics.json when it succeeds. Errors in the spec raise ConfigError here; errors
        at the parties come from :meth:`Job.wait`.
        """
        job_spec = _as_spec(spec)
        folder = Path(output) if output is not None else self.output_root / job_spec.job_id
        return self._job(job_spec, folder, on_progress, wait_healthy=True).start()

    def resume(self, job: JobRef, *, on_progress: ProgressListener | None = None) -> Job:
        """Continue a stopped job (its output folder or id) from every party's checkpoint."""
        folder = self.job_folder(job)
        spec = read_spec(folder)
        return self._job(spec, folder, on_progress, wait_healthy=False, resume=True).start()

    def attach(self, job: JobRef, *, on_progress: ProgressListener | None = None) -> Job:
        """Coordinate a submitted job (its output folder or id) again, until it ends.

        For a job whose coordinator went away (``lianmo job run --detach`` uses it): the
        parties are asked to prepare and start, which they ignore if they already do; a
        job that is already running is followed, and stopped parties stay stopped (use
        :meth:`resume` for those).
        """
        folder = self.job_folder(job)
        spec = read_spec(folder)
        return self._job(spec, folder, on_progress, wait_healthy=True, fresh=False).start()

    def status(self, job: JobRef) -> JobStatus:
        """Where the job stands now, as its parties answer (``unreachable`` if one does not).

        The job's state is the parties' together: ``succeeded`` when all did, else
        ``failed`` or ``cancelled`` if one is, else ``running``.
        """
        spec = read_spec(self.job_folder(job))
        parties = self._ask_each(spec, lambda c: c.status(spec.job_id))
        return status_from_parties(spec, parties)

    def cancel(self, job: JobRef) -> JobStatus:
        """Cancel a job (its output folder or id) at every party and mark its output.

        For a job this process does not hold (use :meth:`Job.cancel` for one it does):
        a coordinator still watching it sees the parties cancelled and stops too.
        Parties that cannot be reached show as ``unreachable`` in the returned status.
        A job that already ended keeps its recorded state.
        """
        folder = self.job_folder(job)
        spec = read_spec(folder)
        parties = self._ask_each(spec, lambda c: c.cancel(spec.job_id))
        status = status_from_parties(spec, parties, error="cancelled by 'lianmo job cancel'")
        recorded = read_status(folder)
        if status.state == "cancelled" and (recorded is None or not recorded.finished):
            write_status(folder, status)
        return status

    def jobs(self) -> list[JobStatus]:
        """The jobs under ``output_root`` with their last recorded state, by job id."""
        return [status for _folder, status in list_jobs(self.output_root)]

    def job_folder(self, job: JobRef) -> Path:
        """A job's output folder: the folder itself, or ``output_root/JOB_ID``."""
        return resolve_job(self.output_root, job)

    # -- wiring ----------------------------------------------------------------------------

    def _job(
        self,
        spec: JobSpec,
        folder: Path,
        on_progress: ProgressListener | None,
        *,
        wait_healthy: bool,
        resume: bool = False,
        fresh: bool = True,
    ) -> Job:
        return Job(
            spec,
            folder,
            self._connector(wait_healthy=wait_healthy),
            resume=resume,
            fresh=fresh,
            on_progress=on_progress,
            poll_interval=self._poll_interval,
        )

    def _connector(self, *, wait_healthy: bool) -> Connect:
        identity, timeout_s = self._identity, self._health_timeout_s

        @contextmanager
        def connect(spec: JobSpec) -> Iterator[dict[str, ControlClient]]:
            clients = {p.name: ControlClient(p.address, p.name, identity) for p in spec.parties}
            try:
                if wait_healthy:
                    for client in clients.values():
                        client.wait_healthy(timeout_s=timeout_s)
                yield clients
            finally:
                for client in clients.values():
                    client.close()

        return connect

    def _ask_each(
        self, spec: JobSpec, call: t.Callable[[ControlClient], t.Any]
    ) -> dict[str, PartyStatus]:
        """One short control call per party; a party that does not answer is unreachable."""
        out = {}
        for party in spec.parties:
            with ControlClient(
                party.address, party.name, self._identity, deadline_s=5.0, retries=1
            ) as client:
                try:
                    out[party.name] = PartyStatus.from_info(call(client))
                except LianmoError as exc:
                    out[party.name] = PartyStatus(state="unreachable", detail=str(exc))
        return out


def _as_spec(spec: SpecSource) -> JobSpec:
    if isinstance(spec, JobSpec):
        return spec
    if isinstance(spec, Mapping):
        return JobSpec.from_dict(dict(spec))
    return JobSpec.load(Path(spec))
