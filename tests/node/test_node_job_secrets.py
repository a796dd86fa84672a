"""A job's seed lives in the party's secrets folder, never in the job folder auditors get.

The seed (from which the party's Paillier key and every mask of the job derive) is drawn
once into ``secrets_dir/JOB/drbg.seed`` and read back on resume; a seed an older node left
in the job folder is moved out; a job id whose seed is still kept is not reused; replay
names where it looked. Jobs run for real in tests/audit (replay) and tests/integration
(SIGKILL and resume).
"""

from __future__ import annotations

import logging
import stat
import typing as t
from pathlib import Path

import pytest

from lianmo.compute.backend import SerialBackend
from lianmo.config import PartyConfig
from lianmo.errors import AuditError, ConfigError
from lianmo.node.job_secrets import (
    job_seed,
    move_legacy_seed,
    refuse_reused_id,
    replay_seed,
    seed_path,
)
from lianmo.node.service import NodeService
from tests.node.inprocess_nodes import HOST, train_spec
from tests.secret_files import secret_files

JOB = "j-1"


def _config(tmp_path: Path, **extra: t.Any) -> PartyConfig:
    return PartyConfig.from_dict(
        {
            "name": HOST,
            "listen": "127.0.0.1:0",
            "state_dir": "state",
            "tls": {"cert": "x", "key": "x", "ca": "x"},
            "audit": {"level": "chain"},
            "datasets": {"breast_host": {"path": "host.csv", "id_column": "id"}},
            "policy": {"arbiters": ["arbiter"]},
            **extra,
        },
        base=tmp_path,
    )


def _job_dir(config: PartyConfig, job_id: str = JOB) -> Path:
    path = config.state_dir / "jobs" / job_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_seed_is_drawn_once_into_the_secrets_folder_and_read_back(tmp_path: Path) -> None:
    config = _config(tmp_path)
    job_dir = _job_dir(config)
    draws = iter([b"a" * 32, b"b" * 32])
    assert job_seed(config, JOB, job_dir, lambda: next(draws)) == b"a" * 32
    assert job_seed(config, JOB, job_dir, lambda: next(draws)) == b"a" * 32  # a resume
    path = config.state_dir / "secrets" / JOB / "drbg.seed"
    assert seed_path(config, JOB) == path and path.read_bytes() == b"a" * 32
    assert _mode(path) == 0o600
    assert _mode(path.parent) == _mode(path.parent.parent) == 0o700
    assert secret_files(config.state_dir / "jobs") == []


def test_secrets_dir_puts_the_seeds_anywhere_else(tmp_path: Path) -> None:
    config = _config(tmp_path, secrets_dir=str(tmp_path / "vault"))
    job_seed(config, JOB, _job_dir(config), lambda: b"s" * 32)
    assert (tmp_path / "vault" / JOB / "drbg.seed").read_bytes() == b"s" * 32
    assert secret_files(config.state_dir) == []


def test_a_job_with_checkpoints_but_no_seed_refuses_to_resume_on_a_fresh_one(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    job_dir = _job_dir(config)
    (job_dir / "checkpoints").mkdir()
    (job_dir / "checkpoints" / "keys.json").write_text("{}")
    with pytest.raises(ConfigError) as info:
        job_seed(config, JOB, job_dir, lambda: b"fresh" * 8)
    assert str(info.value) == (
        f"party 'platform': job '{JOB}' has checkpoints but its seed "
        f"{seed_path(config, JOB)} is missing, so it cannot resume; restore that file from "
        "the party's backup, or run the job again under a new job_id"
    )
    assert not seed_path(config, JOB).exists()


def test_a_seed_an_older_node_left_in_the_job_folder_is_moved_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path)
    job_dir = _job_dir(config)
    (job_dir / "drbg.seed").write_bytes(b"old" * 11)
    with caplog.at_level(logging.WARNING, logger="lianmo.node"):
        assert job_seed(config, JOB, job_dir, lambda: b"new" * 11) == b"old" * 11
    assert not (job_dir / "drbg.seed").exists()
    assert seed_path(config, JOB).read_bytes() == b"old" * 11
    assert "moved its seed out of the job folder" in caplog.text
    assert move_legacy_seed(config, JOB, job_dir) is False  # nothing left to move


def test_two_different_seeds_for_one_job_are_refused_not_guessed(tmp_path: Path) -> None:
    config = _config(tmp_path)
    job_dir = _job_dir(config)
    job_seed(config, JOB, job_dir, lambda: b"a" * 32)
    (job_dir / "drbg.seed").write_bytes(b"b" * 32)
    with pytest.raises(ConfigError, match=r"job 'j-1' has two different seeds"):
        job_seed(config, JOB, job_dir, lambda: b"c" * 32)
    assert (job_dir / "drbg.seed").exists() and seed_path(config, JOB).read_bytes() == b"a" * 32


def test_replay_reads_the_secrets_folder_then_an_old_job_folder_and_names_both(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    job_dir = _job_dir(config)
    with pytest.raises(AuditError) as info:
        replay_seed(config, JOB, job_dir)
    assert str(info.value).startswith(
        f"party 'platform' has no seed for job '{JOB}': {seed_path(config, JOB)} does not "
        f"exist (nor {job_dir / 'drbg.seed'}); replay needs the seed"
    )
    (job_dir / "drbg.seed").write_bytes(b"old" * 11)
    seed, note = replay_seed(config, JOB, job_dir)
    assert seed == b"old" * 11 and note is not None and "an older node kept it" in note
    assert (job_dir / "drbg.seed").exists()  # replay never changes the folder it replays
    job_seed(config, JOB, job_dir, lambda: b"x" * 32)  # a node moves it
    assert replay_seed(config, JOB, job_dir) == (b"old" * 11, None)


def test_a_job_id_whose_seed_is_still_kept_is_not_reused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    refuse_reused_id(config, JOB)  # nothing kept: fine
    job_seed(config, JOB, _job_dir(config), lambda: b"a" * 32)
    with pytest.raises(ConfigError, match=r"already ran a job 'j-1' .*choose a new job_id"):
        refuse_reused_id(config, JOB)


# ---- the node ---------------------------------------------------------------------------


def _node(config: PartyConfig) -> NodeService:
    return NodeService(config, lambda *a: None, SerialBackend())  # type: ignore[arg-type,return-value]


def test_a_node_refuses_a_new_job_under_an_id_whose_old_folder_was_removed(
    tmp_path: Path,
) -> None:
    """Same id, folder gone, seed kept: the new job must not run on the old job's seed."""
    config = _config(tmp_path)
    (tmp_path / "host.csv").write_text("id,x\n1,2\n")
    spec = train_spec(JOB)
    node = _node(config)
    node.prepare("coordinator", JOB, spec.to_json())  # the first time: fine
    job_seed(config, JOB, config.state_dir / "jobs" / JOB, lambda: b"a" * 32)
    node.close()
    (config.state_dir / "jobs" / JOB / "spec.json").unlink()  # the operator cleared it
    (config.state_dir / "jobs" / JOB).rmdir()
    node = _node(config)
    with pytest.raises(ConfigError, match=r"already ran a job 'j-1'"):
        node.prepare("coordinator", JOB, spec.to_json())
    node.close()
    assert seed_path(config, JOB).read_bytes() == b"a" * 32  # kept for the old job's replay


def test_a_restarted_node_moves_old_seeds_out_of_every_job_folder(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "host.csv").write_text("id,x\n1,2\n")
    node = _node(config)
    for job_id in ("old-1", "old-2"):
        node.prepare("coordinator", job_id, train_spec(job_id).to_json())
        (config.state_dir / "jobs" / job_id / "drbg.seed").write_bytes(job_id.encode() * 8)
    node.close()
    assert len(secret_files(config.state_dir / "jobs")) == 2  # as an older node left them
    _node(config).close()
    assert secret_files(config.state_dir / "jobs") == []
    for job_id in ("old-1", "old-2"):
        assert seed_path(config, job_id).read_bytes() == job_id.encode() * 8
