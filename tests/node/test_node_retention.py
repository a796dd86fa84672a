"""Retention at the node: prepared and running jobs are never pruned, a cancelled job is once
its thread has ended, a pruned job does not resume, and ``[retention] prune_after_days``
prunes at node start."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lianmo.audit.pruned import read_statement
from lianmo.audit.signing import SigningKey
from lianmo.compute.backend import SerialBackend
from lianmo.config import PartyConfig
from lianmo.errors import ConfigError
from lianmo.node.retention import DAY, finished_jobs, parse_age, prune_jobs
from lianmo.node.service import NodeService
from tests.node.inprocess_nodes import ARBITER, GUEST, HOST, make_nodes, train_spec


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _stopped_job(tmp_path: Path, shared_data: Path) -> tuple[dict[str, NodeService], Path]:
    """Job 'r-1' prepared everywhere, started at guest and host (who then wait for the
    arbiter's key), with the guest's inbox holding the host's first message."""
    nodes = make_nodes(tmp_path, shared_data)
    spec = train_spec("r-1")
    for node in nodes.values():
        node.prepare("coordinator", spec.job_id, spec.to_json())
    for name in (GUEST, HOST):
        nodes[name].start("coordinator", spec.job_id)
    folder = nodes[GUEST].config.state_dir / "jobs" / "r-1"
    _wait_for("the host's key at the guest", lambda: any((folder / "inbox").rglob("*.msg")))
    return nodes, folder


def _signer(config: PartyConfig) -> SigningKey:
    return SigningKey.load(config.signing_key_path, party=config.name)


def _cancel_all(nodes: dict[str, NodeService], job_id: str) -> None:
    for node in nodes.values():
        node.cancel("coordinator", job_id)
    for node in nodes.values():
        node.wait(job_id, timeout=60)


def test_running_and_prepared_jobs_are_untouched_and_a_pruned_job_does_not_resume(
    tmp_path: Path, shared_data: Path
) -> None:
    nodes, folder = _stopped_job(tmp_path, shared_data)
    guest, arbiter = nodes[GUEST].config, nodes[ARBITER].config
    arbiter_folder = arbiter.state_dir / "jobs" / "r-1"
    before = _files(arbiter_folder)
    (running,) = prune_jobs(guest, older_than=0, signer=_signer(guest))
    (prepared,) = prune_jobs(arbiter, older_than=0, signer=_signer(arbiter))
    for result in (running, prepared):
        assert not result.pruned and "not finished" in result.reason
    assert _files(arbiter_folder) == before
    assert not (folder / "pruned.json").exists() and any((folder / "inbox").rglob("*.msg"))
    assert finished_jobs(nodes[GUEST]._all_jobs()) == []

    _cancel_all(nodes, "r-1")
    assert finished_jobs(nodes[GUEST]._all_jobs()) == ["r-1"]
    (done,) = prune_jobs(guest, older_than=0, signer=_signer(guest))
    assert done.pruned and done.state == "cancelled"
    assert {r.what: r.files for r in done.removals}["inbox"] >= 1
    assert not (folder / "inbox").exists()
    assert {"audit.jsonl", "spec.json", "status.json", "pruned.json"} <= set(_files(folder))
    with pytest.raises(ConfigError, match="pruned job 'r-1' on .* so it cannot resume"):
        nodes[GUEST].resume("coordinator", "r-1")
    assert nodes[GUEST].status("coordinator", "r-1").state == "cancelled"
    # the host's cancelled job was not pruned, so it may still resume
    assert nodes[HOST].resume("coordinator", "r-1").state == "running"
    nodes[HOST].cancel("coordinator", "r-1")
    nodes[HOST].wait("r-1", timeout=60)


def test_the_retention_key_prunes_finished_jobs_at_node_start(
    tmp_path: Path, shared_data: Path
) -> None:
    nodes, folder = _stopped_job(tmp_path, shared_data)
    _cancel_all(nodes, "r-1")
    config = nodes[GUEST].config

    def restart(days: float) -> NodeService:
        node = NodeService(
            dataclasses.replace(config, prune_after_days=days),
            lambda *args: pytest.fail("no job runs"),
            SerialBackend(),
        )
        assert node.retention is not None
        assert node.retention.first_pass.wait(30)
        node.close()
        return node

    restart(30)
    assert not (folder / "pruned.json").exists() and (folder / "inbox").exists()
    restart(0)
    statement = read_statement(folder)
    assert statement is not None and statement.party == GUEST and statement.removed
    assert not (folder / "inbox").exists() and (folder / "audit.jsonl").exists()
    off = NodeService(config, lambda *args: pytest.fail("no job runs"), SerialBackend())
    assert off.retention is None
    off.close()


def test_the_retention_key_is_read_and_checked(tmp_path: Path) -> None:
    raw = {
        "name": "p",
        "listen": "127.0.0.1:0",
        "state_dir": "s",
        "tls": {"cert": "x", "key": "x", "ca": "x"},
    }
    assert PartyConfig.from_dict(raw, base=tmp_path).prune_after_days is None
    config = PartyConfig.from_dict({**raw, "retention": {"prune_after_days": 30}}, base=tmp_path)
    assert config.prune_after_days == 30
    with pytest.raises(ConfigError, match="prune_after_days"):
        PartyConfig.from_dict({**raw, "retention": {"prune_after_days": -1}}, base=tmp_path)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * DAY), ("12h", 43200.0), ("90m", 5400.0), ("45s", 45.0), ("2", 2 * DAY)],
)
def test_ages_read_with_their_units(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "-1d", "soon", "infd"])
def test_a_bad_age_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="is not an age"):
        parse_age(text)
