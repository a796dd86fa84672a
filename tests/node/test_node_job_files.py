"""The CSV files a job writes (aligned ids, scores, predictions): streamed in blocks, atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lianmo.models.objectives import Objective
from lianmo.node import job_data
from lianmo.node.boost_job import write_predictions

IDS = ("c-01", "客户-02", "c-03", "c-04", "c-05")
SCORES = np.array([0.1, 0.25, 1 / 3, 0.5, 0.999999999])


@pytest.mark.parametrize("block", [1, 2, 5, 1 << 16])
def test_scores_are_the_same_whatever_the_block_and_the_id_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(job_data, "WRITE_ROWS", block)
    as_bytes = np.array([i.encode("utf-8") for i in IDS], dtype=np.bytes_)
    job_data.write_scores(tmp_path / "a.csv", IDS, SCORES)
    job_data.write_scores(tmp_path / "b.csv", as_bytes, SCORES)
    expected = "id,score\n" + "".join(
        f"{i},{float(s)!r}\n" for i, s in zip(IDS, SCORES, strict=True)
    )
    assert (tmp_path / "a.csv").read_text(encoding="utf-8") == expected
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()
    job_data.write_ids(tmp_path / "ids.csv", as_bytes)
    assert (tmp_path / "ids.csv").read_text(encoding="utf-8").splitlines() == ["id", *IDS]


def test_multiclass_predictions_have_a_column_per_class_and_the_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_data, "WRITE_ROWS", 2)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    write_predictions(tmp_path / "p.csv", IDS[:3], Objective("multiclass", 3), probs)
    lines = (tmp_path / "p.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id,p_0,p_1,p_2,class"
    assert lines[1:] == [
        "c-01,0.7,0.2,0.1,0",  # full precision: the shortest text of each float64
        "客户-02,0.1,0.1,0.8,2",
        "c-03,0.3,0.4,0.3,1",
    ]


def test_a_score_count_that_does_not_match_the_ids_leaves_no_file(tmp_path: Path) -> None:
    for scores in (SCORES[:3], np.append(SCORES, 0.5)):  # too few, and too many
        with pytest.raises(ValueError, match="scores.csv: .* rows of values for 5 ids"):
            job_data.write_scores(tmp_path / "scores.csv", IDS, scores)
    assert list(tmp_path.iterdir()) == []
