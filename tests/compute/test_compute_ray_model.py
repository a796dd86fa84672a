"""The Ray backend trains exactly the model the local process pool trains.

One coordinated hetero LR job on ``default_credit_hetero`` (30,000 people, 2048-bit keys,
one epoch of 4096-row batches), run twice by in-process party nodes: once with every
party's kernels on a local process pool, once on a local Ray cluster. Model shares must be
byte-identical and the metrics equal. (The kernels' bit-for-bit contract over both
backends is in test_compute_backend.py; this is the same promise at the level of a job.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lianmo.compute.backend import ComputeBackend, ProcessPoolBackend
from lianmo.compute.ray_backend import RayBackend
from lianmo.config import JobSpec
from tests.node.inprocess_nodes import make_nodes, party_config, run_in_process

pytestmark = pytest.mark.timeout(600)

JOB = "credit-ray"
GUEST_FILE, HOST_FILE = "default_credit_hetero_guest.csv", "default_credit_hetero_host.csv"


def _spec() -> JobSpec:
    return JobSpec.from_dict(
        {
            "job_id": JOB,
            "seed": 5,
            "parties": [
                {"name": "broker", "role": "guest", "address": "-", "dataset": "credit"},
                {"name": "platform", "role": "host", "address": "-", "dataset": "credit"},
                {"name": "arbiter", "role": "arbiter", "address": "-"},
            ],
            "alignment": {"min_intersection": 1000},
            "validation": {"share": 0.2},
            "model": {"epochs": 1, "batch_size": 4096, "learning_rate": 0.5},
        }
    )


def _train(root: Path, shared_data: Path, compute: ComputeBackend) -> tuple[dict, dict]:
    configs = {
        "broker": party_config(root, "broker", shared_data, credit=(GUEST_FILE, "y")),
        "platform": party_config(root, "platform", shared_data, credit=(HOST_FILE, None)),
        "arbiter": party_config(root, "arbiter", shared_data),
    }
    nodes = make_nodes(
        root, shared_data, configs=configs, compute=compute, seed_for=lambda _: b"\x07" * 32
    )
    report = run_in_process(nodes, _spec())
    shares = {
        name: hashlib.sha256((root / name / "jobs" / JOB / "model.json").read_bytes()).hexdigest()
        for name in ("broker", "platform")
    }
    return shares, report.metrics()


@pytest.mark.slow  # a full LR job on 30,000 rows twice (about 90 s)
def test_ray_and_local_backends_train_the_same_model(tmp_path: Path, shared_data: Path) -> None:
    with ProcessPoolBackend(2) as local:
        local_shares, local_metrics = _train(tmp_path / "local", shared_data, local)
    with RayBackend("local", cpus=2) as ray:
        assert ray.workers == 2
        ray_shares, ray_metrics = _train(tmp_path / "ray", shared_data, ray)
    assert ray_shares == local_shares
    for key in ("validation", "loss", "loss_per_round", "aligned", "train_rows"):
        assert ray_metrics[key] == local_metrics[key], key
    assert local_metrics["aligned"] == 30000 and local_metrics["validation"]["auc"] > 0.65
