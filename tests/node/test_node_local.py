"""Party nodes wired in one process: the job runner's phases, outputs and failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lianmo.audit.log import read_records, verify_chain
from lianmo.config import DatasetEntry, JobSpec, PartyConfig
from lianmo.coordinator.results import JobMetrics
from lianmo.coordinator.run import run_job
from lianmo.errors import ConfigError, JobFailedError
from lianmo.node.service import NodeService
from lianmo.protocols.label_noise import sigma_for

from .inprocess_nodes import DirectControl, breast_configs, make_nodes, train_spec


def _spec(job_id: str = "breast-1", **model: object) -> JobSpec:
    return train_spec(job_id, **model)


@pytest.fixture
def nodes(tmp_path: Path, shared_data: Path) -> dict[str, NodeService]:
    return make_nodes(tmp_path, shared_data)


def test_train_then_predict_writes_shares_metrics_and_audit_logs(
    nodes: dict[str, NodeService], tmp_path: Path
) -> None:
    controls = {n: DirectControl(node) for n, node in nodes.items()}
    report = run_job(_spec(), controls, poll_interval=0.05)
    val = report.guest_result["validation"]
    assert val["auc"] > 0.97 and val["rows"] > 50
    assert len(report.results["arbiter"]["losses"]) == 2
    for name in ("broker", "platform"):
        job_dir = tmp_path / name / "jobs" / "breast-1"
        share = json.loads((job_dir / "model.json").read_text())
        assert share["party"] == name and len(share["weights"]) == (10 if name == "broker" else 20)
        assert verify_chain(job_dir / "audit.jsonl") > 10
    assert (
        json.loads((tmp_path / "platform/jobs/breast-1/model.json").read_text())["intercept"]
        is None
    )

    predict = JobSpec.from_dict(
        {**json.loads(_spec("breast-scores").to_json()), "task": "predict", "model_job": "breast-1"}
    )
    report = run_job(predict, controls, poll_interval=0.05)
    assert report.guest_result["scored"] == 569
    lines = (tmp_path / "broker/jobs/breast-scores/scores.csv").read_text().splitlines()
    assert lines[0] == "id,score" and len(lines) == 570
    assert not (tmp_path / "platform/jobs/breast-scores/scores.csv").exists()
    validation = dict(
        line.split(",")
        for line in (tmp_path / "broker/jobs/breast-1/validation_scores.csv")
        .read_text()
        .splitlines()[1:]
    )
    scores = dict(line.split(",") for line in lines[1:])
    assert all(abs(float(scores[i]) - float(v)) < 1e-9 for i, v in validation.items())
    assert report.guest_result["metrics"]["auc"] > 0.97  # the file has labels: scored too


def test_new_customers_without_labels_are_scored(
    nodes: dict[str, NodeService], tmp_path: Path, shared_data: Path
) -> None:
    controls = {n: DirectControl(node) for n, node in nodes.items()}
    run_job(_spec("breast-2"), controls, poll_interval=0.05)
    rows = (shared_data / "breast_hetero_guest.csv").read_text().splitlines()
    header = rows[0].split(",")
    label = header.index("y")
    unlabelled = [",".join(c for j, c in enumerate(r.split(",")) if j != label) for r in rows[:101]]
    (tmp_path / "new_customers.csv").write_text("\n".join(unlabelled) + "\n")
    broker = nodes["broker"]
    broker.config.datasets["new_customers"] = DatasetEntry(
        name="new_customers", path=tmp_path / "new_customers.csv", id_column="id"
    )
    spec = json.loads(_spec("breast-new").to_json())
    spec["parties"][0]["dataset"] = "new_customers"
    predict = JobSpec.from_dict({**spec, "task": "predict", "model_job": "breast-2"})
    report = run_job(predict, controls, poll_interval=0.05)
    assert report.guest_result["scored"] == 100 and "metrics" not in report.guest_result
    lines = (tmp_path / "broker/jobs/breast-new/scores.csv").read_text().splitlines()
    assert len(lines) == 101


def test_a_failing_party_is_named_with_its_own_error(
    nodes: dict[str, NodeService], tmp_path: Path
) -> None:
    (tmp_path / "bad.csv").write_text("id,x1\n1,0.5\n2,abc\n")
    platform = nodes["platform"]
    platform.config.datasets["breast_host"] = platform.config.datasets["breast_host"].__class__(
        name="breast_host", path=tmp_path / "bad.csv", id_column="id"
    )
    controls = {n: DirectControl(node) for n, node in nodes.items()}
    with pytest.raises(JobFailedError, match="platform.*breast_host.*'x1', data row 2") as info:
        run_job(_spec("breast-bad"), controls, poll_interval=0.05)
    assert info.value.party == "platform"
    assert "bad.csv" not in info.value.reason and "abc" not in info.value.reason
    assert not (tmp_path / "platform/jobs/breast-bad/model.json").exists()
    assert not (tmp_path / "broker/jobs/breast-bad/model.json").exists()
    for name in ("broker", "arbiter"):
        assert nodes[name].wait("breast-bad", timeout=30).state == "cancelled"


def test_a_guest_with_two_hosts_trains_one_model(tmp_path: Path, shared_data: Path) -> None:
    lines = (shared_data / "breast_hetero_host.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines]
    for name, cols in (("platform", slice(1, 11)), ("telecom", slice(11, None))):
        # each host keeps a different subset of people: alignment must intersect all three
        keep = rows[1:500] if name == "platform" else rows[60:]
        text = "\n".join(",".join([r[0], *r[cols]]) for r in [rows[0], *keep])
        (tmp_path / f"{name}.csv").write_text(text + "\n")
    configs = breast_configs(tmp_path, shared_data)
    for name in ("platform", "telecom"):
        configs[name] = PartyConfig.from_dict(
            {
                "name": name,
                "listen": "127.0.0.1:0",
                "state_dir": name,
                "tls": {"cert": "x", "key": "x", "ca": "x"},
                "datasets": {"part": {"path": f"{name}.csv", "id_column": "id"}},
                "policy": {"arbiters": ["arbiter"]},
            },
            base=tmp_path,
        )
    nodes = make_nodes(tmp_path, shared_data, configs=configs)
    spec = JobSpec.from_dict(
        {
            "job_id": "three-way",
            "parties": [
                {"name": "broker", "role": "guest", "address": "-", "dataset": "breast_guest"},
                {"name": "platform", "role": "host", "address": "-", "dataset": "part"},
                {"name": "telecom", "role": "host", "address": "-", "dataset": "part"},
                {"name": "arbiter", "role": "arbiter", "address": "-"},
            ],
            "model": {"epochs": 2, "batch_size": 320, "learning_rate": 0.3},
        }
    )
    report = run_job(
        spec, {n: DirectControl(node) for n, node in nodes.items()}, poll_interval=0.05
    )
    assert report.guest_result["aligned"] == 499 - 59
    assert report.guest_result["validation"]["auc"] > 0.95
    widths = {
        n: len(json.loads((tmp_path / n / "jobs/three-way/model.json").read_text())["weights"])
        for n in ("broker", "platform", "telecom")
    }
    assert widths == {"broker": 10, "platform": 10, "telecom": 10}
    assert len(report.metrics()["loss"]) == 2


def test_an_align_job_finds_the_common_ids_and_trains_nothing(
    nodes: dict[str, NodeService], tmp_path: Path, shared_data: Path
) -> None:
    spec = JobSpec.from_dict({**json.loads(_spec("breast-overlap").to_json()), "task": "align"})
    controls = {n: DirectControl(node) for n, node in nodes.items()}
    report = run_job(spec, controls, poll_interval=0.05)
    assert report.metrics()["aligned"] == 569 and report.metrics()["task"] == "align"
    ids = {}
    for name in ("broker", "platform"):
        job_dir = tmp_path / name / "jobs" / "breast-overlap"
        ids[name] = (job_dir / "aligned_ids.csv").read_text().splitlines()
        assert not (job_dir / "model.json").exists()
        assert verify_chain(job_dir / "audit.jsonl") > 2
    assert ids["broker"] == ids["platform"]
    lines = (shared_data / "breast_hetero_guest.csv").read_text().splitlines()[1:]
    expected = {line.split(",")[0] for line in lines}
    assert ids["broker"][0] == "id" and set(ids["broker"][1:]) == expected
    assert ids["broker"][1:] == sorted(ids["broker"][1:])  # the jobs' row order: by id
    assert not (tmp_path / "arbiter" / "jobs" / "breast-overlap" / "aligned_ids.csv").exists()


def test_parquet_tables_train_and_score_exactly_as_their_csv(
    tmp_path: Path, shared_data: Path
) -> None:
    """The same rows as Parquet give byte-identical model shares and the same scores."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lianmo.data.table import load_table

    from .inprocess_nodes import (
        ARBITER,
        GUEST,
        GUEST_FILE,
        HOST,
        HOST_FILE,
        fixed_seeds,
        party_config,
    )

    parquet_dir = tmp_path / "parquet"
    parquet_dir.mkdir()
    for name, label in ((GUEST_FILE, "y"), (HOST_FILE, None)):
        table = load_table(shared_data / name, id_column="id", label_column=label)
        columns = {"id": pa.array([int(i) for i in table.ids], pa.int64())}  # integer ids
        if table.y is not None:
            columns["y"] = pa.array(table.y.astype(int))
        columns.update({f: table.X[:, j] for j, f in enumerate(table.feature_names)})
        pq.write_table(pa.table(columns), parquet_dir / name.replace(".csv", ".parquet"))
    guest_pq, host_pq = (f.replace(".csv", ".parquet") for f in (GUEST_FILE, HOST_FILE))

    outputs = {}
    for kind, folder, files in (
        ("csv", shared_data, (GUEST_FILE, HOST_FILE)),
        ("parquet", parquet_dir, (guest_pq, host_pq)),
    ):
        root = tmp_path / kind
        configs = {
            GUEST: party_config(root, GUEST, folder, breast_guest=(files[0], "y")),
            HOST: party_config(root, HOST, folder, breast_host=(files[1], None)),
            ARBITER: party_config(root, ARBITER, folder),
        }
        nodes = make_nodes(root, folder, configs=configs, seed_for=fixed_seeds)
        controls = {n: DirectControl(node) for n, node in nodes.items()}
        report = run_job(_spec("breast-pq"), controls, poll_interval=0.05)
        predict = JobSpec.from_dict(
            {
                **json.loads(_spec("breast-pq-scores").to_json()),
                "task": "predict",
                "model_job": "breast-pq",
            }
        )
        scored = run_job(predict, controls, poll_interval=0.05)
        outputs[kind] = (
            {p: report.results[p]["model_digest"] for p in (GUEST, HOST)},
            report.guest_result["validation"],
            (root / GUEST / "jobs" / "breast-pq-scores" / "scores.csv").read_text(),
            scored.guest_result["scored"],
        )
    assert outputs["csv"] == outputs["parquet"]
    assert outputs["csv"][3] == 569


def test_label_protection_reports_its_budget_in_the_summary_and_the_audit_log(
    nodes: dict[str, NodeService], tmp_path: Path
) -> None:
    spec = _spec("breast-dp", tol=0.0, label_protection={"epsilon": 8.0, "delta": 1e-6})
    report = run_job(
        spec, {n: DirectControl(node) for n, node in nodes.items()}, poll_interval=0.05
    )
    sigma = round(sigma_for(8.0, 1e-6, 2), 6)
    assert report.guest_result["label_protection"] == {
        "epsilon": 8.0,
        "delta": 1e-6,
        "sigma": sigma,
    }
    assert report.guest_result["validation"]["auc"] > 0.9  # noisy, still a model
    log = read_records(tmp_path / "broker" / "jobs" / "breast-dp" / "audit.jsonl")
    [record] = [r for r in log if r["kind"] == "label_protection"]
    assert (record["epsilon"], record["delta"], record["sigma"]) == (8.0, 1e-6, sigma)
    assert "label_protection" not in report.results["platform"]
    # the coordinator's metrics.json carries the budget, and reads it back
    metrics = report.job_metrics()
    assert metrics.label_protection == {"epsilon": 8.0, "delta": 1e-6, "sigma": sigma}
    assert JobMetrics.from_json(metrics.to_json()) == metrics
    assert metrics.to_json()["label_protection"] == {"epsilon": 8.0, "delta": 1e-6, "sigma": sigma}


def test_label_protection_with_early_stopping_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"model.tol is 0.0001 but model.label_protection needs tol: 0"
    ):
        _spec("breast-dp", label_protection={"epsilon": 1.0})
