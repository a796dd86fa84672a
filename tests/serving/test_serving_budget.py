"""A host's id budget per guest and window, and the record of every online request.

One LR model trained through in-process nodes on the breast data (2048-bit keys); each
test serves its own copy of both parties' state over real gRPC with mutual TLS on
loopback, with an injected wall clock (budget windows, record days).
"""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from lianmo.cli.audit import audit
from lianmo.config import PartyConfig
from lianmo.errors import ConfigError, IdBudgetError
from lianmo.metrics import NodeMetrics
from lianmo.node.serving.id_budget import IdBudget
from lianmo.node.serving.request_answers import online_answer
from lianmo.node.serving.request_log import (
    DAY_S,
    RequestLog,
    day_end,
    day_path,
    last_seals,
    pruned_days,
    salt_path,
    sealing_key,
    seals_path,
)
from lianmo.node.serving.versions import VersionLog
from lianmo.transport._pb import scoring_pb2
from lianmo.transport.scoring import PartQuery, ScoreQuery, ScoringClient
from tests.node.inprocess_nodes import GUEST, HOST, make_nodes, run_in_process
from tests.serving.served import configs, copy_trained, promote, serving, spec

LR = {"type": "hetero_lr", "epochs": 1, "batch_size": 320, "learning_rate": 0.3}
#: 2026-03-01 23:59:00 UTC: a minute before a new day (and a new budget window)
EVENING = datetime(2026, 3, 1, 23, 59, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    root = tmp_path_factory.mktemp("budget")
    cfgs = configs(root, shared_data, "breast")
    nodes = make_nodes(root, shared_data, configs=cfgs)
    run_in_process(nodes, spec("m1", LR))
    for node in nodes.values():
        node.close()
    return root


@pytest.fixture
def cfgs(trained: Path, tmp_path: Path, shared_data: Path) -> dict[str, PartyConfig]:
    out = copy_trained(trained, tmp_path, shared_data)
    for name in (GUEST, HOST):
        promote(out[name], "credit", "m1")
    return out


@pytest.fixture(scope="module")
def ids(shared_data: Path) -> list[str]:
    """Ids both parties hold, in the guest file's order."""
    with (shared_data / "breast_hetero_host.csv").open(newline="") as fh:
        host = {row["id"] for row in csv.DictReader(fh)}
    with (shared_data / "breast_hetero_guest.csv").open(newline="") as fh:
        return [row["id"] for row in csv.DictReader(fh) if row["id"] in host]


def _score(client: ScoringClient, some: list[str]) -> dict[str, tuple[tuple[float, ...], str]]:
    answer = client.score(ScoreQuery("credit", "", tuple(some)), 10)
    return {s.id: (s.values, s.error) for s in answer.scores}


def test_the_budget_counts_distinct_ids_per_caller_and_window() -> None:
    clock = Clock(EVENING)
    budget = IdBudget("platform", 5, 86_400, clock=clock)
    assert budget.charge("broker", ["a", "b", "c"]) == 3
    assert budget.charge("broker", ["a", "b", "c", "a"]) == 3  # asked again: free
    assert budget.charge("other-guest", ["a", "b", "c", "d", "e"]) == 5  # its own count
    with pytest.raises(IdBudgetError, match=r"or wait 60 s") as refused:
        budget.charge("broker", ["a", "d", "e", "f"])  # 3 new: 6 > 5, refused whole
    assert "party 'platform'" in str(refused.value) and "id_budget" in str(refused.value)
    assert budget.used("broker") == 3  # nothing of the refused call was counted
    assert budget.charge("broker", ["d", "e"]) == 5  # exactly the budget fits
    clock.now += 61  # the next window (a UTC day) starts afresh
    assert budget.used("broker") == 0
    assert budget.charge("broker", ["f", "g", "h", "i", "j"]) == 5
    unlimited = IdBudget("platform", 0, 86_400, clock=clock)
    assert unlimited.charge("broker", [str(i) for i in range(10_000)]) == 0


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ({"id_budget": -1}, "serving.id_budget is -1 but must be an integer >= 0"),
        ({"id_budget": "many"}, "serving.id_budget is 'many' but must be an integer"),
        ({"budget_window_s": 0}, "serving.budget_window_s is 0 but must be a number >= 1"),
    ],
)
def test_budget_keys_are_checked_in_the_party_config(
    table: dict[str, object], said: str, tmp_path: Path
) -> None:
    base = {
        "name": HOST,
        "listen": "127.0.0.1:0",
        "state_dir": HOST,
        "tls": {"cert": "x", "key": "x", "ca": "x"},
    }
    read = PartyConfig.from_dict({**base, "serving": {"id_budget": 500}}, base=tmp_path)
    assert (read.serving.id_budget, read.serving.budget_window_s) == (500, 86_400)
    with pytest.raises(ConfigError, match=re.escape(said)):
        PartyConfig.from_dict({**base, "serving": table}, base=tmp_path)


def test_a_guest_past_its_id_budget_gets_an_error_per_id_naming_the_host(
    cfgs: dict[str, PartyConfig], tmp_path: Path, ids: list[str]
) -> None:
    clock = Clock(EVENING)
    metrics = {HOST: NodeMetrics(party=HOST)}
    settings = {"id_budget": 30, "fallback": "guest_only"}
    with serving(tmp_path, cfgs, clock=clock, metrics=metrics, **settings) as s:
        first = _score(s.client, ids[:20])
        assert all(values and not error for values, error in first.values())
        assert _score(s.client, ids[:20]) == first  # the same ids again: free
        assert all(v for v, _ in _score(s.client, ids[20:30]).values())  # 30 of 30
        over = _score(s.client, [*ids[:5], ids[30]])  # one new id: the call is refused whole
        for values, error in over.values():
            assert not values  # no guest-only fallback past a host's budget
            assert error.startswith("party 'platform' refused: id budget")
            assert "budget of 30 per 86400 s" in error and "or wait 60 s" in error
            assert error.count("refused") == 1  # the host's reason, not its whole text again
        assert all(v for v, _ in _score(s.client, ids[5:15]).values())  # repeats still free
        host = metrics[HOST].registry
        labels = {"model": "credit", "caller": GUEST}
        assert host.get_sample_value("lianmo_serving_budget_refusals_total", labels) == 1
        assert host.get_sample_value("lianmo_serving_budget_ids", {"caller": GUEST}) == 30

        # the host's own answer: RESOURCE_EXHAUSTED, which the client raises as IdBudgetError
        promotion = VersionLog(cfgs[HOST]).current("credit")
        assert promotion is not None
        to_host = ScoringClient(f"127.0.0.1:{s.ports[HOST]}", s.identities[GUEST], HOST)
        query = PartQuery("credit", "m1", promotion.spec_sha256, (ids[31],))
        try:
            with pytest.raises(IdBudgetError, match="raise \\[serving\\] id_budget at party"):
                to_host.part(query, 5)
            request = scoring_pb2.PartRequest(
                model="credit", version="m1", spec_sha256=promotion.spec_sha256, ids=[ids[31]]
            )
            with pytest.raises(grpc.RpcError) as raw:
                to_host._stub.Part(request, timeout=5)
            assert raw.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        finally:
            to_host.close()

        clock.now += 61  # a new window: the guest may ask about new ids again
        assert all(v for v, _ in _score(s.client, ids[30:40]).values())


def _subject(tmp_path: Path, party: str, customer: str) -> dict[str, object]:
    toml = tmp_path / f"{party}.toml"
    toml.write_text(
        f'name = "{party}"\nlisten = "127.0.0.1:0"\nstate_dir = "{party}"\n'
        '[tls]\ncert = "x"\nkey = "x"\nca = "x"\n'
    )
    out = CliRunner().invoke(audit, ["subject", "--config", str(toml), "--id", customer, "--json"])
    assert out.exit_code == 0, out.output
    online = json.loads(out.output)["online"]
    assert isinstance(online, dict)
    return online


def test_every_online_request_is_recorded_and_answers_the_data_subject(
    cfgs: dict[str, PartyConfig], tmp_path: Path, ids: list[str]
) -> None:
    clock = Clock(EVENING)
    scored, twice, never = ids[0], ids[1], ids[2]
    with serving(tmp_path, cfgs, clock=clock, id_budget=100) as s:
        _score(s.client, [scored, twice])
        clock.now += 120  # past midnight: a new day's file; the first is sealed at rollover
        _score(s.client, [twice])
        s.services[HOST].requests.flush()
        seals, problem = last_seals(cfgs[HOST])
        assert problem is None and seals["2026-03-01"][1]["at"] == "rollover"
        assert "2026-03-02" not in seals  # the day in progress is sealed at close
    seals, _ = last_seals(cfgs[HOST])
    assert seals["2026-03-02"][1]["at"] == "close" and seals["2026-03-02"][1]["records"] == 1

    # the host's record holds salted hashes, never the ids
    body = day_path(cfgs[HOST], "2026-03-01").read_text()
    assert scored not in body and twice not in body
    line = json.loads(body.splitlines()[0])
    assert (line["call"], line["caller"], line["version"], line["n"]) == ("Part", GUEST, "m1", 2)
    assert line["answered"] == "11" and line["outcome"] == "ok"

    online = _subject(tmp_path, HOST, twice)
    uses = {(u["day"], u["call"], u["caller"]): u for u in online["scored"]}  # type: ignore[union-attr]
    assert set(uses) == {("2026-03-01", "Part", GUEST), ("2026-03-02", "Part", GUEST)}
    assert all(u["times"] == 1 and u["answered"] == 1 and u["proven"] for u in uses.values())
    assert online["days"] == online["proven_days"] == 2 and not online["unproven_days"]
    at_guest = _subject(tmp_path, GUEST, scored)["scored"]
    assert [(u["call"], u["caller"], u["times"], u["proven"]) for u in at_guest] == [  # type: ignore[union-attr]
        ("Score", "decision-engine", 1, True)
    ]
    nothing = _subject(tmp_path, HOST, never)
    assert nothing["scored"] == [] and nothing["proven_days"] == 2

    # an altered day file proves nothing, in either direction
    path = day_path(cfgs[HOST], "2026-03-01")
    path.write_text(path.read_text().replace('"answered":"11"', '"answered":"10"'))
    altered = online_answer(cfgs[HOST], twice)
    assert [d for d, _ in altered.unproven] == ["2026-03-01"]
    assert "it was altered" in altered.unproven[0][1]
    by_day = {u.day: u for u in altered.uses}
    assert not by_day["2026-03-01"].proven and by_day["2026-03-02"].proven
    assert online_answer(cfgs[HOST], never).proven_days == 1


def test_a_crash_leaves_a_tail_unproven_until_the_next_start_seals_it(
    cfgs: dict[str, PartyConfig], ids: list[str]
) -> None:
    clock = Clock(EVENING)
    config = cfgs[HOST]
    # written, never sealed, as when a node dies before the day's seal (a log without a
    # key never seals; with one, its thread could seal at start, racing this test)
    crashed = RequestLog(config, None, clock=clock)
    crashed.add("Part", GUEST, "credit", "m1", [ids[0]], [True], "ok")
    crashed.close()
    answer = online_answer(config, ids[0])
    assert answer.proven_days == 0 and "not sealed yet" in answer.unproven[0][1]
    assert [u.proven for u in answer.uses] == [False]

    restarted = RequestLog(config, sealing_key(config), clock=clock)
    restarted.add("Part", GUEST, "credit", "m1", [ids[0], ids[1]], None, "over_budget")
    restarted.close()  # the leftover sealed at start, then the whole day at close
    seals, problem = last_seals(config)
    assert problem is None and seals["2026-03-01"][1]["records"] == 2
    answer = online_answer(config, ids[0])
    assert answer.proven_days == 1 and [(u.times, u.answered) for u in answer.uses] == [(2, 1)]
    kinds = [json.loads(r)["at"] for r in seals_path(config).read_text().splitlines()[1:]]
    assert kinds == ["start", "close"]


def test_days_older_than_request_record_days_are_sealed_logged_and_removed(
    cfgs: dict[str, PartyConfig], tmp_path: Path, ids: list[str]
) -> None:
    config, customer = cfgs[HOST], ids[0]
    clock = Clock(EVENING)
    with serving(tmp_path, cfgs, clock=clock, id_budget=100) as s:
        _score(s.client, [customer])  # 2026-03-01
        clock.now += 120
        _score(s.client, [customer])  # 2026-03-02
    unsealed = RequestLog(config, None, clock=Clock(EVENING - 2 * DAY_S))  # 2026-02-27
    unsealed.add("Part", GUEST, "credit", "m1", [customer], [True], "ok")
    unsealed.close()  # a day a crash left unsealed
    assert online_answer(config, customer).days == 3

    a_week_on = Clock(day_end("2026-03-02") + 1.5 * DAY_S)
    keeper = RequestLog(config, sealing_key(config), clock=a_week_on, keep_days=2)
    assert keeper.prune() == ["2026-02-27", "2026-03-01"]  # 03-02 ended 1.5 days ago: kept
    keeper.close()
    for day in ("2026-02-27", "2026-03-01"):
        assert not day_path(config, day).exists() and not salt_path(config, day).exists()
    assert day_path(config, "2026-03-02").exists()
    seals, problem = last_seals(config)
    assert problem is None and seals["2026-02-27"][1]["at"] == "prune"  # sealed first
    gone = pruned_days(config)
    assert sorted(gone) == ["2026-02-27", "2026-03-01"]
    for day, (_, record) in gone.items():
        assert (record["sha256"], record["bytes"]) == (
            seals[day][1]["sha256"],
            seals[day][1]["bytes"],
        )

    answer = online_answer(config, customer)
    assert [u.day for u in answer.uses] == ["2026-03-02"] and answer.proven_days == 1
    assert [d for d, _ in answer.pruned] == ["2026-02-27", "2026-03-01"]
    assert [d["day"] for d in _subject(tmp_path, HOST, customer)["pruned_days"]] == [  # type: ignore[index, union-attr]
        "2026-02-27",
        "2026-03-01",
    ]

    # a day whose file is not the one its seal names is kept for review, not pruned
    path = day_path(config, "2026-03-02")
    path.write_text(path.read_text().replace('"answered":"1"', '"answered":"0"'))
    later = RequestLog(config, sealing_key(config), clock=Clock(a_week_on.now + DAY_S), keep_days=2)
    assert later.prune() == [] and path.exists()
    later.close()
    assert "2026-03-02" not in pruned_days(config)
