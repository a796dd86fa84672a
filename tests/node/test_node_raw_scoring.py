"""Scoring a new raw table (unseen categories, missing cells) with a stored SecureBoost model.

Train on a slice of the raw credit files (categories as text, empty cells) at in-process
nodes with 2048-bit keys, then score other people's rows in which some categories are
ones training never saw and more cells are blank. The node's scores must equal a plaintext
evaluation of the two stored shares, written here from the share format alone: a
numeric rule sends ``x <= threshold`` left, a categorical rule its ``left`` category
names left and its ``right`` ones right, and anything else (a missing cell, a category
not named) to the rule's ``default_left`` side.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from lianmo.config import JobSpec, PartyConfig
from lianmo.config.party import DEFAULT_MISSING_VALUES
from lianmo.node.service import NodeService

from .inprocess_nodes import GUEST, HOST, make_nodes, run_in_process

BROKER_CATEGORIES = ["sex", "education", "marriage"]
PLATFORM_CATEGORIES = [f"pay_{k}" for k in range(1, 7)]
TRAIN_ROWS, NEW_ROWS = 3000, 800


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def _tables(tmp_path: Path, shared_data: Path) -> dict[str, Path]:
    """Training slices of both raw files, and new rows with unseen categories and blanks."""
    b_head, broker = _read(shared_data / "credit_broker_raw.csv")
    p_head, platform = _read(shared_data / "credit_platform_raw.csv")
    by_id = {row[0]: row for row in platform}
    train = broker[:TRAIN_ROWS]
    new = [row for row in broker[TRAIN_ROWS:] if row[0] in by_id][:NEW_ROWS]
    new_broker, new_platform = [list(r) for r in new], [list(by_id[r[0]]) for r in new]
    education, limit = b_head.index("education"), b_head.index("limit_bal")
    pay_1, bill_1 = p_head.index("pay_1"), p_head.index("bill_amt1")
    for i, (b, p) in enumerate(zip(new_broker, new_platform, strict=True)):
        if i % 7 == 0:
            b[education] = "doctorate"  # a category training never saw
        if i % 5 == 0:
            b[limit] = ""
        if i % 10 == 0:
            p[pay_1] = "frozen"  # unseen
        if i % 9 == 0:
            p[bill_1] = "NA"  # a missing token
    return {
        "broker_train": _write(tmp_path / "broker_train.csv", b_head, train),
        "platform_train": _write(
            tmp_path / "platform_train.csv", p_head, [by_id[r[0]] for r in train if r[0] in by_id]
        ),
        "broker_new": _write(tmp_path / "broker_new.csv", b_head, new_broker),
        "platform_new": _write(tmp_path / "platform_new.csv", p_head, new_platform),
    }


def _config(tmp_path: Path, name: str, datasets: dict[str, dict[str, object]]) -> PartyConfig:
    return PartyConfig.from_dict(
        {
            "name": name,
            "listen": "127.0.0.1:0",
            "state_dir": name,
            "tls": {"cert": "x", "key": "x", "ca": "x"},
            "datasets": datasets,
        },
        base=tmp_path,
    )


def _spec(job_id: str, dataset_suffix: str, **extra: object) -> JobSpec:
    return JobSpec.from_dict(
        {
            "job_id": job_id,
            "seed": 7,
            "parties": [
                {"name": GUEST, "role": "guest", "address": "-", "dataset": "b" + dataset_suffix},
                {"name": HOST, "role": "host", "address": "-", "dataset": "p" + dataset_suffix},
            ],
            "model": {"type": "secureboost", "trees": 4, "depth": 3, "max_bins": 16},
            **extra,
        }
    )


class _Evaluator:
    """The stored model evaluated in plaintext from both shares and the raw cells."""

    def __init__(self, guest_share: dict, host_share: dict) -> None:  # type: ignore[type-arg]
        self.trees = guest_share["trees"]
        self.init = guest_share["init_score"][0]
        self.rules = {
            GUEST: {r["id"]: r for r in guest_share["rules"]},
            HOST: {r["id"]: r for r in host_share["rules"]},
        }
        self.defaults = 0  # how many routing decisions took a rule's default side

    def left(self, rule: dict, cell: str) -> bool:  # type: ignore[type-arg]
        text = cell.strip()
        if "left" in rule:
            if text in rule["left"]:
                return True
            if text in rule["right"]:
                return False
        elif text not in DEFAULT_MISSING_VALUES:
            return float(text) <= rule["threshold"]
        self.defaults += 1
        return bool(rule["default_left"])

    def score(self, cells: dict[str, dict[str, str]]) -> float:
        total = self.init
        for tree in self.trees:
            node = tree["nodes"][0]
            while "value" not in node:
                rule = self.rules[node["owner"]][node["split"]]
                side = "left" if self.left(rule, cells[node["owner"]][rule["feature"]]) else "right"
                node = tree["nodes"][node[side]]
            total += node["value"]
        return 1.0 / (1.0 + math.exp(-total))


@pytest.mark.timeout(600)
def test_new_rows_with_unseen_categories_and_blanks_score_as_the_stored_model_says(
    tmp_path: Path, shared_data: Path
) -> None:
    files = _tables(tmp_path, shared_data)
    broker = {"id_column": "client_id", "categorical": BROKER_CATEGORIES}
    platform = {"id_column": "client_id", "categorical": PLATFORM_CATEGORIES}
    configs = {
        GUEST: _config(
            tmp_path,
            GUEST,
            {
                "b_train": {
                    **broker,
                    "path": str(files["broker_train"]),
                    "label_column": "default_next_month",
                },
                "b_new": {**broker, "path": str(files["broker_new"])},
            },
        ),  # fmt: skip
        HOST: _config(
            tmp_path,
            HOST,
            {
                "p_train": {**platform, "path": str(files["platform_train"])},
                "p_new": {**platform, "path": str(files["platform_new"])},
            },
        ),
    }
    nodes: dict[str, NodeService] = make_nodes(tmp_path, shared_data, configs=configs)
    report = run_in_process(nodes, _spec("raw-train", "_train"))
    assert report.guest_result["validation"]["auc"] > 0.7
    guest_share = json.loads((tmp_path / GUEST / "jobs/raw-train/model.json").read_text())
    host_share = json.loads((tmp_path / HOST / "jobs/raw-train/model.json").read_text())
    # each share keeps only its own vocabulary; the host's rules name categories, not codes
    assert set(guest_share["categories"]) == set(BROKER_CATEGORIES)
    assert set(host_share["categories"]) == set(PLATFORM_CATEGORIES)
    assert any("left" in r for r in host_share["rules"]), "no categorical host split to test"
    assert "frozen" not in json.dumps(host_share) and "doctorate" not in json.dumps(guest_share)

    run_in_process(nodes, _spec("raw-score", "_new", task="predict", model_job="raw-train"))
    lines = (tmp_path / GUEST / "jobs/raw-score/scores.csv").read_text().split()[1:]
    scores = {i: float(s) for i, s in (line.split(",") for line in lines)}
    assert len(scores) == NEW_ROWS

    b_head, b_rows = _read(files["broker_new"])
    p_head, p_rows = _read(files["platform_new"])
    cells = {row[0]: {GUEST: dict(zip(b_head, row, strict=True))} for row in b_rows}
    for row in p_rows:
        cells[row[0]][HOST] = dict(zip(p_head, row, strict=True))
    model = _Evaluator(guest_share, host_share)
    expected = {i: model.score(cells[i]) for i in scores}
    assert model.defaults > 20  # unseen categories and blanks did reach split nodes
    # scores.csv keeps full precision: equal up to float64 rounding of the sums
    worst = max(abs(scores[i] - expected[i]) for i in scores)
    assert worst <= 1e-12, f"scores differ from the stored model's by up to {worst}"
