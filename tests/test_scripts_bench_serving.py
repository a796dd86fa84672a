"""``scripts/bench_serving.py``: its statistics, its load generator against real scoring
servers (mutual TLS on loopback), and (slow) the whole ``--quick`` run through real nodes.

Speed is not asserted (these machines are noisy): the tests check what is counted and
how, and that a failed answer is counted as an error, never as a latency.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lianmo.transport.scoring import IdScore, ScoreAnswer, ScoreQuery
from tests.node.inprocess_nodes import GUEST, HOST, make_nodes, run_in_process
from tests.serving.served import Serving, configs, promote, serving, spec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import bench_serving  # noqa: E402
import serving_load as load  # noqa: E402

sys.path.remove(str(ROOT / "scripts"))


def test_percentiles_are_nearest_rank_and_throughput_is_over_the_window() -> None:
    tally = load.Tally()
    for ms in range(100, 0, -1):  # 1..100 ms, in any order
        tally.add(ms / 1000, 10, "")
    tally.add(9.0, 10, "id '7': no consent")  # an error: counted, not a latency
    result = load.summarise(tally, concurrency=4, batch=10, window_s=2.0)
    assert (result.p50_ms, result.p95_ms, result.p99_ms) == (50.0, 95.0, 99.0)
    assert (result.requests, result.scores, result.errors) == (100, 1000, 1)
    assert (result.requests_per_s, result.scores_per_s) == (50.0, 500.0)
    assert result.max_ms == 100.0 and result.mean_ms == 50.5
    assert result.error_messages == ("id '7': no consent",)
    with pytest.raises(ValueError, match="window must be positive"):
        load.summarise(tally, concurrency=1, batch=1, window_s=0)


def test_an_answer_is_good_only_if_it_scores_every_id_asked_in_order() -> None:
    asked = ("a", "b")

    def answer(*scores: IdScore) -> ScoreAnswer:
        return ScoreAnswer("m", "v1", "binary", scores)

    good = answer(IdScore("a", (0.1,)), IdScore("b", (0.9,)))
    assert load.check_answer(asked, good) == ""
    assert "got 1 answers" in load.check_answer(asked, answer(IdScore("a", (0.1,))))
    swapped = answer(IdScore("b", (0.9,)), IdScore("a", (0.1,)))
    assert "answer is for 'b'" in load.check_answer(asked, swapped)
    refused = answer(IdScore("a", (0.1,)), IdScore("b", (), "no consent"))
    assert load.check_answer(asked, refused) == "id 'b': no consent"
    fallback = answer(IdScore("a", (0.1,)), IdScore("b", (0.5,), "", True))
    assert "fallback" in load.check_answer(asked, fallback)


def test_each_worker_draws_its_own_repeatable_stream_of_distinct_ids() -> None:
    ids = [str(i) for i in range(1000)]
    first = [next(s) for s in [load.id_stream(ids, 100, 5, 0)] * 3]
    again = [next(s) for s in [load.id_stream(ids, 100, 5, 0)] * 3]
    other = next(load.id_stream(ids, 100, 5, 1))
    assert first == again and other != first[0]
    assert all(len(set(r)) == 100 and set(r) <= set(ids) for r in first)
    assert first[0] != first[1]
    assert len(next(load.id_stream(ids, 1, 5, 0))) == 1
    with pytest.raises(ValueError, match="needs at least 100 ids"):
        next(load.id_stream(ids[:99], 100, 5, 0))


@pytest.fixture(scope="module")
def served_lr(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path
) -> Iterator[tuple[Serving, list[str]]]:
    """Two-party LR on breast (in-process training, 2048-bit keys), promoted as 'credit'
    at both parties and served over mutual TLS on loopback."""
    tmp = tmp_path_factory.mktemp("bench")
    cfgs = configs(tmp, shared_data, "breast")
    nodes = make_nodes(tmp, shared_data, configs=cfgs)
    model = {"type": "hetero_lr", "epochs": 1, "batch_size": 320}
    run_in_process(nodes, spec("m1", model))
    for node in nodes.values():
        node.close()
    for name in (GUEST, HOST):
        promote(cfgs[name], "credit", "m1")
    ids = (shared_data / "breast_hetero_host.csv").read_text().splitlines()[1:]
    with serving(tmp, cfgs) as s:
        yield s, [line.split(",", 1)[0] for line in ids]


@pytest.mark.parametrize("batch", [1, 20])
def test_the_thread_driver_measures_good_answers_over_grpc(
    served_lr: tuple[Serving, list[str]], batch: int
) -> None:
    s, ids = served_lr

    def call(asked: tuple[str, ...]) -> ScoreAnswer:
        return s.client.score(ScoreQuery("credit", "", asked), 5)

    result = load.run_threads(
        call, ids, concurrency=3, batch=batch, warmup_s=0.1, duration_s=0.4, seed=1
    )
    assert result.errors == 0, result.error_messages
    assert result.requests > 0 and result.scores == batch * result.requests
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms <= result.max_ms
    assert result.requests_per_s == pytest.approx(result.requests / 0.4, abs=0.1)


def test_failed_requests_are_counted_as_errors_with_their_message(
    served_lr: tuple[Serving, list[str]],
) -> None:
    s, ids = served_lr

    def call(asked: tuple[str, ...]) -> ScoreAnswer:
        return s.client.score(ScoreQuery("no-such-model", "", asked), 5)

    result = load.run_threads(call, ids, concurrency=2, batch=1, warmup_s=0, duration_s=0.3)
    assert result.requests == 0 and result.errors > 0
    assert "ConfigError" in result.error_messages[0]
    assert "no version promoted as model 'no-such-model'" in result.error_messages[0]


def test_the_aio_driver_measures_good_answers_on_a_grpc_aio_channel(
    served_lr: tuple[Serving, list[str]],
) -> None:
    import grpc

    s, ids = served_lr
    address = f"127.0.0.1:{s.ports[GUEST]}"
    maker = bench_serving.aio_maker(address, s.identities[bench_serving.CLIENT], "credit")
    failure = (grpc.aio.AioRpcError,)
    result = load.run_aio(
        maker, ids, concurrency=4, batch=5, warmup_s=0.1, duration_s=0.4, failure=failure
    )
    assert result.errors == 0, result.error_messages
    assert result.requests > 0 and result.scores == 5 * result.requests
    wrong = bench_serving.aio_maker(address, s.identities["stranger"], "credit")
    refused = load.run_aio(
        wrong, ids, concurrency=1, batch=1, warmup_s=0, duration_s=0.2, failure=failure
    )
    assert refused.requests == 0 and refused.errors > 0
    assert "PERMISSION_DENIED" in refused.error_messages[0], refused.error_messages


@pytest.mark.slow
def test_bench_serving_quick_runs_every_shape_through_real_nodes(tmp_path: Path) -> None:
    """The script end to end: nodes, training (2048-bit keys), CLI promotion, load."""
    out = tmp_path / "serving.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_serving.py"),
            "--quick",
            *("--concurrency", "1,8", "--output", str(tmp_path / "run"), "--json", str(out)),
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    result = json.loads(out.read_text())
    runs = result["runs"]
    shapes = {(r["model"], r["driver"], r["batch"], r["concurrency"]) for r in runs}
    assert len(shapes) == len(runs) == 2 * 2 * 2 * 2
    assert all(r["errors"] == 0 and r["requests"] > 0 for r in runs)
    assert {(b["model"], b["batch"]) for b in result["baseline_in_process"]} == {
        (m, n) for m in ("lr", "sb") for n in (1, 100)
    }
    assert {m["job_id"].split("-")[2] for m in result["models"].values()} == {"lr", "sb"}
    assert set(result["bar"]) == {"lr", "sb"}
    assert len(result["wire_over_in_process"]) == 2 * 2 * 2
