"""Served scores equal batch ``predict`` scores, id for id, to 1e-9 (issue 23's acceptance).

For LR (binary, and one-vs-rest multi-class) and SecureBoost (binary, multi-class and
regression) a model is trained and batch-scored through in-process nodes (2048-bit
keys), promoted at both parties, and served by real scoring servers over mutual TLS on
loopback; a decision engine asks for every aligned id, in one-id and 100-id requests.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lianmo.transport.scoring import ScoreQuery
from tests.node.inprocess_nodes import GUEST, HOST
from tests.serving.served import assert_close, batch_scores, promote, serving, train_and_predict

LR = {"type": "hetero_lr", "epochs": 2, "batch_size": 320, "learning_rate": 0.3}
SB = {"type": "secureboost", "trees": 3, "depth": 3, "max_bins": 16}
CASES = {
    "lr-binary": ("breast", LR, "binary"),
    "lr-multiclass": (
        "vehicle",
        {**LR, "objective": "multiclass", "batch_size": 256},
        "multiclass",
    ),
    "sb-binary": ("breast", SB, "binary"),
    "sb-multiclass": ("vehicle", {**SB, "objective": "multiclass"}, "multiclass"),
    "sb-regression": ("student", {**SB, "objective": "regression"}, "regression"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_served_scores_equal_batch_scores(tmp_path: Path, shared_data: Path, case: str) -> None:
    data, model, task = CASES[case]
    cfgs = train_and_predict(tmp_path, shared_data, data, model, "m1")
    batch = batch_scores(cfgs[GUEST], "m1-scores")
    for name in (GUEST, HOST):
        promote(cfgs[name], "credit", "m1")
    ids = sorted(batch)
    with serving(tmp_path, cfgs) as s:
        served: dict[str, tuple[float, ...]] = {}
        for lo in range(0, len(ids), 100):
            answer = s.client.score(ScoreQuery("credit", "", tuple(ids[lo : lo + 100])), 30)
            assert (answer.version, answer.task) == ("m1", task)
            assert not answer.fallback_hosts
            for item in answer.scores:
                assert not item.error and not item.fallback, item
                served[item.id] = item.values
        assert_close(served, batch)
        for i in ids[:5]:  # one id per request: the same numbers (up to BLAS rounding)
            (one,) = s.client.score(ScoreQuery("credit", "m1", (i,)), 30).scores
            assert one.values == pytest.approx(served[i], abs=1e-12)


def test_a_served_scorecard_gives_batch_probability_points_and_reason_codes(
    tmp_path: Path, shared_data: Path
) -> None:
    model = {"type": "scorecard", "epochs": 3, "min_iv": 0.1, "top_k": 12, "max_bins": 8}
    cfgs = train_and_predict(tmp_path, shared_data, "breast", model, "sc1")
    with (cfgs[GUEST].state_dir / "jobs" / "sc1-scores" / "scores.csv").open() as fh:
        batch = {row["id"]: row for row in csv.DictReader(fh)}
    for name in (GUEST, HOST):
        promote(cfgs[name], "card", "sc1")
    ids = sorted(batch)
    with serving(tmp_path, cfgs) as s:
        answer = s.client.score(ScoreQuery("card", "", tuple(ids)), 30)
    assert answer.task == "scorecard"
    reasons = sorted(k for k in next(iter(batch.values())) if k.startswith("reason_"))
    assert reasons  # the guest keeps reason codes
    for item in answer.scores:
        row = batch[item.id]
        assert not item.error
        assert item.values[0] == pytest.approx(float(row["probability"]), abs=1e-9)
        assert item.points == pytest.approx(float(row["score"]), abs=5.01e-5)  # 4 decimals
        assert list(item.reasons) == [row[k] for k in reasons]
