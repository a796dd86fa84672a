"""What a node tells the coordinator about a failure, and what it keeps in its own log.

The coordinator reads the public text (party, data set name, column, row); the node log,
``status.json`` and ``lianmo data check`` keep the full one (file, id, cell value).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from lianmo.config import DatasetEntry, PartyConfig
from lianmo.coordinator.run import run_job
from lianmo.errors import ConfigError, DataError, JobFailedError, ProtocolError
from lianmo.node.redact import HIDDEN_PATH, public_error, without_paths
from lianmo.node.service import NodeService

from .inprocess_nodes import GUEST, HOST, DirectControl, make_nodes, train_spec


def _config(tmp_path: Path, data: Path) -> PartyConfig:
    return PartyConfig.from_dict(
        {
            "name": "broker",
            "listen": "127.0.0.1:0",
            "state_dir": str(tmp_path / "state"),
            "tls": {"cert": "certs/broker.pem", "key": "certs/broker.key", "ca": "certs/ca.pem"},
            "datasets": {"customers": {"path": str(data), "id_column": "id"}},
        },
        base=tmp_path,
    )


# ---- redaction ----------------------------------------------------------------------------


def test_a_data_error_is_told_by_data_set_name_column_and_row(tmp_path: Path) -> None:
    data = tmp_path / "private" / "kyc_2026.csv"
    exc = DataError(
        f"party 'broker', file '{data}', column 'id', data row 5 (line 6): id '28509' "
        "already appears in data row 4; ids must be unique",
        party="broker",
        column="id",
        row=5,
        problem="the id already appears in data row 4; ids must be unique",
    )
    text = public_error(_config(tmp_path, data), "customers", exc)
    assert text == (
        "party 'broker', data set 'customers', column 'id', data row 5: the id already "
        "appears in data row 4; ids must be unique"
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # a data file named by its path, absolute or as configured
        ("{data}: the guest's table has no labels", "data set 'customers': the guest's"),
        ("file '{data}' changed", "data set 'customers' changed"),
        # the state folder, the TLS folder and any other absolute path
        ("cannot write {state}/jobs/j1/model.json: disk full", f"cannot write {HIDDEN_PATH}: "),
        ("checkpoint /var/lib/lianmo/ck.json is damaged", f"checkpoint {HIDDEN_PATH} is"),
        ("spool C:\\lianmo\\inbox\\7.msg is short", f"spool {HIDDEN_PATH} is short"),
    ],
)
def test_local_paths_are_named_by_data_set_or_hidden(
    tmp_path: Path, message: str, expected: str
) -> None:
    data = tmp_path / "private" / "kyc_2026.csv"
    config = _config(tmp_path, data)
    text = message.format(data=data, state=config.state_dir)
    out = without_paths(config, text)
    assert expected in out
    for hidden in (str(tmp_path), "kyc_2026", "/var/lib", "ck.json", "inbox"):
        assert hidden not in out


def test_a_data_file_configured_by_a_relative_path_is_named_by_its_data_set() -> None:
    config = PartyConfig.from_dict(
        {
            "name": "broker",
            "listen": "127.0.0.1:0",
            "state_dir": "state",
            "tls": {"cert": "certs/broker.pem", "key": "certs/broker.key", "ca": "certs/ca.pem"},
            "datasets": {"customers": {"path": "private/kyc_2026.csv", "id_column": "id"}},
        },
        base=Path("."),
    )
    out = without_paths(
        config, "file 'private/kyc_2026.csv' changed; see state/jobs/j1/x and certs/ca.pem"
    )
    assert out == f"data set 'customers' changed; see {HIDDEN_PATH} and {HIDDEN_PATH}"
    # a folder's bare name is a word like any other
    assert without_paths(config, "the job's state is failed") == "the job's state is failed"


@pytest.mark.parametrize(
    "text",
    [
        "party 'platform' at 127.0.0.1:7000 failed after 3 attempts",
        "checkpoint 'lr/train' round 3 of 0/1 labels",
        "Ray cluster ray://head:10001 is unreachable",
        "job 'x' is 5 / 7 done",
    ],
)
def test_what_is_not_a_local_path_is_left_alone(tmp_path: Path, text: str) -> None:
    assert without_paths(_config(tmp_path, tmp_path / "d.csv"), text) == text


def test_an_internal_error_is_told_by_its_class_only(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "d.csv")
    text = public_error(config, "customers", KeyError("28509"))
    assert text == "internal error (KeyError) at party 'broker'; its node log has the details"
    other = public_error(config, None, ProtocolError("a peer sent round 3 twice"))
    assert other == "a peer sent round 3 twice"


# ---- a node: the coordinator gets the public text, the log the full one ---------------------


@pytest.fixture
def nodes(tmp_path: Path, shared_data: Path) -> dict[str, NodeService]:
    return make_nodes(tmp_path, shared_data)


def test_a_failed_jobs_full_error_reaches_the_node_log_and_status_file_only(
    nodes: dict[str, NodeService], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "secret-folder" / "host_rows.csv"
    bad.parent.mkdir()
    bad.write_text("id,x1\nA-1001,0.5\nA-1002,n/a-7731\n")
    platform = nodes[HOST]
    platform.config.datasets["breast_host"] = DatasetEntry("breast_host", bad, "id")
    controls = {n: DirectControl(node) for n, node in nodes.items()}
    with caplog.at_level(logging.INFO, logger="lianmo.node"):
        with pytest.raises(JobFailedError) as info:
            run_job(train_spec("bad-cell"), controls, poll_interval=0.05)
        nodes[GUEST].wait("bad-cell", timeout=30)
    assert info.value.party == HOST
    public = (
        f"party '{HOST}', data set 'breast_host', column 'x1', data row 2: the cell holds "
        "text but a number was expected"
    )
    assert public in info.value.reason
    for secret in ("secret-folder", "host_rows", "A-1002", "n/a-7731"):
        assert secret not in info.value.reason
    full = f"party '{HOST}', file '{bad}', column 'x1', data row 2 (line 3): the cell is 'n/a-7731'"
    failed = [r for r in caplog.records if "failed (DataError)" in r.getMessage()]
    assert len(failed) == 1 and full in failed[0].getMessage()
    assert failed[0].levelno == logging.ERROR and getattr(failed[0], "job_id", "") == "bad-cell"
    status = json.loads((tmp_path / HOST / "jobs" / "bad-cell" / "status.json").read_text())
    assert status["error_local"].startswith(full)
    assert status["error"].startswith(public) and "n/a-7731" not in status["error"]
    # the lifecycle around it, with the job id
    messages = [r.getMessage() for r in caplog.records if getattr(r, "job_id", "") == "bad-cell"]
    assert "job bad-cell prepared for coordinator: role host, data set breast_host" in messages
    assert "job bad-cell started by coordinator" in messages
    assert any(m.startswith("job bad-cell cancelled by coordinator") for m in messages)


def test_a_restarted_node_still_tells_the_public_text_and_keeps_the_full_one(
    nodes: dict[str, NodeService], tmp_path: Path
) -> None:
    bad = tmp_path / "rows.csv"
    bad.write_text("id,x1\nA-1001,0.5\nA-1001,0.7\n")
    platform = nodes[HOST]
    platform.config.datasets["breast_host"] = DatasetEntry("breast_host", bad, "id")
    controls = {n: DirectControl(node) for n, node in nodes.items()}
    with pytest.raises(JobFailedError):
        run_job(train_spec("dup-id"), controls, poll_interval=0.05)
    before = platform.status("coordinator", "dup-id")
    again = NodeService(platform.config, lambda *a: None, platform.compute, signer=platform.signer)
    after = again.status("coordinator", "dup-id")
    assert after.error == before.error and "A-1001" not in after.error
    assert "column 'id', data row 2: the id already appears in data row 1" in after.error


def test_prepare_does_not_tell_the_coordinator_where_a_missing_file_was(
    nodes: dict[str, NodeService], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "hidden-mount" / "gone.csv"
    platform = nodes[HOST]
    platform.config.datasets["breast_host"] = DatasetEntry("breast_host", missing, "id")
    spec = train_spec("no-file")
    with caplog.at_level(logging.WARNING, logger="lianmo.node"):
        with pytest.raises(ConfigError, match="data set 'breast_host' points to a file") as info:
            platform.prepare("coordinator", "no-file", spec.to_json())
    assert "hidden-mount" not in str(info.value) and "gone.csv" not in str(info.value)
    assert any(str(missing) in r.getMessage() for r in caplog.records)
