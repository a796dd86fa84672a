"""Concurrent requests' questions to one host go out together; each gets its own rows."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from lianmo.errors import TransportError
from lianmo.node.serving.coalesce import Coalescer
from lianmo.transport.scoring import PartAnswer, PartQuery


class SlowHost:
    """Answers each id with its number as the partial score, after ``delay`` seconds."""

    def __init__(self, delay: float, fail: bool = False) -> None:
        self.delay, self.fail = delay, fail
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, host: str, query: PartQuery, timeout: float) -> PartAnswer:
        self.asked.append(query.ids)
        time.sleep(self.delay)
        if self.fail:
            raise TransportError(f"call to party '{host}' failed: UNAVAILABLE")
        values = np.array([[float(i)] for i in query.ids])
        return PartAnswer(query.version, np.ones(len(query.ids), bool), partial=values)


def _ask_together(coalescer: Coalescer, n: int, budget: float = 5.0) -> list[object]:
    out: list[object] = [None] * n

    def one(k: int) -> None:
        query = PartQuery("credit", "m1", "s" * 64, (str(k), str(100 + k)))
        try:
            out[k] = coalescer.ask("platform", query, budget)
        except TransportError as exc:
            out[k] = exc

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for th in threads:
        th.start()
        time.sleep(0.002)
    for th in threads:
        th.join()
    return out


def test_queued_questions_go_in_one_call_and_each_gets_its_own_rows() -> None:
    host = SlowHost(0.05)
    answers = _ask_together(Coalescer(host, max_ids=1000), 12)
    for k, answer in enumerate(answers):
        assert isinstance(answer, PartAnswer)
        assert answer.partial is not None
        assert answer.partial[:, 0].tolist() == [float(k), float(100 + k)]
    assert len(host.asked) < 12  # joined: the first alone, the rest behind it
    assert sorted(i for ids in host.asked for i in ids) == sorted(
        i for k in range(12) for i in (str(k), str(100 + k))
    )
    assert len(host.asked[0]) == 2  # a request with no call in flight waits for nothing


def test_a_joined_call_holds_at_most_max_ids() -> None:
    host = SlowHost(0.03)
    _ask_together(Coalescer(host, max_ids=4), 10)
    assert max(len(ids) for ids in host.asked) <= 4


def test_a_failed_call_fails_every_request_in_it() -> None:
    answers = _ask_together(Coalescer(SlowHost(0.03, fail=True), max_ids=1000), 6)
    assert all(isinstance(a, TransportError) and "UNAVAILABLE" in str(a) for a in answers)


def test_a_request_queued_past_its_deadline_gives_up_alone() -> None:
    coalescer = Coalescer(SlowHost(0.5), max_ids=1000)
    first = threading.Thread(
        target=coalescer.ask, args=("platform", PartQuery("m", "v", "s", ("1",)), 5.0)
    )
    first.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(TransportError, match="within the deadline"):
        coalescer.ask("platform", PartQuery("m", "v", "s", ("2",)), 0.1)
    assert time.monotonic() - started < 0.4
    first.join()
