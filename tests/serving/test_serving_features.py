"""The default online feature store: built from the data set with the batch reader, looked
up by id, rebuilt in the background when the file changes; and cells to model inputs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from lianmo.config import PartyConfig
from lianmo.errors import DataError
from lianmo.node.serving import features
from lianmo.node.serving.features import ModelColumns, SqliteStore


def _entry(tmp_path: Path, text: str) -> tuple[PartyConfig, Path]:
    data = tmp_path / "t.csv"
    data.write_text(text)
    config = PartyConfig.from_dict(
        {
            "name": "platform",
            "listen": "127.0.0.1:0",
            "state_dir": "state",
            "tls": {"cert": "x", "key": "x", "ca": "x"},
            "datasets": {
                "t": {"path": str(data), "id_column": "id", "categorical": ["city"]},
            },
        },
        base=tmp_path,
    )
    return config, data


def test_the_store_holds_the_cells_batch_reading_gives_and_follows_the_file(
    tmp_path: Path,
) -> None:
    config, data = _entry(tmp_path, "id,x,city\na,1.5,Beijing\nb,,Shanghai\n c ,2e-3,\n")
    store = SqliteStore("platform", config.dataset("t"), tmp_path / "features", refresh_s=0.0)
    assert list(store.columns) == ["x", "city"]
    assert store.lookup(["a", "b", "c", "zz"]) == {
        "a": (1.5, "Beijing"),
        "b": (None, "Shanghai"),  # missing cells are None, ids stripped as batch reads them
        "c": (0.002, None),
    }
    data.write_text("id,x,city\na,7.25,Beijing\nd,1,Hangzhou\n")
    os.utime(data, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime for sure
    deadline = time.monotonic() + 20
    while store.lookup(["a"]).get("a") != (7.25, "Beijing"):  # rebuilt in the background
        assert time.monotonic() < deadline, "the store never followed the changed file"
        time.sleep(0.05)
    assert store.lookup(["b", "d"]) == {"d": (1.0, "Hangzhou")}


def test_a_store_built_in_chunks_holds_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features, "_CHUNK", 3)  # 8 rows: chunks of 3, 3 and 2
    lines = [f"r{i},{i / 4},{'' if i % 3 else 'Beijing'}" for i in range(8)]
    config, _ = _entry(tmp_path, "id,x,city\n" + "\n".join(lines) + "\n")
    store = SqliteStore("platform", config.dataset("t"), tmp_path / "features")
    got = store.lookup([f"r{i}" for i in range(9)])
    assert got == {f"r{i}": (i / 4, None if i % 3 else "Beijing") for i in range(8)}


def test_cells_become_the_models_inputs_with_its_vocabulary() -> None:
    cols = ModelColumns("platform", ("city", "x"), {"city": ("Beijing", "Shanghai")})
    X = cols.inputs(["x", "city"], [(1.5, "Shanghai"), (None, "Lhasa"), (2, None)])
    assert X[0].tolist() == [1.0, 1.5]
    assert X[1, 0] == 2.0 and np.isnan(X[1, 1])  # an unseen category: after the vocabulary
    assert np.isnan(X[2, 0]) and X[2, 1] == 2.0
    with pytest.raises(DataError, match="column 'x' holds the text 'high'"):
        cols.inputs(["x", "city"], [("high", "Beijing")])
