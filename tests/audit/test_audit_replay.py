"""``lianmo audit replay`` on real jobs: every party of LR, SecureBoost and scoring (PSI)
jobs replays byte for byte; changed data, a wrong seed or another version is named; the
same job run twice with the same seeds logs the same bytes apart from timestamps."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lianmo.audit.log import read_records
from lianmo.audit.replay import Divergence
from lianmo.config import PartyConfig
from lianmo.data.split import validation_mask
from lianmo.errors import AuditError
from lianmo.node.job_secrets import seed_path
from lianmo.node.replay import replay_job
from tests.audit.jobs import PARTIES, AuditedJobs, run_audited_jobs, train_spec
from tests.node.inprocess_nodes import ARBITER, GUEST, HOST
from tests.secret_files import secret_files


def _logged(jobs: AuditedJobs, party: str, job_id: str) -> list[dict[str, object]]:
    return list(read_records(jobs.job_dir(party, job_id) / "audit.jsonl"))


@pytest.mark.parametrize("job_id", ["lr-a", "lr-p", "sb-a"])
@pytest.mark.parametrize("party", PARTIES)
def test_replay_of_an_untouched_job_passes_for_every_party(
    audited_jobs: AuditedJobs, job_id: str, party: str
) -> None:
    result = replay_job(audited_jobs.configs[party], audited_jobs.job_dir(party, job_id))
    records = _logged(audited_jobs, party, job_id)
    sent = [r for r in records if r["kind"] == "message" and r["direction"] == "sent"]
    assert result.messages == len(sent) > 0
    assert result.records == len([r for r in records if r["kind"] != "message"])
    models = [r["sha256"] for r in records if r["kind"] == "model"]
    assert [result.model_digest] == models if models else result.model_digest is None
    assert result.notes == ()


def _with_changed_cell(config: PartyConfig, tmp_path: Path, *, validation: bool) -> PartyConfig:
    """The party's config pointing at a copy of its data with one cell changed, in a
    training row or a validation row of train_spec's split."""
    (entry,) = config.datasets.values()
    lines = entry.path.read_text().splitlines()
    ids = [line.split(",", 1)[0] for line in lines[1:]]
    spec = train_spec("lr-a")
    in_val = validation_mask(ids, spec.validation.share, spec.seed)
    row = 1 + next(i for i, v in enumerate(in_val) if bool(v) == validation)
    cells = lines[row].split(",")
    cells[3] = f"{float(cells[3]) + 0.5:.6f}"
    lines[row] = ",".join(cells)
    changed = tmp_path / f"{config.name}-changed.csv"
    changed.write_text("\n".join(lines) + "\n")
    return dataclasses.replace(
        config, datasets={entry.name: dataclasses.replace(entry, path=changed)}
    )


def _first_sent(records: list[dict[str, object]], tag: str) -> dict[str, object]:
    return next(
        r
        for r in records
        if r["kind"] == "message" and r["direction"] == "sent" and r["tag"] == tag
    )


@pytest.mark.parametrize("party", [GUEST, HOST])
def test_a_changed_training_cell_diverges_at_the_first_round(
    audited_jobs: AuditedJobs, tmp_path: Path, party: str
) -> None:
    config = _with_changed_cell(audited_jobs.configs[party], tmp_path, validation=False)
    with pytest.raises(Divergence) as info:
        replay_job(config, audited_jobs.job_dir(party, "lr-a"))
    text = str(info.value)
    first = _first_sent(_logged(audited_jobs, party, "lr-a"), "lr.masked_gradient")
    assert info.value.round == first["round"] == 0
    assert f"replay of party '{party}' in job 'lr-a' diverged at round 0" in text
    assert "Likely cause: data changed" in text and "seed" not in text


def test_a_changed_validation_cell_diverges_only_at_the_validation_round(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    config = _with_changed_cell(audited_jobs.configs[HOST], tmp_path, validation=True)
    with pytest.raises(Divergence) as info:
        replay_job(config, audited_jobs.job_dir(HOST, "lr-a"))
    scoring = _first_sent(_logged(audited_jobs, HOST, "lr-a"), "predict.validation")
    assert info.value.round == scoring["round"]
    assert (
        f"diverged at round {scoring['round']}: message 'predict.validation' "
        "(host → guest: u_k of the validation rows)" in str(info.value)
    )
    assert "Likely cause: data changed" in str(info.value)


def test_a_wrong_seed_is_named(audited_jobs: AuditedJobs, tmp_path: Path) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    seed_path(jobs.configs[ARBITER], "lr-a").write_bytes(bytes(32))
    with pytest.raises(Divergence) as info:
        replay_job(jobs.configs[ARBITER], jobs.job_dir(ARBITER, "lr-a"))
    assert "message 'lr.public_key' (arbiter → guest or host: " in str(info.value)
    assert "Likely cause: seed wrong" in str(info.value)


def test_job_folders_hold_no_seed_or_key_and_replay_reads_the_secrets_folder(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    """What auditors get (each party's jobs/JOB/) holds no secret; the seeds sit apart."""
    for party, config in audited_jobs.configs.items():
        assert secret_files(config.state_dir / "jobs") == []
        for job_id in ("lr-a", "lr-p", "sb-a", "lr-b"):
            assert seed_path(config, job_id).stat().st_mode & 0o077 == 0, (party, job_id)
    # Only the job folders handed over, without the party's secrets folder: no replay.
    jobs = audited_jobs.copy(tmp_path / "t")
    path = seed_path(jobs.configs[GUEST], "lr-a")
    path.unlink()
    with pytest.raises(AuditError, match=rf"has no seed for job 'lr-a': {path} does not exist"):
        replay_job(jobs.configs[GUEST], jobs.job_dir(GUEST, "lr-a"))


def test_a_job_folder_from_an_older_node_with_its_seed_inside_still_replays(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    folder = jobs.job_dir(HOST, "lr-a")
    seed_path(jobs.configs[HOST], "lr-a").rename(folder / "drbg.seed")
    result = replay_job(jobs.configs[HOST], folder)
    assert result.notes and "read from the job folder" in result.notes[-1]
    assert (folder / "drbg.seed").exists()


def test_another_lianmo_version_is_noted_or_blamed(
    audited_jobs: AuditedJobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lianmo.node.audited_job.software_version", lambda: "9.9.9")
    result = replay_job(audited_jobs.configs[HOST], audited_jobs.job_dir(HOST, "lr-a"))
    assert result.notes and "code version changed" in result.notes[0] and "9.9.9" in result.notes[0]
    config = _with_changed_cell(audited_jobs.configs[HOST], tmp_path, validation=False)
    with pytest.raises(Divergence, match=r"Likely cause: code version changed.*; data changed"):
        replay_job(config, audited_jobs.job_dir(HOST, "lr-a"))


def test_replay_refuses_a_log_that_does_not_verify(
    audited_jobs: AuditedJobs, tmp_path: Path
) -> None:
    jobs = audited_jobs.copy(tmp_path / "t")
    log = jobs.job_dir(GUEST, "lr-a") / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    del lines[5]
    log.write_text("".join(lines))
    with pytest.raises(Exception, match=r"the log does not verify.*record 5"):
        replay_job(jobs.configs[GUEST], jobs.job_dir(GUEST, "lr-a"))


def test_the_cli_replays_a_party_from_its_config(
    audited_jobs: AuditedJobs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lianmo.cli.main import main

    jobs = audited_jobs.copy(tmp_path / "t")
    data = jobs.configs[HOST].datasets["breast_host"].path
    config = jobs.root / "platform.toml"
    config.write_text(
        'name = "platform"\nlisten = "127.0.0.1:0"\nstate_dir = "platform"\n'
        '[tls]\ncert = "x"\nkey = "x"\nca = "x"\n'
        f'[datasets.breast_host]\npath = "{data}"\nid_column = "id"\n'
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "replay", "--config", str(config), "lr-a"])
    assert exit_info.value.code == 0
    assert "PASS replay of party 'platform' in job 'lr-a'" in capsys.readouterr().out
    seed_path(jobs.configs[HOST], "lr-a").write_bytes(bytes(32))
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "replay", "--config", str(config), "lr-a"])
    assert exit_info.value.code == 9
    assert "Likely cause: seed wrong" in capsys.readouterr().err


# Since log format v3 the time is chained: a rerun differs in it, in the hashes chaining
# it, in the signature and in the peers' heads its envelopes carried; in nothing else.
RUN_DEPENDENT = ("time", "hash", "prev", "sig", "peer_head")


def _without_time(path: Path) -> list[str]:
    return [
        json.dumps({k: v for k, v in r.items() if k not in RUN_DEPENDENT}, sort_keys=True)
        for r in read_records(path)
    ]


def test_the_same_jobs_rerun_with_the_same_seeds_log_the_same_bytes(
    audited_jobs: AuditedJobs, tmp_path: Path, shared_data: Path
) -> None:
    again = run_audited_jobs(tmp_path / "again", shared_data, rotate=False, keys_from=audited_jobs)
    for job_id in ("lr-a", "lr-p", "sb-a"):
        for party in PARTIES:
            first, second = (j.job_dir(party, job_id) for j in (audited_jobs, again))
            a, b = _without_time(first / "audit.jsonl"), _without_time(second / "audit.jsonl")
            assert len(a) == len(b) > 5
            assert a == b, f"{party} {job_id}: logs differ beyond time, chain and signatures"
            assert sorted(p.name for p in (first / "payloads").iterdir()) == sorted(
                p.name for p in (second / "payloads").iterdir()
            )
            # the lines differ only in time and what chains or signs it
            raw_a = (first / "audit.jsonl").read_text().splitlines()
            raw_b = (second / "audit.jsonl").read_text().splitlines()
            for x, y in zip(raw_a, raw_b, strict=True):
                rx, ry = json.loads(x), json.loads(y)
                assert {k for k in rx if rx[k] != ry.get(k)} <= set(RUN_DEPENDENT)
                assert set(rx) == set(ry)
