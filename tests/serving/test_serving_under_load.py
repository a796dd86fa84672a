"""Under load: a host killed and restarted, and a new version promoted at one party first.

Real ``lianmo party serve`` processes over mutual TLS (tests/serving/processes.py), four
decision-engine threads asking the guest for one id at a time, without pause. While the
host is dead every request fails fast, with an error naming it, well within the guest's
500 ms deadline; once it is back the same guest process scores again. While a new version
is promoted at the host only, the host hands over (``[serving] handover_s``): every request
is still answered, with the old version, until the guest follows. No answer ever carries
a score that differs from its version's batch score (no mixed versions).
"""

from __future__ import annotations

import csv
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lianmo.errors import LianmoError
from lianmo.transport.scoring import ScoreQuery, ScoringClient
from lianmo.transport.tls import TlsIdentity
from tests.serving.processes import CLIENT, federation

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
LR = {"type": "hetero_lr", "epochs": 2, "batch_size": 320}


@dataclass
class Outcome:
    start: float
    seconds: float
    version: str = ""
    id: str = ""
    value: float | None = None
    error: str = ""


class Load:
    """Threads asking for one random validation id at a time until stopped."""

    def __init__(self, client: ScoringClient, ids: list[str], threads: int = 4) -> None:
        self.client, self.ids = client, ids
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(k,)) for k in range(threads)]

    def __enter__(self) -> Load:
        for th in self._threads:
            th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for th in self._threads:
            th.join()

    def _run(self, k: int) -> None:
        n = 0
        while not self._stop.is_set():
            id_ = self.ids[(k * 7919 + n) % len(self.ids)]
            n += 1
            started = time.monotonic()
            try:
                answer = self.client.score(ScoreQuery("credit", "", (id_,)), 5)
                item = answer.scores[0]
                out = Outcome(started, time.monotonic() - started, answer.version, id_,
                              item.values[0] if item.values else None, item.error)  # fmt: skip
            except LianmoError as exc:
                out = Outcome(started, time.monotonic() - started, error=str(exc))
            with self._lock:
                self.outcomes.append(out)

    def between(self, lo: float, hi: float) -> list[Outcome]:
        """The requests that started at ``lo`` or later and ended before ``hi``."""
        with self._lock:
            return [o for o in self.outcomes if lo <= o.start and o.start + o.seconds < hi]


def _validation(folder: Path) -> dict[str, float]:
    with (folder / "validation_scores.csv").open(newline="") as fh:
        return {row["id"]: float(row["score"]) for row in csv.DictReader(fh)}


def test_a_killed_host_fails_requests_fast_and_a_new_version_never_mixes(
    tmp_path: Path, shared_data: Path
) -> None:
    fed = federation(tmp_path, shared_data)
    try:
        ports = {name: fed.start(name) for name in ("broker", "platform")}
        fed.train("m1", ports, LR)
        fed.train("m2", ports, {**LR, "epochs": 4})
        for name in ("broker", "platform"):
            fed.promote(name, "credit", "m1")
        jobs = fed.configs["broker"].parent / "jobs"
        batch = {v: _validation(jobs / v) for v in ("m1", "m2")}
        ids = sorted(batch["m1"])
        guest_pid = fed.nodes["broker"].proc.pid
        me = TlsIdentity.load(fed.certs / f"{CLIENT}.pem", fed.certs / f"{CLIENT}.key",
                              fed.certs / "ca.pem")  # fmt: skip
        client = ScoringClient(fed.serving["broker"], me, "broker")
        with Load(client, ids) as load:
            time.sleep(1.0)
            killed = time.monotonic()
            fed.nodes["platform"].proc.send_signal(signal.SIGKILL)
            fed.nodes["platform"].proc.wait()
            time.sleep(2.0)
            restarted = time.monotonic()
            fed.start("platform")  # same config: same ports, same promoted version
            deadline = time.monotonic() + 20
            while not any(o.value is not None for o in load.between(restarted, 1e18)):
                assert time.monotonic() < deadline, "the guest never scored again"
                time.sleep(0.1)
            recovered = time.monotonic()
            time.sleep(0.5)
            fed.promote("platform", "credit", "m2")  # the host moves first
            time.sleep(1.5)
            host_only = time.monotonic()
            time.sleep(1.0)
            guest_promoting = time.monotonic()  # from here a request may see m2 at both
            fed.promote("broker", "credit", "m2")
            promoted = time.monotonic()
            deadline = time.monotonic() + 10
            while not any(o.version == "m2" for o in load.between(promoted, 1e18)):
                assert time.monotonic() < deadline, "the guest never served m2"
                time.sleep(0.1)
            time.sleep(0.5)
        client.close()
        assert fed.nodes["broker"].proc.pid == guest_pid and fed.nodes["broker"].proc.poll() is None

        before = load.between(0, killed)
        assert before and not [o for o in before if o.error]
        dead = load.between(killed + 0.3, restarted)  # the kill has reached the guest
        assert len(dead) >= 8, "the load stalled while the host was down"
        assert all(o.value is None and "host 'platform'" in o.error for o in dead), dead[:3]
        assert max(o.seconds for o in dead) < 1.5  # the 500 ms deadline, not the client's 5 s
        back = load.between(recovered, recovered + 0.5)
        assert back and all(o.value is not None for o in back)
        window = load.between(host_only, guest_promoting)  # the host hands m1 over
        odd = [o for o in window if o.value is None or o.error or o.version != "m1"]
        assert window and not odd, odd[:3]
        for o in load.outcomes:  # every score is its own version's batch score
            if o.value is not None:
                assert o.value == pytest.approx(batch[o.version][o.id], abs=1e-9)
    finally:
        fed.stop()
