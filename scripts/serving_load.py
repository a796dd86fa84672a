"""Closed-loop load on a scoring service, and the latency and throughput it measures.

Used by ``bench_serving.py`` (and its test). A *driver* keeps ``concurrency`` requests
in flight, each worker with its own random stream of ids: it sends one request, waits
for the answer, checks it and sends the next. Two drivers:

- :func:`run_threads`: one OS thread per worker, each calling ``call(ids)`` (a
  :class:`~lianmo.transport.scoring.ScoringClient`, or the service itself in process);
- :func:`run_aio`: one asyncio task per worker on a single ``grpc.aio`` channel, for
  when the client's threads rather than the server are what limits the load.

Only answers that arrive inside the measuring window (after the warm-up, before the end)
count: their latencies give the percentiles, their number over the window's length the
throughput. Every answer is checked: one score per id asked, in order, no per-id error,
no fallback; anything else is counted and its first messages kept.
"""

from __future__ import annotations

import asyncio
import threading
import time
import typing as t
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from lianmo.errors import LianmoError
from lianmo.transport.scoring import ScoreAnswer

#: asks for the scores of some ids, returns the answer (raises on a failed request)
ScoreCall = Callable[[tuple[str, ...]], t.Any]
#: what is wrong with an answer to the ids asked ('' if nothing)
Check = Callable[[tuple[str, ...], t.Any], str]
#: how many error messages a run keeps (it counts all)
KEPT_ERRORS = 5


@dataclass
class Tally:
    """What the workers of one run saw inside the window (appended under a lock)."""

    latencies: list[float] = field(default_factory=list)  # seconds, one per counted request
    scores: int = 0
    errors: int = 0
    messages: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, scored: int, problem: str) -> None:
        with self.lock:
            if problem:
                self.errors += 1
                if len(self.messages) < KEPT_ERRORS:
                    self.messages.append(problem)
                return
            self.latencies.append(seconds)
            self.scores += scored


@dataclass(frozen=True)
class LoadResult:
    """One run: ``requests`` answered well inside ``window_s`` seconds, and their latencies."""

    concurrency: int
    batch: int
    window_s: float
    requests: int
    scores: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests_per_s: float
    scores_per_s: float
    error_messages: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, t.Any]:
        out = asdict(self)
        out["error_messages"] = list(self.error_messages)
        return out


def summarise(tally: Tally, *, concurrency: int, batch: int, window_s: float) -> LoadResult:
    """Percentiles (nearest rank) of the counted latencies, and throughput over the window."""
    if window_s <= 0:
        raise ValueError(f"the measuring window must be positive, got {window_s} s")
    ms = np.asarray(tally.latencies, dtype=np.float64) * 1000.0
    if len(ms):
        p50, p95, p99 = np.percentile(ms, [50, 95, 99], method="inverted_cdf")
        mean, top = float(ms.mean()), float(ms.max())
    else:
        p50 = p95 = p99 = mean = top = float("nan")
    return LoadResult(
        concurrency=concurrency,
        batch=batch,
        window_s=round(window_s, 3),
        requests=len(ms),
        scores=tally.scores,
        errors=tally.errors,
        p50_ms=round(float(p50), 3),
        p95_ms=round(float(p95), 3),
        p99_ms=round(float(p99), 3),
        mean_ms=round(mean, 3),
        max_ms=round(top, 3),
        requests_per_s=round(len(ms) / window_s, 1),
        scores_per_s=round(tally.scores / window_s, 1),
        error_messages=tuple(tally.messages),
    )


def check_answer(asked: tuple[str, ...], answer: ScoreAnswer) -> str:
    """'' if ``answer`` scores every id asked, in order, with no error; else what is wrong."""
    if len(answer.scores) != len(asked):
        return f"asked {len(asked)} ids, got {len(answer.scores)} answers"
    for want, got in zip(asked, answer.scores, strict=True):
        if got.id != want:
            return f"asked id {want!r}, the answer is for {got.id!r}"
        if got.error:
            return f"id {want!r}: {got.error}"
        if got.fallback or not got.values:
            return f"id {want!r}: {'a fallback score' if got.fallback else 'no score'}"
    return ""


def describe(exc: BaseException) -> str:
    """One line for a failed request (a gRPC error by its status code and details)."""
    code, details = getattr(exc, "code", None), getattr(exc, "details", None)
    if callable(code) and callable(details):
        return f"{type(exc).__name__} {getattr(code(), 'name', code())}: {details()}"
    return f"{type(exc).__name__}: {exc}"


def id_stream(
    ids: Sequence[str], batch: int, seed: int, worker: int
) -> t.Iterator[tuple[str, ...]]:
    """Endless requests of ``batch`` distinct ids drawn at random; one stream per worker."""
    if batch > len(ids):
        raise ValueError(f"a request of {batch} ids needs at least {batch} ids, got {len(ids)}")
    rng = np.random.default_rng([seed, worker])
    pool = np.asarray(ids, dtype=object)
    while True:
        picks = (
            rng.choice(len(pool), size=batch, replace=False)
            if batch > 1
            else [rng.integers(len(pool))]
        )
        yield tuple(pool[picks].tolist())


@dataclass(frozen=True)
class Window:
    """When counting starts and ends (``time.perf_counter`` seconds)."""

    start: float
    end: float

    @classmethod
    def after(cls, warmup_s: float, duration_s: float) -> Window:
        if duration_s <= 0 or warmup_s < 0:
            raise ValueError(
                f"need a positive duration and a warm-up >= 0, got {duration_s}, {warmup_s}"
            )
        start = time.perf_counter() + warmup_s
        return cls(start, start + duration_s)

    def counts(self, done: float) -> bool:
        return self.start <= done <= self.end


def run_threads(
    call: ScoreCall,
    ids: Sequence[str],
    *,
    concurrency: int,
    batch: int,
    warmup_s: float,
    duration_s: float,
    seed: int = 0,
    check: Check = check_answer,
) -> LoadResult:
    """``concurrency`` threads, closed loop, each calling ``call`` with its own ids;
    ``check`` says what is wrong with an answer (by default: :func:`check_answer`)."""
    tally = Tally()
    window = Window.after(warmup_s, duration_s)

    def worker(k: int) -> None:
        for asked in id_stream(ids, batch, seed, k):
            began = time.perf_counter()
            if began >= window.end:
                return
            try:
                problem = check(asked, call(asked))
            except LianmoError as exc:
                problem = describe(exc)
            done = time.perf_counter()
            if window.counts(done):
                tally.add(done - began, batch, problem)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summarise(tally, concurrency=concurrency, batch=batch, window_s=duration_s)


#: an asyncio call: ids -> answer (e.g. a ``grpc.aio`` stub's Score, converted)
AsyncScoreCall = Callable[[tuple[str, ...]], t.Awaitable[ScoreAnswer]]


async def _aio_workers(
    call: AsyncScoreCall,
    ids: Sequence[str],
    *,
    concurrency: int,
    batch: int,
    window: Window,
    seed: int,
    failure: type[BaseException] | tuple[type[BaseException], ...],
) -> Tally:
    tally = Tally()

    async def worker(k: int) -> None:
        for asked in id_stream(ids, batch, seed, k):
            began = time.perf_counter()
            if began >= window.end:
                return
            try:
                problem = check_answer(asked, await call(asked))
            except failure as exc:
                problem = describe(exc)
            done = time.perf_counter()
            if window.counts(done):
                tally.add(done - began, batch, problem)

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return tally


def run_aio(
    make_call: Callable[[], t.Awaitable[tuple[AsyncScoreCall, Callable[[], t.Awaitable[None]]]]],
    ids: Sequence[str],
    *,
    concurrency: int,
    batch: int,
    warmup_s: float,
    duration_s: float,
    seed: int = 0,
    failure: type[BaseException] | tuple[type[BaseException], ...] = LianmoError,
) -> LoadResult:
    """``concurrency`` asyncio tasks on one event loop, closed loop.

    ``make_call`` runs inside the loop and returns the call and a coroutine function
    that closes what it opened (a ``grpc.aio`` channel must live in the loop using it).
    """

    async def main() -> Tally:
        call, close = await make_call()
        try:
            window = Window.after(warmup_s, duration_s)
            return await _aio_workers(
                call,
                ids,
                concurrency=concurrency,
                batch=batch,
                window=window,
                seed=seed,
                failure=failure,
            )
        finally:
            await close()

    tally = asyncio.run(main())
    return summarise(tally, concurrency=concurrency, batch=batch, window_s=duration_s)
