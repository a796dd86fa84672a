"""A hetero LR job keeps its party's encoding in its model share and scores with it.

Until the data reader codes categories and reads empty cells as missing, these tests put
missing cells and a categorical column into the host's aligned rows (the job's own table,
after alignment) and train real in-process nodes with 2048-bit keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lianmo.config import JobSpec
from lianmo.data.table import Table
from lianmo.errors import JobFailedError
from lianmo.node import lr_job
from lianmo.node.service import NodeService

from .inprocess_nodes import HOST, make_nodes, run_in_process, train_spec

EVERY = 7  # every 7th aligned row of the host gets a missing cell in column 3


@pytest.fixture
def nodes(tmp_path: Path, shared_data: Path) -> dict[str, NodeService]:
    return make_nodes(tmp_path, shared_data)


def _host_table(monkeypatch: pytest.MonkeyPatch, *, categorical: bool) -> set[str]:
    """Blank and recode the host's aligned rows; returns the ids of the blanked rows."""
    real = lr_job.aligned_table
    blanked: set[str] = set()

    def aligned(ctx, role, spec, scan, data, outcome):  # type: ignore[no-untyped-def]
        table = real(ctx, role, spec, scan, data, outcome)
        if ctx.party != HOST:
            return table
        X = np.array(table.X)
        X[::EVERY, 3] = np.nan
        blanked.update(table.ids[::EVERY])
        categories = {}
        if categorical:  # column 0 as two categories: below or above its median
            X[:, 0] = (X[:, 0] > np.median(X[:, 0])).astype(float)
            categories = {table.feature_names[0]: ("high", "low")}
        return Table(table.ids, X, table.feature_names, table.y, table.source,
                     table.label_name, categories)  # fmt: skip

    monkeypatch.setattr(lr_job, "aligned_table", aligned)
    return blanked


def _predict(job_id: str, model_job: str) -> JobSpec:
    return JobSpec.from_dict(
        {**json.loads(train_spec(job_id).to_json()), "task": "predict", "model_job": model_job}
    )


def _scores(path: Path) -> dict[str, float]:
    return {i: float(s) for i, s in (line.split(",") for line in path.read_text().split()[1:])}


def test_a_share_trained_with_missing_cells_keeps_its_encoding_and_scores_the_same(
    nodes: dict[str, NodeService], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blanked = _host_table(monkeypatch, categorical=False)
    report = run_in_process(nodes, train_spec("enc-1", batch_size=400))
    assert report.guest_result["validation"]["auc"] > 0.95
    host_share = json.loads((tmp_path / "platform/jobs/enc-1/model.json").read_text())
    guest_share = json.loads((tmp_path / "broker/jobs/enc-1/model.json").read_text())
    # v3: both keep their clipping bounds (model.clip); only the host has an encoding
    assert host_share["format"] == guest_share["format"] == "lianmo.hetero_lr.share/v3"
    assert "encoding" in host_share and "encoding" not in guest_share
    assert len(host_share["clip"]["lower"]) == len(host_share["weights"])
    number = host_share["encoding"]["columns"][3]
    assert number["indicator"] is True and len(host_share["weights"]) == 21
    # scoring the file (no missing cell) with the stored share gives the validation
    # scores of every validation row the job did not blank
    monkeypatch.undo()
    run_in_process(nodes, _predict("enc-scores", "enc-1"))
    scored = _scores(tmp_path / "broker/jobs/enc-scores/scores.csv")
    validation = _scores(tmp_path / "broker/jobs/enc-1/validation_scores.csv")
    same = [i for i in validation if i not in blanked]
    assert len(blanked) > 50 and len(same) > 50 and len(same) < len(validation)
    assert max(abs(scored[i] - validation[i]) for i in same) < 1e-9


def test_scoring_a_table_that_reads_a_categorical_column_as_numbers_is_refused(
    nodes: dict[str, NodeService], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _host_table(monkeypatch, categorical=True)
    run_in_process(nodes, train_spec("enc-2", batch_size=400))
    share = json.loads((tmp_path / "platform/jobs/enc-2/model.json").read_text())
    assert share["encoding"]["columns"][0]["vocabulary"] == ["high", "low"]
    monkeypatch.undo()
    with pytest.raises(JobFailedError, match="platform.*column '.*' of data set 'breast_host' "
                       "was categorical when the model was trained"):  # fmt: skip
        run_in_process(nodes, _predict("enc-scores-2", "enc-2"))
    assert not (tmp_path / "broker/jobs/enc-scores-2/scores.csv").exists()
