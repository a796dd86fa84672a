"""Per-job column choice at in-process nodes: the job's columns/exclude, the catalogue's offer.

A job names the feature columns each party contributes (``columns``, in order) or leaves
some out (``exclude``); a party's catalogue may restrict the columns any job may use. A
name the data set does not offer is refused at prepare, before any job state exists, with
the same public text whether the file lacks it or the catalogue holds it back.
"""

from __future__ import annotations

import hashlib
import json
import typing as t
from dataclasses import replace
from pathlib import Path

import pytest

from lianmo.config import JobSpec
from lianmo.coordinator.run import run_job
from lianmo.errors import ConfigError, JobFailedError
from lianmo.node.replay import replay_job
from lianmo.node.service import NodeService

from .inprocess_nodes import GUEST, HOST, DirectControl, make_nodes, train_spec

HOST_COLUMNS = tuple(f"x{i}" for i in range(20))  # breast_hetero_host.csv: id, x0..x19
GUEST_COLUMNS = tuple(f"x{i}" for i in range(10))  # breast_hetero_guest.csv: id, y, x0..x9


@pytest.fixture
def nodes(tmp_path: Path, shared_data: Path) -> dict[str, NodeService]:
    return make_nodes(tmp_path, shared_data)


def _spec(job_id: str, task: str = "train", **choice: dict[str, t.Any]) -> JobSpec:
    """The breast LR job, with ``choice[party]`` (columns or exclude) added to its entry."""
    raw = json.loads(train_spec(job_id).to_json())
    for party in raw["parties"]:
        party.update(choice.get(party["name"], {}))
    if task == "predict":
        raw.update(task="predict", model_job=job_id.removesuffix("-scores"))
    return JobSpec.from_dict(raw)


def _run(nodes: dict[str, NodeService], spec: JobSpec) -> dict[str, t.Any]:
    controls = {n: DirectControl(node) for n, node in nodes.items()}
    return run_job(spec, controls, poll_interval=0.05).guest_result


def _share(tmp_path: Path, party: str, job_id: str) -> dict[str, t.Any]:
    return t.cast(
        dict[str, t.Any],
        json.loads((tmp_path / party / "jobs" / job_id / "model.json").read_text()),
    )


def _offer(node: NodeService, dataset: str, columns: tuple[str, ...] | None) -> None:
    """Set the catalogue's ``columns`` of ``dataset`` at ``node``."""
    node.config.datasets[dataset] = replace(node.config.datasets[dataset], columns=columns)


def test_exclude_and_columns_choose_what_each_party_trains_and_scores_on(
    nodes: dict[str, NodeService], tmp_path: Path
) -> None:
    # Prepare
    dropped = ["x3", "x17", "x0"]
    spec = _spec(
        "chosen",
        **{GUEST: {"columns": ["x7", "x2", "x5"]}, HOST: {"exclude": dropped}},
    )

    # Execute
    result = _run(nodes, spec)
    scored = _run(nodes, _spec("chosen-scores", task="predict"))

    # Assert
    host, guest = _share(tmp_path, HOST, "chosen"), _share(tmp_path, GUEST, "chosen")
    assert host["feature_names"] == [c for c in HOST_COLUMNS if c not in dropped]
    assert len(host["weights"]) == 17
    assert guest["feature_names"] == ["x7", "x2", "x5"]  # the job's order, not the file's
    assert len(guest["weights"]) == 3
    assert result["validation"]["auc"] > 0.9
    assert scored["scored"] == 569


def test_replay_of_a_job_with_chosen_columns_reads_the_same_columns(
    nodes: dict[str, NodeService], tmp_path: Path
) -> None:
    spec = _spec("chosen-replay", **{HOST: {"exclude": ["x3", "x0"]}})
    _run(nodes, spec)
    job_dir = tmp_path / HOST / "jobs" / spec.job_id
    replayed = replay_job(nodes[HOST].config, job_dir)
    assert replayed.notes == ()
    share = (job_dir / "model.json").read_bytes()
    assert replayed.model_digest == hashlib.sha256(share).hexdigest()


def test_default_job_uses_every_column_and_keeps_its_digest(
    nodes: dict[str, NodeService], tmp_path: Path
) -> None:
    spec = train_spec("all-columns")
    assert b'"columns"' not in spec.to_json() and b'"exclude"' not in spec.to_json()
    _run(nodes, spec)
    assert _share(tmp_path, HOST, "all-columns")["feature_names"] == list(HOST_COLUMNS)


def test_catalogue_columns_restrict_every_job(
    nodes: dict[str, NodeService], tmp_path: Path
) -> None:
    # Prepare: the platform offers 5 of its 20 columns, in its own (file) order
    _offer(nodes[HOST], "breast_host", ("x9", "x1", "x4", "x12", "x18"))

    # Execute
    _run(nodes, _spec("offered"))
    _run(nodes, _spec("offered-less", **{HOST: {"exclude": ["x4"]}}))

    # Assert
    assert _share(tmp_path, HOST, "offered")["feature_names"] == ["x1", "x4", "x9", "x12", "x18"]
    assert _share(tmp_path, HOST, "offered-less")["feature_names"] == ["x1", "x9", "x12", "x18"]


@pytest.mark.parametrize(
    ("choice", "column"),
    [
        pytest.param({"columns": ["x1", "income"]}, "income", id="not-in-the-file"),
        pytest.param({"exclude": ["x19", "x1"]}, "x19", id="held-back-by-the-catalogue"),
        pytest.param({"columns": ["x15"]}, "x15", id="held-back-in-columns"),
    ],
)
def test_attack_a_column_the_data_set_does_not_offer_is_refused_at_prepare(
    nodes: dict[str, NodeService], tmp_path: Path, choice: dict[str, t.Any], column: str
) -> None:
    # Prepare
    _offer(nodes[HOST], "breast_host", HOST_COLUMNS[:10])
    spec = _spec("probe", **{HOST: choice})
    key = next(iter(choice))

    # Execute
    with pytest.raises(ConfigError) as direct:
        nodes[HOST].prepare("coordinator", spec.job_id, spec.to_json())
    with pytest.raises(JobFailedError) as through_coordinator:
        _run(nodes, spec)

    # Assert: the same public text whether the file lacks the column or the catalogue
    # holds it back; no other column name and no path
    text = str(direct.value)
    assert text == (
        f"party '{HOST}', data set 'breast_host', column '{column}': the job spec's {key} "
        "names a column the data set does not offer to jobs; the coordinator must name only "
        "offered feature columns (the party's node log lists them)"
    )
    assert through_coordinator.value.party == HOST
    assert text in through_coordinator.value.reason
    assert not (tmp_path / HOST / "jobs" / "probe").exists()
    assert not (tmp_path / GUEST / "jobs" / "probe" / "model.json").exists()


def test_the_id_or_label_column_is_never_a_feature(nodes: dict[str, NodeService]) -> None:
    for column, kind in (("id", "id"), ("y", "label")):
        spec = _spec(f"label-{kind}", **{GUEST: {"columns": ["x1", column]}})
        with pytest.raises(ConfigError) as info:
            nodes[GUEST].prepare("coordinator", spec.job_id, spec.to_json())
        assert str(info.value) == (
            f"party '{GUEST}', data set 'breast_guest', column '{column}': the job spec's "
            f"columns names the data set's {kind} column, which is never a feature; remove it"
        )


def test_excluding_every_column_is_refused(nodes: dict[str, NodeService]) -> None:
    spec = _spec("nothing-left", **{GUEST: {"exclude": list(GUEST_COLUMNS)}})
    with pytest.raises(ConfigError, match="no feature column is left to read; the job must"):
        nodes[GUEST].prepare("coordinator", spec.job_id, spec.to_json())


def test_a_catalogue_naming_a_column_the_file_lacks_is_the_operators_to_fix(
    nodes: dict[str, NodeService],
) -> None:
    _offer(nodes[HOST], "breast_host", ("x1", "x99"))
    spec = _spec("bad-catalogue")
    with pytest.raises(ConfigError) as info:
        nodes[HOST].prepare("coordinator", spec.job_id, spec.to_json())
    assert str(info.value) == (
        f"party '{HOST}', data set 'breast_host': the catalogue's columns names 'x99', which "
        "the file does not have; the party's operator must fix [datasets.breast_host] columns "
        "in its party config (its node log lists the file's columns)"
    )


def test_scoring_refuses_a_model_column_the_catalogue_no_longer_offers(
    nodes: dict[str, NodeService], tmp_path: Path
) -> None:
    _run(nodes, _spec("before"))
    _offer(nodes[HOST], "breast_host", HOST_COLUMNS[1:])  # x0 withdrawn after training
    with pytest.raises(JobFailedError) as info:
        _run(nodes, _spec("before-scores", task="predict"))
    assert info.value.party == HOST
    assert (
        f"party '{HOST}', data set 'breast_host', column 'x0': the model share was trained on "
        "this column, but the catalogue does not offer it to this job" in info.value.reason
    )
    assert not (tmp_path / GUEST / "jobs" / "before-scores" / "scores.csv").exists()


def test_an_align_job_checks_only_the_offered_columns(
    nodes: dict[str, NodeService], tmp_path: Path, shared_data: Path
) -> None:
    # Prepare: a copy of the host table whose column x19 (not offered) holds a bad cell
    lines = (shared_data / "breast_hetero_host.csv").read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",not-a-number"
    (tmp_path / "host.csv").write_text("\n".join(lines) + "\n")
    entry = nodes[HOST].config.datasets["breast_host"]
    nodes[HOST].config.datasets["breast_host"] = replace(entry, path=tmp_path / "host.csv")
    spec = JobSpec.from_dict({**json.loads(_spec("align").to_json()), "task": "align"})
    with pytest.raises(JobFailedError, match="column 'x19', data row 1"):
        _run(nodes, spec)

    # Execute: the catalogue stops offering x19
    _offer(nodes[HOST], "breast_host", HOST_COLUMNS[:19])
    spec = JobSpec.from_dict({**json.loads(_spec("align-offered").to_json()), "task": "align"})
    result = _run(nodes, spec)

    # Assert
    assert result["aligned"] == 569
