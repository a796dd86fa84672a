"""Versions in lockstep, errors per id, who may ask, and a host that goes down.

Two LR models (``m1``: 2 epochs, ``m2``: 4) trained through in-process nodes on the
breast data; each test gets its own copy of both parties' state and serves it over real
gRPC with mutual TLS on loopback.
"""

from __future__ import annotations

import json
import time
import typing as t
from collections.abc import Sequence
from pathlib import Path

import pytest

from lianmo.audit.signing import SigningKey
from lianmo.config import PartyConfig
from lianmo.errors import AuthenticationError, ConfigError, TransportError
from lianmo.node.serving.features import Cell, SqliteStore
from lianmo.node.serving.versions import VersionLog
from lianmo.transport.scoring import PartQuery, ScoreQuery, ScoringClient, serve_scoring
from tests.node.inprocess_nodes import GUEST, HOST, make_nodes, run_in_process
from tests.serving.served import (
    batch_scores,
    configs,
    copy_trained,
    promote,
    serving,
    spec,
)

LR = {"type": "hetero_lr", "epochs": 2, "batch_size": 320, "learning_rate": 0.3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    root = tmp_path_factory.mktemp("versions")
    cfgs = configs(root, shared_data, "breast")
    nodes = make_nodes(root, shared_data, configs=cfgs)
    for s in (
        spec("m1", LR),
        spec("m2", {**LR, "epochs": 4}),
        spec("m1-scores", LR, "predict", "m1"),
        spec("m2-scores", LR, "predict", "m2"),
    ):
        run_in_process(nodes, s)
    for node in nodes.values():
        node.close()
    return root


@pytest.fixture
def cfgs(trained: Path, tmp_path: Path, shared_data: Path) -> dict[str, PartyConfig]:
    return copy_trained(trained, tmp_path, shared_data)


def _score(client: ScoringClient, ids: Sequence[str], version: str = "") -> dict[str, float]:
    answer = client.score(ScoreQuery("credit", version, tuple(ids)), 10)
    return {s.id: s.values[0] for s in answer.scores if not s.error}


def _rollback(config: PartyConfig) -> None:
    log = VersionLog(config, SigningKey.load(config.signing_key_path, party=config.name))
    log.rollback("credit")


def test_a_version_promoted_at_one_party_only_is_refused_never_mixed(
    cfgs: dict[str, PartyConfig],
    tmp_path: Path,
) -> None:
    m1, m2 = batch_scores(cfgs[GUEST], "m1-scores"), batch_scores(cfgs[GUEST], "m2-scores")
    ids = sorted(m1)[:20]
    assert all(abs(m1[i][0] - m2[i][0]) > 1e-6 for i in ids)  # the versions score apart
    for name in (GUEST, HOST):
        promote(cfgs[name], "credit", "m1")
    with serving(tmp_path, cfgs) as s:
        assert _score(s.client, ids) == pytest.approx({i: m1[i][0] for i in ids}, abs=1e-9)

        promote(cfgs[GUEST], "credit", "m2")  # the guest moves on alone: refused by the host
        with pytest.raises(ConfigError, match="serves version 'm1' of model 'credit', not 'm2'"):
            s.client.score(ScoreQuery("credit", "", tuple(ids)), 10)
        promote(cfgs[HOST], "credit", "m2")  # now both serve m2
        answer = s.client.score(ScoreQuery("credit", "", tuple(ids)), 10)
        assert answer.version == "m2"
        assert {x.id: x.values[0] for x in answer.scores} == pytest.approx(
            {i: m2[i][0] for i in ids}, abs=1e-9
        )
        with pytest.raises(ConfigError, match="serves version 'm2' of model 'credit', not 'm1'"):
            s.client.score(ScoreQuery("credit", "m1", tuple(ids)), 10)  # asks an old version

        _rollback(cfgs[HOST])  # the host goes back alone: refused again
        with pytest.raises(ConfigError, match="serves version 'm1' of model 'credit', not 'm2'"):
            s.client.score(ScoreQuery("credit", "", tuple(ids)), 10)
        _rollback(cfgs[GUEST])
        assert _score(s.client, ids, "m1") == pytest.approx({i: m1[i][0] for i in ids}, abs=1e-9)

    records = [json.loads(line) for line in VersionLog(cfgs[HOST]).path.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["versions_start", "promote", "promote", "rollback"]
    assert all(r["sig"] for r in records)


@pytest.mark.parametrize("handover_s", [600.0, 0.0])
def test_hosts_promoted_first_answer_the_version_they_replaced_for_handover_s(
    cfgs: dict[str, PartyConfig], tmp_path: Path, handover_s: float
) -> None:
    """A rollout without a failed request: the host moves to m2 first and still answers
    the guest's m1 for ``handover_s``; never after it, never a withdrawn version, and
    never a mix (each score is all m1 or all m2)."""
    m1, m2 = batch_scores(cfgs[GUEST], "m1-scores"), batch_scores(cfgs[GUEST], "m2-scores")
    ids = sorted(m1)[:20]
    for name in (GUEST, HOST):
        promote(cfgs[name], "credit", "m1")
    later = [0.0]  # seconds the services' clock runs ahead of the log's
    with serving(tmp_path, cfgs, clock=lambda: time.time() + later[0], handover_s=handover_s) as s:
        promote(cfgs[HOST], "credit", "m2")  # the host first, as docs/serving.md says
        if handover_s == 0:
            with pytest.raises(
                ConfigError, match="serves version 'm2' of model 'credit', not 'm1'"
            ):
                s.client.score(ScoreQuery("credit", "", tuple(ids)), 10)
        else:
            assert _score(s.client, ids) == pytest.approx({i: m1[i][0] for i in ids}, abs=1e-9)
            later[0] = handover_s - 5
            assert _score(s.client, ids, "m1") == pytest.approx(
                {i: m1[i][0] for i in ids}, abs=1e-9
            )
            later[0] = handover_s + 1  # the handover is over: the guest must follow
            with pytest.raises(ConfigError, match="the hosts first"):
                s.client.score(ScoreQuery("credit", "", tuple(ids)), 10)
            later[0] = 0.0
        promote(cfgs[GUEST], "credit", "m2")
        assert _score(s.client, ids) == pytest.approx({i: m2[i][0] for i in ids}, abs=1e-9)

        _rollback(cfgs[HOST])  # m2 withdrawn at the host: the guest's m2 is refused at once
        with pytest.raises(ConfigError, match="serves version 'm1' of model 'credit', not 'm2'"):
            s.client.score(ScoreQuery("credit", "", tuple(ids)), 10)
    log = VersionLog(cfgs[HOST])
    current = log.current("credit")
    assert current is not None and current.job_id == "m1" and current.replaced is None
    assert log.handing_over("credit", 600.0, time.time()) is None


def test_an_altered_version_log_stops_serving(cfgs: dict[str, PartyConfig], tmp_path: Path) -> None:
    for name in (GUEST, HOST):
        promote(cfgs[name], "credit", "m1")
    promote(cfgs[GUEST], "credit", "m2")
    path = VersionLog(cfgs[GUEST]).path
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"m2"', '"m1"')  # someone rewrites which version is served
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="record 2 was altered"):
        VersionLog(cfgs[GUEST]).current("credit")


def test_ids_without_a_row_at_a_party_get_an_error_each_and_no_score(
    cfgs: dict[str, PartyConfig], tmp_path: Path
) -> None:
    m1 = batch_scores(cfgs[GUEST], "m1-scores")
    for name in (GUEST, HOST):
        promote(cfgs[name], "credit", "m1")
    ids = sorted(m1)[:6]
    host_store = _Without(_store(cfgs[HOST]), ids[1])
    with serving(tmp_path, cfgs, {HOST: {"table": host_store}}) as s:
        answer = s.client.score(ScoreQuery("credit", "", (*ids, "nobody")), 10)
    got = {x.id: x for x in answer.scores}
    assert got["nobody"].error == f"party '{GUEST}' has no features for this id"
    assert got[ids[1]].error == f"party '{HOST}' has no usable row for this id"
    assert not got["nobody"].values and not got[ids[1]].values
    for i in (ids[0], *ids[2:]):
        assert got[i].values[0] == pytest.approx(m1[i][0], abs=1e-9)


def test_the_guest_may_send_its_own_features_for_an_id_it_does_not_store(
    cfgs: dict[str, PartyConfig], tmp_path: Path, shared_data: Path
) -> None:
    m1 = batch_scores(cfgs[GUEST], "m1-scores")
    for name in (GUEST, HOST):
        promote(cfgs[name], "credit", "m1")
    target = sorted(m1)[3]
    store = _store(cfgs[GUEST])
    own = dict(zip(store.columns, store.lookup([target])[target], strict=True))
    with serving(tmp_path, cfgs, {GUEST: {"table": _Without(store, target)}}) as s:
        missing = s.client.score(ScoreQuery("credit", "", (target,)), 10).scores[0]
        given = s.client.score(ScoreQuery("credit", "", (target,), (own,)), 10).scores[0]
        with pytest.raises(Exception, match="column 'not_a_column'"):
            s.client.score(ScoreQuery("credit", "", (target,), ({"not_a_column": 1.0},)), 10)
    assert missing.error == f"party '{GUEST}' has no features for this id"
    assert given.values[0] == pytest.approx(m1[target][0], abs=1e-9)


def test_only_listed_clients_get_scores_and_only_the_guest_gets_parts(
    cfgs: dict[str, PartyConfig], tmp_path: Path
) -> None:
    for name in (GUEST, HOST):
        promote(cfgs[name], "credit", "m1")
    with serving(tmp_path, cfgs) as s:
        stranger = s.identities["stranger"]
        to_guest = ScoringClient(f"127.0.0.1:{s.ports[GUEST]}", stranger, GUEST)
        to_host = ScoringClient(f"127.0.0.1:{s.ports[HOST]}", stranger, HOST)
        try:
            with pytest.raises(AuthenticationError, match="'stranger' is not one of them"):
                to_guest.score(ScoreQuery("credit", "", ("1",)), 10)
            spec_sha = VersionLog(cfgs[HOST]).current("credit").spec_sha256  # type: ignore[union-attr]
            with pytest.raises(AuthenticationError, match="only to its guest 'broker'"):
                to_host.part(PartQuery("credit", "m1", spec_sha, ("1",)), 10)
        finally:
            to_guest.close()
            to_host.close()


@pytest.mark.parametrize("fallback", ["none", "guest_only"])
def test_a_host_down_fails_fast_and_the_guest_recovers_when_it_is_back(
    cfgs: dict[str, PartyConfig], tmp_path: Path, fallback: str
) -> None:
    m1 = batch_scores(cfgs[GUEST], "m1-scores")
    for name in (GUEST, HOST):
        promote(cfgs[name], "credit", "m1")
    ids = tuple(sorted(m1)[:10])
    with serving(tmp_path, cfgs, fallback=fallback, deadline_ms=500.0) as s:
        assert len(_score(s.client, ids)) == len(ids)
        s.stop_host()
        started = time.monotonic()
        if fallback == "none":
            with pytest.raises(TransportError, match=f"from host '{HOST}'"):
                s.client.score(ScoreQuery("credit", "", ids), 5)
        else:
            answer = s.client.score(ScoreQuery("credit", "", ids), 5)
            assert answer.fallback_hosts == (HOST,)
            assert all(x.fallback and len(x.values) == 1 for x in answer.scores)
            assert any(abs(x.values[0] - m1[x.id][0]) > 1e-6 for x in answer.scores)
        assert time.monotonic() - started < 2.0  # within the deadline, not the client's 5 s
        port = s.ports[HOST]
        s.servers[HOST], _ = serve_scoring(
            f"127.0.0.1:{port}", s.identities[HOST], s.services[HOST]
        )
        deadline = time.monotonic() + 10
        while True:  # the guest's channel reconnects on its own
            try:
                answer = s.client.score(ScoreQuery("credit", "", ids), 5)
                if not answer.fallback_hosts:
                    break
            except TransportError:
                pass
            assert time.monotonic() < deadline, "the guest never reached the restarted host"
            time.sleep(0.1)
        got = {x.id: x.values[0] for x in answer.scores}
        assert got == pytest.approx({i: m1[i][0] for i in ids}, abs=1e-9)


def _store(config: PartyConfig) -> SqliteStore:
    return SqliteStore(config.name, config.dataset("table"), config.state_dir / "features")


class _Without:
    """A feature source that lacks one id (an institution's own store, say)."""

    def __init__(self, inner: t.Any, missing: str) -> None:
        self.inner, self.missing = inner, missing

    @property
    def columns(self) -> Sequence[str]:
        return self.inner.columns  # type: ignore[no-any-return]

    def lookup(self, ids: Sequence[str]) -> dict[str, tuple[Cell, ...]]:
        return {k: v for k, v in self.inner.lookup(ids).items() if k != self.missing}


@pytest.mark.parametrize("kind", ["lr", "sb"])
def test_a_hosts_part_holds_a_partial_score_or_split_sides_and_nothing_else(
    kind: str, tmp_path: Path, shared_data: Path
) -> None:
    """What crosses the wire to the guest per request: LR a float per id and class;
    SecureBoost the host's split ids and one bit per id and split (no threshold, no
    feature, no name), and which ids the host holds."""
    from tests.serving.served import train_and_predict

    model = LR if kind == "lr" else {"type": "secureboost", "trees": 2, "depth": 2}
    cfgs = train_and_predict(tmp_path, shared_data, "breast", model, "p1")
    for name in (GUEST, HOST):
        promote(cfgs[name], "credit", "p1")
    spec_sha = VersionLog(cfgs[HOST]).current("credit").spec_sha256  # type: ignore[union-attr]
    with serving(tmp_path, cfgs) as s:
        to_host = ScoringClient(f"127.0.0.1:{s.ports[HOST]}", s.identities[GUEST], HOST)
        try:
            part = to_host.part(PartQuery("credit", "p1", spec_sha, ("1", "2", "nobody")), 10)
        finally:
            to_host.close()
        share = json.loads((cfgs[HOST].state_dir / "jobs" / "p1" / "model.json").read_text())
    assert part.found.tolist() == [True, True, False]
    if kind == "lr":
        assert part.split_ids is None and part.left is None
        assert part.partial is not None and part.partial.shape == (3, 1)
        assert part.partial[2, 0] == 0.0
    else:
        assert part.partial is None and part.left is not None
        assert sorted(part.split_ids.tolist()) == sorted(r["id"] for r in share["rules"])  # type: ignore[union-attr]
        assert part.left.dtype == bool and part.left.shape == (3, len(share["rules"]))
        assert not part.left[2].any()
