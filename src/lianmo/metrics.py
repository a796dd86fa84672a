"""Prometheus metrics of one party node, and the plaintext HTTP endpoint that serves them.

:class:`NodeMetrics` owns its own ``CollectorRegistry`` (several nodes share a process in
tests; the global default registry is never used) and the metric objects that the
federation path (messages and bytes per peer, job gauges) and the online scoring path
report to. :func:`serve_metrics` serves ``/metrics`` over plain HTTP for a scraper.

A label carries only party names, job ids, protocol phases, job states, model names and
fixed words (directions, outcomes, shapes, reasons): never a customer id, a feature
value or a file path. A scrape therefore reveals which jobs and peers a node has and how
much it exchanged, and no personal data.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lianmo.errors import ConfigError

#: ``lianmo_serving_requests_total`` outcomes
SERVING_OUTCOMES = ("ok", "error", "fallback", "refused", "overloaded")
#: ``lianmo_serving_request_seconds`` shapes: one id, or a batch of ids
SERVING_SHAPES = ("single", "batch")
#: latency buckets in seconds: 1 ms to 2.5 s
SERVING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: every state a job can be in at a node (``lianmo_jobs`` shows each, 0 when none)
JOB_STATES = ("prepared", "running", "succeeded", "failed", "cancelled", "interrupted")
#: the states whose jobs get per-job gauges (round, phase, step); finished ones drop out
LIVE_STATES = ("prepared", "running")
Direction = t.Literal["sent", "received"]


@dataclass(frozen=True, slots=True)
class JobGauge:
    """Where one job stands at this node, as its gauges show it."""

    job_id: str
    state: str
    phase: str  # "" before the first progress report
    step: int
    total: int
    round: int  # the last round this party checkpointed; -1 before the first


class _EnvelopeHeader(t.Protocol):
    """What the message counter reads of an envelope (lianmo.transport.envelope.Envelope)."""

    @property
    def sender(self) -> str: ...
    @property
    def receiver(self) -> str: ...
    @property
    def payload(self) -> bytes: ...


class NodeMetrics:
    """The metrics of one party node, in a registry of its own.

    The serving path counts with the attributes directly, e.g.
    ``metrics.serving_requests.labels(model="credit_lr", outcome="ok").inc()``. Label
    values must come from a fixed vocabulary (party, job and model names, the words in
    :data:`SERVING_OUTCOMES`, :data:`SERVING_SHAPES`, gRPC status names as reasons):
    never an id, a feature value or a file path, which would leak through the
    plaintext endpoint and grow one series per customer.
    """

    def __init__(self, *, party: str | None = None) -> None:
        self.party = party
        self.registry = CollectorRegistry()
        reg = self.registry
        self.serving_requests = Counter(
            "lianmo_serving_requests_total",
            "Scoring requests answered by this node as guest, per model and outcome",
            ["model", "outcome"],
            registry=reg,
        )
        self.serving_seconds = Histogram(
            "lianmo_serving_request_seconds",
            "Scoring request latency at the guest, from arrival to answer",
            ["model", "shape"],
            buckets=SERVING_BUCKETS,
            registry=reg,
        )
        self.serving_ids = Counter(
            "lianmo_serving_ids_total", "Ids scored, per model", ["model"], registry=reg
        )
        self.serving_peer_errors = Counter(
            "lianmo_serving_peer_errors_total",
            "Failed calls to a peer while scoring, per peer and reason",
            ["peer", "reason"],
            registry=reg,
        )
        self.serving_partials = Counter(
            "lianmo_serving_partials_total",
            "Partial scores this node answered as host, per model, calling guest and outcome",
            ["model", "caller", "outcome"],
            registry=reg,
        )
        self.serving_budget_refusals = Counter(
            "lianmo_serving_budget_refusals_total",
            "Part calls this node refused as host: the calling guest's id budget was spent",
            ["model", "caller"],
            registry=reg,
        )
        self.serving_budget_ids = Gauge(
            "lianmo_serving_budget_ids",
            "Distinct ids each guest has asked this node about in the id budget's window",
            ["caller"],
            registry=reg,
        )
        self.serving_inflight = Gauge(
            "lianmo_serving_inflight", "Scoring requests in progress", registry=reg
        )
        self.messages = Counter(
            "lianmo_messages_total",
            "Federation messages per peer and direction (all jobs)",
            ["peer", "direction"],
            registry=reg,
        )
        self.message_bytes = Counter(
            "lianmo_message_bytes_total",
            "Federation payload bytes per peer and direction (all jobs, before chunking)",
            ["peer", "direction"],
            registry=reg,
        )
        self._jobs = _JobCollector()
        reg.register(self._jobs)
        ProcessCollector(registry=reg)

    def watch_jobs(self, source: Callable[[], Iterable[JobGauge]]) -> None:
        """Read the job gauges from ``source`` at every scrape (the node's own job table)."""
        self._jobs.source = source

    def on_message(self, direction: Direction, envelope: _EnvelopeHeader) -> None:
        """Count one message (a :class:`lianmo.transport.envelope.MessageObserver`)."""
        peer = envelope.receiver if direction == "sent" else envelope.sender
        self.messages.labels(peer=peer, direction=direction).inc()
        self.message_bytes.labels(peer=peer, direction=direction).inc(len(envelope.payload))


class _JobCollector(Collector):
    """Job gauges computed at scrape time from the node's jobs, so they never drift."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[JobGauge]] = lambda: ()

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        return list(self._families(list(self.source())))

    def _families(self, jobs: list[JobGauge] | None = None) -> Iterator[Metric]:
        states = GaugeMetricFamily(
            "lianmo_jobs", "Jobs this node holds, per state", labels=["state"]
        )
        by_job = {
            "round": GaugeMetricFamily(
                "lianmo_job_round",
                "Last round this party checkpointed in a live job (-1 before the first)",
                labels=["job"],
            ),
            "step": GaugeMetricFamily(
                "lianmo_job_step", "Steps done in a live job's current phase", labels=["job"]
            ),
            "total": GaugeMetricFamily(
                "lianmo_job_steps",
                "Steps of a live job's current phase (0 while unknown)",
                labels=["job"],
            ),
        }
        phase = GaugeMetricFamily(
            "lianmo_job_phase",
            "A live job's current phase (1 for that phase)",
            labels=["job", "phase"],
        )
        if jobs is not None:
            counts = dict.fromkeys(JOB_STATES, 0)
            for job in jobs:
                counts[job.state] = counts.get(job.state, 0) + 1
                if job.state not in LIVE_STATES:
                    continue
                for key, family in by_job.items():
                    family.add_metric([job.job_id], getattr(job, key))
                if job.phase:
                    phase.add_metric([job.job_id, job.phase], 1)
            for state, n in counts.items():
                states.add_metric([state], n)
        yield states
        yield from by_job.values()
        yield phase


def serve_metrics(listen: str, metrics: NodeMetrics) -> tuple[WSGIServer, int]:
    """Serve ``metrics`` as ``/metrics`` over plain HTTP on ``listen`` ('host:port').

    Port 0 binds a free port. Returns the server (stop it with ``shutdown()`` and
    ``server_close()``) and the bound port.

    Raises
    ------
    ConfigError
        If ``listen`` is not 'host:port' or cannot be bound (address in use, not local).
    """
    who = f"party '{metrics.party}'" if metrics.party else "the node"
    host, port = _host_port(listen, who)
    try:
        server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:  # in use, not an address of this machine, unknown host
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"{who} cannot serve metrics on {listen!r} ({reason}); set [metrics] listen in "
            "the party config to a free local address, or stop what uses that port"
        ) from None
    return server, int(server.server_port)


def _host_port(listen: str, who: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")  # [::1]:9464
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"{who}: [metrics] listen is {listen!r} but must be 'host:port' "
            "(e.g. '0.0.0.0:9464'); fix it in the party config"
        )
    return host, int(port)
