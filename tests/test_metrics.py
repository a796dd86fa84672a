"""A node's metrics: its own registry, the job gauges, and /metrics scraped over HTTP."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from lianmo.errors import ConfigError
from lianmo.metrics import JOB_STATES, JobGauge, NodeMetrics, serve_metrics


@dataclass(frozen=True)
class _Env:  # the three fields of an Envelope the counter reads
    sender: str
    receiver: str
    payload: bytes


@pytest.fixture
def endpoint() -> Iterator[tuple[NodeMetrics, int]]:
    metrics = NodeMetrics(party="broker")
    server, port = serve_metrics("127.0.0.1:0", metrics)
    try:
        yield metrics, port
    finally:
        _stop(server)


def _stop(server: WSGIServer) -> None:
    server.shutdown()
    server.server_close()


def scrape(port: int) -> dict[str, list[Sample]]:
    """``/metrics`` over HTTP, parsed: samples by metric family name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1
    return found[0] if found else None


def test_serving_metrics_are_scraped_with_their_names_and_labels(
    endpoint: tuple[NodeMetrics, int],
) -> None:
    metrics, port = endpoint
    metrics.serving_requests.labels(model="credit_lr", outcome="ok").inc(3)
    metrics.serving_requests.labels(model="credit_lr", outcome="fallback").inc()
    metrics.serving_seconds.labels(model="credit_lr", shape="single").observe(0.004)
    metrics.serving_seconds.labels(model="credit_lr", shape="single").observe(0.2)
    metrics.serving_ids.labels(model="credit_lr").inc(100)
    metrics.serving_peer_errors.labels(peer="platform", reason="UNAVAILABLE").inc()
    metrics.serving_partials.labels(model="credit_lr", caller="broker", outcome="ok").inc(2)
    metrics.serving_inflight.inc(2)
    metrics.serving_inflight.dec()
    got = scrape(port)
    requests = got["lianmo_serving_requests"]
    assert value(requests, "lianmo_serving_requests_total", model="credit_lr", outcome="ok") == 3
    assert value(requests, "lianmo_serving_requests_total", model="credit_lr", outcome="fallback")
    latency = got["lianmo_serving_request_seconds"]
    single = {"model": "credit_lr", "shape": "single"}
    assert value(latency, "lianmo_serving_request_seconds_count", **single) == 2
    assert value(latency, "lianmo_serving_request_seconds_bucket", **single, le="0.001") == 0
    assert value(latency, "lianmo_serving_request_seconds_bucket", **single, le="0.005") == 1
    assert value(latency, "lianmo_serving_request_seconds_bucket", **single, le="2.5") == 2
    assert value(got["lianmo_serving_ids"], "lianmo_serving_ids_total", model="credit_lr") == 100
    errors = got["lianmo_serving_peer_errors"]
    assert (
        value(errors, "lianmo_serving_peer_errors_total", peer="platform", reason="UNAVAILABLE")
        == 1
    )
    partial = {"model": "credit_lr", "caller": "broker", "outcome": "ok"}
    assert value(got["lianmo_serving_partials"], "lianmo_serving_partials_total", **partial) == 2
    assert value(got["lianmo_serving_inflight"], "lianmo_serving_inflight") == 1
    assert "process_resident_memory_bytes" in got  # the node process itself


def test_messages_and_bytes_are_counted_per_peer_and_direction(
    endpoint: tuple[NodeMetrics, int],
) -> None:
    metrics, port = endpoint
    metrics.on_message("sent", _Env("broker", "platform", b"x" * 10))
    metrics.on_message("sent", _Env("broker", "platform", b"x" * 5))
    metrics.on_message("received", _Env("platform", "broker", b"y" * 7))
    metrics.on_message("sent", _Env("broker", "arbiter", b""))
    got = scrape(port)
    msgs, sizes = got["lianmo_messages"], got["lianmo_message_bytes"]
    out = {"peer": "platform", "direction": "sent"}
    back = {"peer": "platform", "direction": "received"}
    assert value(msgs, "lianmo_messages_total", **out) == 2
    assert value(sizes, "lianmo_message_bytes_total", **out) == 15
    assert value(msgs, "lianmo_messages_total", **back) == 1
    assert value(sizes, "lianmo_message_bytes_total", **back) == 7
    assert value(msgs, "lianmo_messages_total", peer="arbiter", direction="sent") == 1


def test_job_gauges_show_live_jobs_and_count_every_state(
    endpoint: tuple[NodeMetrics, int],
) -> None:
    metrics, port = endpoint
    jobs = [
        JobGauge("j-run", "running", "train", 3, 8, 2),
        JobGauge("j-new", "prepared", "", 0, 0, -1),
        JobGauge("j-old", "succeeded", "train", 8, 8, 7),
        JobGauge("j-old2", "succeeded", "evaluate", 1, 1, 7),
    ]
    before = scrape(port)  # no source yet: every state at 0, no job series
    assert all(value(before["lianmo_jobs"], "lianmo_jobs", state=s) == 0 for s in JOB_STATES)
    assert before["lianmo_job_round"] == []
    metrics.watch_jobs(lambda: jobs)
    got = scrape(port)
    states = {s.labels["state"]: s.value for s in got["lianmo_jobs"]}
    assert states == {**dict.fromkeys(JOB_STATES, 0), "running": 1, "prepared": 1, "succeeded": 2}
    assert {s.labels["job"]: s.value for s in got["lianmo_job_round"]} == {"j-run": 2, "j-new": -1}
    assert value(got["lianmo_job_step"], "lianmo_job_step", job="j-run") == 3
    assert value(got["lianmo_job_steps"], "lianmo_job_steps", job="j-run") == 8
    assert [s.labels for s in got["lianmo_job_phase"]] == [{"job": "j-run", "phase": "train"}]
    jobs[0] = JobGauge("j-run", "running", "evaluate", 1, 2, 7)  # read again at each scrape
    got = scrape(port)
    assert [s.labels for s in got["lianmo_job_phase"]] == [{"job": "j-run", "phase": "evaluate"}]
    assert value(got["lianmo_job_round"], "lianmo_job_round", job="j-run") == 7


def test_nodes_in_one_process_keep_separate_registries() -> None:
    a, b = NodeMetrics(), NodeMetrics()  # a shared registry would refuse the second
    a.serving_ids.labels(model="m").inc(5)
    assert a.registry.get_sample_value("lianmo_serving_ids_total", {"model": "m"}) == 5
    assert b.registry.get_sample_value("lianmo_serving_ids_total", {"model": "m"}) is None


def test_only_metrics_are_served_over_plain_http(endpoint: tuple[NodeMetrics, int]) -> None:
    _, port = endpoint
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        text = response.read().decode()  # prometheus_client serves the same page on any path
    assert "lianmo_jobs" in text
    with pytest.raises(urllib.error.HTTPError, match="405"):
        urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/metrics", method="POST"), timeout=5
        )


def test_an_address_in_use_is_a_config_error_naming_the_key() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            ConfigError,
            match=rf"party 'broker' cannot serve metrics on '127.0.0.1:{port}' \(Address "
            r"already in use\); set \[metrics\] listen in the party config",
        ):
            serve_metrics(f"127.0.0.1:{port}", NodeMetrics(party="broker"))


@pytest.mark.parametrize("listen", ["9464", ":9464", "localhost:http", "127.0.0.1:70000"])
def test_a_malformed_address_is_a_config_error(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"\[metrics\] listen is .* must be 'host:port'"):
        serve_metrics(listen, NodeMetrics())
