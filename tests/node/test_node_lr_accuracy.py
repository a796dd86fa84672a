"""Hetero LR through in-process nodes with clipping and Adam: equal to the plaintext
reference, and a party that fails mid-job resumes to the very same model.

The data: 2,000 rows of ``default_credit_hetero`` made heavy-tailed as
``scripts/lr_accuracy.py`` does (cubed columns, 100σ outliers), written as each party's
CSV. Real 2048-bit keys (the job spec refuses smaller ones).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from lianmo.audit.log import read_records
from lianmo.config import JobSpec, LrSpec
from lianmo.coordinator.run import run_job
from lianmo.crypto.fixedpoint import choose_exponent, quantise
from lianmo.data.split import validation_mask
from lianmo.data.table import load_table
from lianmo.errors import JobFailedError, LianmoError
from lianmo.models.logistic import train_plaintext_taylor
from lianmo.models.scaler import QuantileClipper, Standardizer
from lianmo.transport.envelope import Direction, Envelope

from .inprocess_nodes import (
    ARBITER,
    GUEST,
    HOST,
    DirectControl,
    fixed_seeds,
    make_nodes,
    party_config,
)

ROWS = 2000
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lr_accuracy.py"
MODEL = {
    "epochs": 2,
    "batch_size": 256,  # the guest's 13 columns and bias need 224 rows a batch
    "learning_rate": 0.03,
    "lr_decay": 0.01,
    "l2": 0.001,
    "tol": 0.0,
    "optimizer": "adam",
    "clip": 0.02,
}


def _skew(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    spec = importlib.util.spec_from_file_location("lr_accuracy", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lr_accuracy"] = module
    spec.loader.exec_module(module)
    g = load_table(
        shared_data / "default_credit_hetero_guest.csv", id_column="id", label_column="y"
    )
    h = load_table(shared_data / "default_credit_hetero_host.csv", id_column="id")
    assert list(g.ids) == list(h.ids) and g.y is not None
    Xg, Xh = module.skew(g.X, h.X)
    return np.asarray(g.ids[:ROWS]), Xg[:ROWS], Xh[:ROWS], g.y[:ROWS]


def _write(path: Path, ids: np.ndarray, X: np.ndarray, y: np.ndarray | None) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["id", *(["y"] if y is not None else []), *(f"x{j}" for j in range(X.shape[1]))]
        )
        for k, row_id in enumerate(ids):
            label = [int(y[k])] if y is not None else []
            out.writerow([row_id, *label, *(repr(float(v)) for v in X[k])])


@pytest.fixture(scope="module")
def skewed(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    ids, Xg, Xh, y = _skew(shared_data)
    folder = tmp_path_factory.mktemp("skewed")
    _write(folder / "guest.csv", ids, Xg, y)
    _write(folder / "host.csv", ids, Xh, None)
    return {"folder": folder, "ids": ids, "Xg": Xg, "Xh": Xh, "y": y}


def _nodes(tmp_path: Path, folder: Path, observers: list[object] = []) -> dict:  # type: ignore[type-arg]  # noqa: B006
    configs = {
        GUEST: party_config(tmp_path, GUEST, folder, skew_guest=("guest.csv", "y")),
        HOST: party_config(tmp_path, HOST, folder, skew_host=("host.csv", None)),
        ARBITER: party_config(tmp_path, ARBITER, folder),
    }
    return make_nodes(tmp_path, folder, observers, configs=configs, seed_for=fixed_seeds)  # type: ignore[arg-type]


def _spec(job_id: str) -> JobSpec:
    return JobSpec.from_dict(
        {
            "job_id": job_id,
            "seed": 42,
            "parties": [
                {"name": GUEST, "role": "guest", "address": "-", "dataset": "skew_guest"},
                {"name": HOST, "role": "host", "address": "-", "dataset": "skew_host"},
                {"name": ARBITER, "role": "arbiter", "address": "-"},
            ],
            "alignment": {"min_intersection": 100},
            "model": MODEL,
        }
    )


def _run(nodes: dict, spec: JobSpec, *, resume: bool = False) -> None:  # type: ignore[type-arg]
    controls = {n: DirectControl(node) for n, node in nodes.items()}
    try:
        run_job(spec, controls, poll_interval=0.05, resume=resume)
    finally:
        for node in nodes.values():
            node.wait(spec.job_id, timeout=120)


def _weights(tmp_path: Path, job_id: str) -> dict[str, np.ndarray]:
    out = {}
    for party in (GUEST, HOST):
        share = json.loads((tmp_path / party / "jobs" / job_id / "model.json").read_text())
        assert share["format"] == "lianmo.hetero_lr.share/v3"
        w = share["weights"] + ([share["intercept"]] if party == GUEST else [])
        out[party] = np.array(w)
    return out


def _reference(skewed: dict[str, object]) -> dict[str, np.ndarray]:
    """What the nodes compute, in plaintext: aligned rows in id order, each party's clip
    and scaler fitted on its training rows, features on their fixed-point grid."""
    ids = np.asarray(skewed["ids"]).astype(str)
    order = np.argsort(ids.astype(object), kind="stable")
    val = validation_mask(ids[order], 0.2, 42)
    parts = []
    for X, bias in ((skewed["Xg"], True), (skewed["Xh"], False)):
        X = np.asarray(X)[order]
        clip = QuantileClipper.fit(X[~val], MODEL["clip"])  # type: ignore[arg-type]
        scaler = Standardizer.fit(clip.transform(X[~val]))
        Xt = scaler.transform(clip.transform(X[~val]))
        if bias:
            Xt = np.hstack([Xt, np.ones((len(Xt), 1))])
        e = choose_exponent(Xt)
        parts.append(quantise(Xt, e) * 16.0**e)
    y = np.asarray(skewed["y"])[order][~val]
    settings = {
        k: MODEL[k] for k in ("epochs", "batch_size", "learning_rate", "lr_decay", "l2", "tol")
    }
    w, _ = train_plaintext_taylor(parts, y, seed=42, optimizer="adam", **settings)  # type: ignore[arg-type]
    return {GUEST: w[0], HOST: w[1]}


class _FailOnce:
    """Fails the host once, right after it sent one round's masked gradient."""

    def __init__(self, round: int) -> None:
        self.round = round
        self.fired = threading.Event()

    def on_message(self, direction: Direction, envelope: Envelope) -> None:
        if (
            direction == "sent"
            and envelope.sender == HOST
            and (envelope.tag, envelope.round) == ("lr.masked_gradient", self.round)
            and not self.fired.is_set()
        ):
            self.fired.set()
            raise LianmoError("injected failure after sending")


def test_clipped_adam_training_equals_the_plaintext_reference_and_resumes_exactly(
    tmp_path: Path, skewed: dict[str, object]
) -> None:
    assert LrSpec().clip == 0.02  # the test runs the default clip with a non-default optimiser
    nodes = _nodes(tmp_path / "a", skewed["folder"])  # type: ignore[arg-type]
    _run(nodes, _spec("adam-1"))
    federated = _weights(tmp_path / "a", "adam-1")
    reference = _reference(skewed)
    # the protocol forms u from the float features and rounds it to 2^-24, the reference
    # uses the fixed-point features throughout: up to 2e-6 apart after Adam's 12 steps
    for party in (GUEST, HOST):
        np.testing.assert_allclose(federated[party], reference[party], rtol=0, atol=5e-6)
    saved = json.loads(
        (tmp_path / "a" / HOST / "jobs/adam-1/checkpoints/lr-train.json").read_text()
    )
    assert saved["state"]["opt"]["name"] == "adam" and saved["state"]["opt"]["steps"] == 12

    # the host fails after round 7's masked gradient and resumes from its round-6 checkpoint
    fault = _FailOnce(7)
    nodes = _nodes(tmp_path / "b", skewed["folder"], [fault])  # type: ignore[arg-type]
    with pytest.raises(JobFailedError):
        _run(nodes, _spec("adam-2"))
    assert fault.fired.is_set()
    _run(nodes, _spec("adam-2"), resume=True)
    log = list(read_records(tmp_path / "b" / HOST / "jobs/adam-2/audit.jsonl"))
    assert any(r["kind"] == "resume" for r in log)  # from its checkpoint, not afresh
    rounds = [r["round"] for r in log if r["kind"] == "checkpoint" and r["name"] == "lr/train"]
    assert rounds == list(range(12))
    resumed = _weights(tmp_path / "b", "adam-2")
    for party in (GUEST, HOST):
        np.testing.assert_array_equal(resumed[party], federated[party])
