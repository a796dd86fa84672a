"""Scorecard jobs through in-process nodes (real 2048-bit keys): train, score, what crosses.

Guest ``broker`` (breast labels), host ``platform`` and the ``arbiter`` run a scorecard
job, then a predict job with it. The tests check the parties' shares against each other
and against a pooled computation, the scores against the points tables, and the recorded
envelopes for what must not cross: a label vector, a host's bin edges or its WOE per row.
"""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from lianmo.config import JobSpec, ScorecardSpec
from lianmo.data.split import validation_mask
from lianmo.data.table import load_table
from lianmo.errors import ConfigError, DataError, JobFailedError
from lianmo.models.metrics import auc
from lianmo.models.woe import WoeTable, bin_counts
from lianmo.models.woe_column import KEPT
from lianmo.node.scorecard_job import drop_correlated, select_by_iv
from lianmo.node.scorecard_share import ScorecardShare
from lianmo.node.service import NodeService

from .inprocess_nodes import (
    GUEST,
    GUEST_FILE,
    HOST,
    HOST_FILE,
    WireRecorder,
    make_nodes,
    run_in_process,
    train_spec,
)

MODEL = {"type": "scorecard", "epochs": 5, "min_iv": 0.1, "top_k": 12, "max_bins": 8}


def _predict(job_id: str, model_job: str) -> JobSpec:
    raw = json.loads(train_spec(job_id).to_json())
    return JobSpec.from_dict({**raw, "task": "predict", "model_job": model_job})


class Ran:
    def __init__(self, root: Path, recorder: WireRecorder, nodes: dict[str, NodeService]) -> None:
        self.root, self.recorder, self.nodes = root, recorder, nodes

    def share(self, party: str, job: str = "sc-train") -> ScorecardShare:
        role = "guest" if party == GUEST else "host"
        return ScorecardShare.load(self.job(party, job) / "model.json", party=party, role=role)

    def job(self, party: str, job: str) -> Path:
        return self.root / party / "jobs" / job

    def result(self, party: str, job: str) -> dict[str, t.Any]:
        return json.loads((self.job(party, job) / "result.json").read_text())


import typing as t  # noqa: E402


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Ran:
    root = tmp_path_factory.mktemp("scorecard")
    recorder = WireRecorder()
    nodes = make_nodes(root, shared_data, observers=[recorder])
    run_in_process(nodes, train_spec("sc-train", **MODEL))
    run_in_process(nodes, _predict("sc-score", "sc-train"))
    return Ran(root, recorder, nodes)


def _tables(shared_data: Path) -> tuple[t.Any, t.Any]:
    guest = load_table(shared_data / GUEST_FILE, id_column="id", label_column="y")
    host = load_table(shared_data / HOST_FILE, id_column="id")
    return guest, host


def test_every_party_keeps_its_own_columns_and_the_guest_the_base(ran: Ran) -> None:
    guest, host = ran.share(GUEST), ran.share(HOST)
    assert guest.intercept is not None and host.intercept is None
    assert guest.points_table().base is not None and host.points_table().base is None
    assert {c.name for c in guest.columns} == {f"x{i}" for i in range(10)}
    assert {c.name for c in host.columns} == {f"x{i}" for i in range(20)}
    # the guest knows its bins' events; a host only its rows per bin and WOE
    assert all(c.events is not None for c in guest.columns)
    assert all(c.events is None for c in host.columns)
    kept = len(guest.feature_names) + len(host.feature_names)
    assert 1 <= kept <= 12
    summary = ran.result(GUEST, "sc-train")["scorecard"]
    assert summary["kept"] == len(guest.feature_names)
    assert summary["host_columns"] == 20


def test_woe_and_iv_equal_pooled_on_the_same_bins(ran: Ran, shared_data: Path) -> None:
    guest_t, host_t = _tables(shared_data)
    common = sorted(set(guest_t.ids) & set(host_t.ids))
    train_ids = [i for i, v in zip(common, validation_mask(common, 0.2, 42), strict=True) if not v]
    y = guest_t.y[[guest_t.ids.index(i) for i in train_ids]].astype(np.int64)
    for party, table in ((GUEST, guest_t), (HOST, host_t)):
        X = table.X[[table.ids.index(i) for i in train_ids]]
        for j, column in enumerate(ran.share(party).columns):
            codes = column.codes(X[:, table.feature_names.index(column.name)])
            events, nonevents = bin_counts(codes, y, len(column.woe))
            pooled = WoeTable.from_counts(column.name, events, nonevents)
            np.testing.assert_allclose(column.woe, pooled.woe, rtol=0, atol=1e-9, err_msg=party)
            assert abs(column.iv - pooled.iv) < 1e-9
            np.testing.assert_array_equal(column.counts, events + nonevents)
            assert j >= 0


def test_selection_follows_iv_top_k_and_correlation(ran: Ran) -> None:
    columns = [c for p in (GUEST, HOST) for c in ran.share(p).columns]
    passing = sorted((c for c in columns if c.iv >= MODEL["min_iv"]), key=lambda c: -c.iv)
    top = {id(c) for c in passing[: MODEL["top_k"]]}
    for c in columns:
        if c.kept:
            assert id(c) in top
        elif id(c) in top:
            assert c.status.startswith("correlated with"), c.status
    assert any(c.status.startswith("correlated with") for c in columns)
    assert sum(c.kept for c in columns) < MODEL["top_k"]


def test_scores_are_the_sum_of_both_parties_points(ran: Ran, shared_data: Path) -> None:
    guest_t, host_t = _tables(shared_data)
    with (ran.job(GUEST, "sc-score") / "scores.csv").open() as f:
        rows = list(csv.DictReader(f))
    ids = [r["id"] for r in rows]
    total = np.zeros(len(ids))
    for party, table in ((GUEST, guest_t), (HOST, host_t)):
        share = ran.share(party)
        at = [table.ids.index(i) for i in ids]
        X = table.X[at][:, [table.feature_names.index(n) for n in share.feature_names]]
        total += share.points_table().partial_scores(share.codes(X))
    scores = np.array([float(r["score"]) for r in rows])
    np.testing.assert_allclose(scores, total, rtol=0, atol=1e-3)
    probability = np.array([float(r["probability"]) for r in rows])
    y = guest_t.y[[guest_t.ids.index(i) for i in ids]]
    assert auc(y, probability) > 0.95  # breast: the pooled LR has 0.986
    assert auc(y, -scores) == pytest.approx(auc(y, probability), abs=1e-6)
    # reason codes: the guest's own characteristics only
    guest_names = set(ran.share(GUEST).feature_names)
    assert {r["reason_1"] for r in rows} <= guest_names
    host_reasons = (ran.job(HOST, "sc-score") / "reasons.csv").read_text().splitlines()
    assert len(host_reasons) == len(rows) + 1


def test_scoring_reports_score_psi_and_each_partys_csi(ran: Ran) -> None:
    guest = ran.result(GUEST, "sc-score")["stability"]
    host = ran.result(HOST, "sc-score")["stability"]
    assert 0 < guest["score_psi"] < 0.25  # the training rows again: stable
    assert 0 <= guest["max_csi"] < 0.1 and 0 <= host["max_csi"] < 0.1
    assert "score_psi" not in host
    stability = json.loads((ran.job(HOST, "sc-score") / "stability.json").read_text())
    assert [c["column"] for c in stability["csi"]] == list(ran.share(HOST).feature_names)
    assert "psi" not in stability


def _floats(values: t.Iterable[float]) -> list[bytes]:
    out = []
    for v in values:
        if v not in (0.0, 1.0, -1.0):
            out += [struct.pack("<d", v), struct.pack(">d", v)]
    return out


def test_no_label_vector_host_edge_or_row_woe_crosses_the_wire(ran: Ran, shared_data: Path) -> None:
    sent = [e for e in ran.recorder.sent if e.job_id == "sc-train"]
    assert {e.tag for e in sent} >= {"woe.labels", "woe.merge", "woe.values", "scorecard.keep"}
    blob = b"".join(e.payload for e in sent)
    host = ran.share(HOST)
    edges = [float(v) for c in host.columns for v in c.bins.edges[0]]
    assert edges and not any(n in blob for n in _floats(edges)), "a host bin edge crossed"
    guest_t, host_t = _tables(shared_data)
    common = sorted(set(guest_t.ids) & set(host_t.ids))
    X = host_t.X[[host_t.ids.index(i) for i in common]]
    # the WOE per bin legitimately crosses (woe.values), bin after bin: those pairs are not
    # a sign of a WOE per row
    per_bin = np.concatenate([c.woe for c in host.columns])
    legit = {struct.pack("<2d", a, b) for a, b in zip(per_bin, per_bin[1:], strict=False)}
    for column in host.kept:  # WOE per row: any 2 neighbouring rows' values as float64
        woe = column.transform(X[:, host_t.feature_names.index(column.name)])
        pairs = {struct.pack("<2d", a, b) for a, b in zip(woe, woe[1:], strict=False) if a != b}
        pairs -= legit
        assert len(pairs) > 5
        assert not any(p in blob for p in pairs), f"WOE per row of {column.name} crossed"
    y = guest_t.y[[guest_t.ids.index(i) for i in common]]
    for dtype in ("<f8", "u1"):
        needle = y[:64].astype(dtype).tobytes()
        assert needle not in blob
    # the only plaintext floats a host receives: the WOE and IV of its own merged bins
    to_host = {
        e.tag for e in sent if e.receiver == HOST and e.payload_type == "lianmo.v1.FloatVector"
    }
    assert to_host == {"woe.values", "woe.iv"}


def test_a_later_job_reuses_the_bins_woe_and_selection_of_an_earlier_one(ran: Ran) -> None:
    run_in_process(ran.nodes, train_spec("sc-reuse", **{**MODEL, "reuse": "sc-train",
                                                         "points": 700, "epochs": 3}))  # fmt: skip
    for party in (GUEST, HOST):
        before, after = ran.share(party), ran.share(party, "sc-reuse")
        assert [c.to_dict() for c in after.columns] == [c.to_dict() for c in before.columns]
        assert after.feature_names == before.feature_names
        assert after.weights != before.weights  # a new regression (3 epochs)
        assert "woe" not in ran.result(party, "sc-reuse")["phase_seconds"]
    assert ran.share(GUEST, "sc-reuse").scaling.points == 700


def test_reusing_a_job_this_party_has_no_scorecard_of_is_refused(ran: Ran) -> None:
    with pytest.raises(JobFailedError, match="no model share at"):
        run_in_process(ran.nodes, train_spec("sc-reuse-bad", **{**MODEL, "reuse": "sc-none"}))


def test_select_by_iv_ranks_across_parties_and_refuses_when_nothing_passes() -> None:
    model = ScorecardSpec(min_iv=0.1, top_k=2)
    ranked = [(0.5, "g", 0), (0.05, "g", 1), (0.7, "h", 0), (0.5, "h", 1), (0.3, "h", 2)]
    status = select_by_iv(ranked, model, "g")
    assert {k for k, s in status.items() if s == KEPT} == {("h", 0), ("g", 0)}
    assert status[("g", 1)].startswith("IV 0.0500 below min_iv")
    assert status[("h", 1)].startswith("not in the top_k")
    with pytest.raises(DataError, match=r"\(the highest is 0.0500\); lower model.min_iv"):
        select_by_iv([(0.05, "g", 0)], model, "g")


def test_a_selection_that_leaves_a_party_no_column_is_refused_naming_it(
    nodes: dict[str, NodeService],
) -> None:
    with pytest.raises(JobFailedError, match="keeps no column of 'platform'"):
        run_in_process(nodes, train_spec("sc-top1", **{**MODEL, "top_k": 1}))


def test_drop_correlated_keeps_the_higher_iv_of_a_correlated_pair(ran: Ran) -> None:
    share = ran.share(GUEST)
    columns = [c.with_status(KEPT) for c in share.columns[:3]]
    x = np.linspace(0, 1, 400)
    X = np.column_stack([x, x, np.sin(40 * x)])
    # give all three the first column's bins and WOE, so 0 and 1 are identical
    same = [columns[0]] * 2 + [columns[0]]
    out = drop_correlated(same, X, 0.8)
    assert out[0].kept and out[1].status.startswith("correlated with")


def test_a_scorecard_without_an_arbiter_takes_one_host() -> None:
    raw = json.loads(train_spec("x", **MODEL).to_json())
    raw["parties"] = [p for p in raw["parties"] if p["role"] != "arbiter"]
    assert JobSpec.from_dict(raw).arbiter is None  # two-party WOE-LR
    raw["parties"].append({**raw["parties"][-1], "name": "host2"})
    with pytest.raises(ConfigError, match="without an arbiter runs between the guest and one"):
        JobSpec.from_dict(raw)


def test_an_unknown_scorecard_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="min_ivv"):
        train_spec("x", **{**MODEL, "min_ivv": 0.1})


@pytest.fixture
def nodes(tmp_path: Path, shared_data: Path) -> dict[str, NodeService]:
    return make_nodes(tmp_path, shared_data)


def test_the_tables_api_gives_each_party_its_own_tables_as_records(ran: Ran) -> None:
    import lianmo

    guest = lianmo.ScorecardTables.open(ran.job(GUEST, "sc-train"))
    host = lianmo.ScorecardTables.open(ran.job(HOST, "sc-train"))
    woe = guest.woe_iv()
    assert {r["column"] for r in woe} == {f"x{i}" for i in range(10)}
    assert all(r["events"] is not None for r in woe)
    assert all(r["events"] is None for r in host.woe_iv())
    points = guest.points()
    assert points[-1]["characteristic"] == "(base)"
    assert {r["characteristic"] for r in host.points()} == set(ran.share(HOST).feature_names)
    lift = guest.lift()
    assert len(lift) == 10 and lift[0]["lift"] > 1.5  # the riskiest decile
    assert len(guest.calibration()) == 10 and guest.score_bands()
    with pytest.raises(ConfigError, match="a host never sees labels or scores"):
        host.lift()
    with pytest.raises(ConfigError, match="stability belongs to a scoring job"):
        guest.stability()
    later = lianmo.ScorecardTables.open(ran.job(HOST, "sc-score"), model=ran.job(HOST, "sc-train"))
    names = {r["name"] for r in later.stability()}
    assert names == set(ran.share(HOST).feature_names)
    scored = lianmo.ScorecardTables.open(
        ran.job(GUEST, "sc-score"), model=ran.job(GUEST, "sc-train")
    )
    assert "(score)" in {r["name"] for r in scored.stability()}


def test_metrics_json_carries_each_partys_scorecard_and_stability_summary(ran: Ran) -> None:
    from lianmo.coordinator.results import PartySummary

    for party, job, key in ((GUEST, "sc-train", "scorecard"), (HOST, "sc-score", "stability")):
        raw = ran.result(party, job)
        summary = PartySummary.from_json(raw).to_json()
        assert summary[key] == raw[key]
    lr = PartySummary.from_json({"role": "host"}).to_json()
    assert "scorecard" not in lr and "stability" not in lr  # other jobs' metrics unchanged


def test_a_scorecard_without_an_arbiter_trains_its_woe_lr_two_party(
    ran: Ran, tmp_path: Path, shared_data: Path
) -> None:
    """No arbiter: WOE, selection and points as with one; the WOE-LR runs two-party (each
    party its own key, steps ``lr2.*``) and lands where the coordinated one does."""
    from .inprocess_nodes import two_party_configs, two_party_spec

    recorder = WireRecorder()
    configs = two_party_configs(tmp_path, shared_data)
    nodes = make_nodes(tmp_path, shared_data, observers=[recorder], configs=configs)
    report = run_in_process(nodes, two_party_spec("sc-2p", **MODEL))
    tags = {env.tag for env in recorder.sent}
    assert "lr2.product" in tags and not any(tag.startswith("lr.") for tag in tags)
    two_party = report.metrics()["validation"]["auc"]
    coordinated = ran.result(GUEST, "sc-train")["validation"]["auc"]
    assert abs(two_party - coordinated) < 0.01
    share = ScorecardShare.load(tmp_path / GUEST / "jobs" / "sc-2p" / "model.json",
                                party=GUEST, role="guest")  # fmt: skip

    def kept(sc: ScorecardShare) -> list[str]:
        return [c.name for c in sc.columns if c.kept]

    assert kept(share) == kept(ran.share(GUEST))  # the same selection
