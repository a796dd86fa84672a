"""Purpose, minimum necessary and consent through party nodes (in process, 2048-bit keys).

The broker and the platform hold the breast tables with consent registers of grants,
expiries, revocations, future grants and grants for another purpose. A SecureBoost job
for ``credit_scoring`` must align only the ids whose consent is valid at both parties,
never read a column the purpose does not allow, and commit to whose data it used; a
scoring job after a revocation leaves the revoked id out; the data-subject command
answers from each party's own records, proven against its signed log.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from lianmo.audit.signing import SigningKey
from lianmo.audit.verify import read_log, verify
from lianmo.cli.audit import audit
from lianmo.config import JobSpec, PartyConfig
from lianmo.errors import AuditError, JobFailedError, PolicyError
from lianmo.node.replay import replay_job
from lianmo.node.retention import prune_jobs
from lianmo.node.subjects import ABSENT, answer, answer_with_salt, job_folders, job_salt
from lianmo.transport import serde

from .inprocess_nodes import (
    GUEST,
    GUEST_FILE,
    HOST,
    HOST_FILE,
    WireRecorder,
    make_nodes,
    run_in_process,
)

PURPOSE = "credit_scoring"
NOW = datetime.now(UTC)
PAST, LONG_AGO, SOON = NOW - timedelta(days=30), NOW - timedelta(days=400), NOW + timedelta(days=30)
ALLOWED_HOST = [f"x{i}" for i in range(12)]  # of x0..x19; x12.. and 'forbidden' not allowed


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _grant(customer: str, *, purpose: str = PURPOSE, granted=PAST, expires=None, revoked=None):
    text = lambda t: "" if t is None else t.isoformat()  # noqa: E731
    return {
        "id": customer,
        "purpose": purpose,
        "granted_at": text(granted),
        "expires_at": text(expires),
        "revoked_at": text(revoked),
    }


def _register(ids: list[str], refused: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    """Valid grants for every id except ``refused`` (id -> its invalid record)."""
    return [refused.get(i) or _grant(i) for i in ids]


def _setup(tmp_path: Path, shared_data: Path) -> tuple[dict[str, PartyConfig], list[str]]:
    guest_rows = _rows(shared_data / GUEST_FILE)
    host_rows = _rows(shared_data / HOST_FILE)
    for row in host_rows:  # text: reading this column would fail the job at once
        row["forbidden"] = "never-read"
    _write(tmp_path / "guest.csv", guest_rows)
    _write(tmp_path / "host.csv", host_rows)
    ids = [r["id"] for r in guest_rows]
    guest_refused = {
        ids[0]: _grant(ids[0], expires=PAST - timedelta(days=1), granted=LONG_AGO),  # expired
        ids[1]: _grant(ids[1], revoked=PAST + timedelta(days=1)),  # revoked
        ids[2]: _grant(ids[2], granted=SOON),  # not yet granted
        ids[3]: _grant(ids[3], purpose="marketing"),  # another purpose only
    }
    host_refused = {
        ids[4]: _grant(ids[4], revoked=NOW - timedelta(days=1)),
        ids[5]: _grant(ids[5], expires=NOW - timedelta(hours=1)),
    }
    guest_register = _register(ids, guest_refused)
    # a consent given again after a revocation counts
    guest_register.append(_grant(ids[6], revoked=PAST + timedelta(days=1)))
    guest_register.append(_grant(ids[6], granted=PAST + timedelta(days=2), expires=SOON))
    _write(tmp_path / "guest_consent.csv", guest_register)
    _write(tmp_path / "host_consent.csv", _register(ids, host_refused))
    configs = {
        GUEST: _config(tmp_path, GUEST, "guest.csv", "guest_consent.csv", "y", "*"),
        HOST: _config(tmp_path, HOST, "host.csv", "host_consent.csv", None, ALLOWED_HOST),
    }
    return configs, ids


def _config(
    tmp_path: Path, name: str, data: str, consent: str, label: str | None, allowed: object
) -> PartyConfig:
    entry = {"path": data, "id_column": "id", "consent": consent}
    entry["purposes"] = {PURPOSE: allowed, "research": ["x0"]}
    if label:
        entry["label_column"] = label
    return PartyConfig.from_dict(
        {
            "name": name,
            "listen": "127.0.0.1:0",
            "state_dir": name,
            "tls": {"cert": "x", "key": "x", "ca": "x"},
            "datasets": {"breast": entry},
        },
        base=tmp_path,
    )


def _spec(job_id: str, *, purpose: str | None = PURPOSE, **extra: object) -> JobSpec:
    raw: dict[str, object] = {
        "job_id": job_id,
        "parties": [
            {"name": GUEST, "role": "guest", "address": "-", "dataset": "breast"},
            {"name": HOST, "role": "host", "address": "-", "dataset": "breast"},
        ],
        "model": {"type": "secureboost", "trees": 2, "depth": 2},
        **extra,
    }
    if purpose is not None:
        raw["purpose"] = purpose
    return JobSpec.from_dict(raw)


def _ids(path: Path) -> set[str]:
    return {line.split(",")[0] for line in path.read_text().splitlines()[1:]}


def test_consent_purpose_and_data_subject_answers(tmp_path: Path, shared_data: Path) -> None:
    configs, ids = _setup(tmp_path, shared_data)
    wire = WireRecorder()
    nodes = make_nodes(tmp_path, shared_data, configs=configs, observers=[wire])
    report = run_in_process(nodes, _spec("consent-train"))
    # on the wire: an id without consent never crosses, not even blinded
    sizes = {
        e.tag: int(serde.decode_payload(e.payload_type, e.payload).value)
        for e in wire.sent
        if e.tag in ("psi.guest_size", "psi.host_size")
    }
    assert sizes == {"psi.guest_size": len(ids) - 4, "psi.host_size": len(ids) - 2}
    blinded = {"psi.guest_set": 0, "psi.host_set": 0}
    for e in wire.sent:
        if e.tag in blinded:
            blinded[e.tag] += serde.decode_payload(e.payload_type, e.payload).count
    assert blinded == {"psi.guest_set": len(ids) - 4, "psi.host_set": len(ids) - 2}
    guest_out = tmp_path / GUEST / "jobs" / "consent-train"
    host_out = tmp_path / HOST / "jobs" / "consent-train"
    # only ids with consent valid at both parties reached alignment and any output
    refused = set(ids[:6])
    expected = set(ids) - refused
    val_ids = _ids(guest_out / "validation_scores.csv")
    assert val_ids and val_ids <= expected
    records = {r["kind"]: r for r in read_log(guest_out / "audit.jsonl")[0].records}
    assert records["data_use"]["used"] == len(expected)
    assert records["data_use"]["no_consent"] == 4  # the guest's own refusals only
    assert records["job_start"]["purpose"] == PURPOSE
    assert "consent_commitment" in records["job_start"]
    host_use = next(
        r for r in read_log(host_out / "audit.jsonl")[0].records if r["kind"] == "data_use"
    )
    assert (host_use["used"], host_use["no_consent"], host_use["not_matched"]) == (
        len(expected),
        2,
        4,
    )
    # minimum necessary: the host's share names only columns the purpose allows
    host_share = json.loads((host_out / "model.json").read_text())
    assert set(host_share["feature_names"]) == set(ALLOWED_HOST)
    assert "forbidden" not in (host_out / "model.json").read_text()

    # the coordinator learns the intersection size, nothing about consent
    results = json.dumps(report.results)
    assert "no_consent" not in results and "not_matched" not in results
    assert report.guest_result["aligned"] == len(expected)
    aligned = run_in_process(nodes, _spec("consent-align", task="align", model={}))
    assert aligned.results[HOST]["rows"] == len(ids) - 2  # what it brought, not its table
    assert _ids(tmp_path / GUEST / "jobs" / "consent-align" / "aligned_ids.csv") == expected

    # the platform's customer ids[10] revokes its consent; scoring leaves it out
    register = _rows(tmp_path / "host_consent.csv")
    for row in register:
        if row["id"] == ids[10]:
            row["revoked_at"] = (NOW - timedelta(minutes=1)).isoformat()
    _write(tmp_path / "host_consent.csv", register)
    run_in_process(nodes, _spec("consent-score", task="predict", model_job="consent-train"))
    scored = _ids(tmp_path / GUEST / "jobs" / "consent-score" / "scores.csv")
    assert scored == expected - {ids[10]}

    verdicts = verify([tmp_path / GUEST / "jobs", tmp_path / HOST / "jobs"])
    assert len(verdicts) == 3 and all(v.ok for v in verdicts), [v.problems for v in verdicts]

    def status(party: str, customer: str, job: str) -> str:
        folder = configs[party].state_dir / "jobs" / job
        found = answer(configs[party], customer, folder)
        assert found.proven, found.evidence
        return found.status

    assert status(HOST, ids[10], "consent-train") == "used"
    assert status(HOST, ids[10], "consent-score") == "no_consent"
    assert status(GUEST, ids[10], "consent-score") == "not_matched"
    assert status(GUEST, ids[1], "consent-train") == "no_consent"  # revoked at the guest
    assert status(HOST, ids[1], "consent-train") == "not_matched"
    assert status(GUEST, ids[20], "consent-train") == "used"
    assert status(GUEST, f" {ids[20]}\t", "consent-train") == "used"  # as the table reads ids
    assert status(GUEST, "no-such-customer", "consent-train") == ABSENT
    assert len(job_folders(configs[GUEST])) == 3
    # a regulator checks an answer with the job's disclosed salt (committed in the log);
    # a party cannot pass off another salt to make a used customer look absent
    salt = job_salt(configs[GUEST], guest_out)
    assert answer_with_salt(guest_out, ids[20], salt).status == "used"
    assert answer_with_salt(guest_out, ids[1], salt).status == "no_consent"
    with pytest.raises(AuditError, match="not the one data_use record"):
        answer_with_salt(guest_out, ids[20], bytes(32))

    # the same answers through the CLI, from the party's config file
    toml = tmp_path / "broker.toml"
    toml.write_text(
        'name = "broker"\nlisten = "127.0.0.1:0"\nstate_dir = "broker"\n'
        '[tls]\ncert = "x"\nkey = "x"\nca = "x"\n'
    )
    out = CliRunner().invoke(audit, ["subject", "--config", str(toml), "--id", ids[1], "--json"])
    assert out.exit_code == 0, out.output
    by_job = {j["job_id"]: j for j in json.loads(out.output)["jobs"]}
    assert by_job["consent-train"]["status"] == "no_consent" and by_job["consent-train"]["proven"]
    assert by_job["consent-score"]["purpose"] == PURPOSE
    disclosed = CliRunner().invoke(
        audit, ["subject", "--config", str(toml), "--id", ids[1], "--disclose-salt", "--json"]
    )
    salts = {j["job_id"]: j["salt"] for j in json.loads(disclosed.output)["jobs"]}
    checked = CliRunner().invoke(
        audit,
        ["subject-check", "--id", ids[1], "--salt", salts["consent-train"], str(guest_out)],
    )
    assert checked.exit_code == 0 and "consent-train: no_consent" in checked.output
    forged = CliRunner().invoke(
        audit, ["subject-check", "--id", ids[1], "--salt", "00" * 32, str(guest_out)]
    )
    assert forged.exit_code != 0 and isinstance(forged.exception, AuditError)
    verified = CliRunner().invoke(audit, ["verify", str(tmp_path / HOST / "jobs")])
    assert (
        f"purpose '{PURPOSE}'" in verified.output and "2 without valid consent" in verified.output
    )

    # replay reads consent as of the logged start; a register changed since is named
    assert replay_job(configs[GUEST], guest_out).messages > 0
    with pytest.raises(AuditError, match="consent register changed"):
        replay_job(configs[HOST], host_out)

    # retention: a pruned job still answers, proven (prune keeps the log and subjects file)
    signer = SigningKey.load(configs[GUEST].signing_key_path, party=GUEST)
    pruned = prune_jobs(configs[GUEST], older_than=0, signer=signer, job_ids=["consent-train"])
    assert pruned[0].pruned, pruned[0]
    assert not (guest_out / "checkpoints").exists()
    assert status(GUEST, ids[20], "consent-train") == "used"

    # an altered subjects file is caught: the answer is no longer proven
    subjects = guest_out / "subjects.tsv"
    subjects.write_bytes(subjects.read_bytes().replace(b"\tno_consent", b"\tused", 1))
    altered = answer(configs[GUEST], ids[1], guest_out)
    assert not altered.proven and altered.status == "unknown" and "altered" in altered.evidence


@pytest.mark.parametrize(
    ("purpose", "said"),
    [("marketing", "may not be used for purpose 'marketing'"), (None, "states none")],
)
def test_a_purpose_the_data_set_does_not_serve_is_refused(
    tmp_path: Path, shared_data: Path, purpose: str | None, said: str
) -> None:
    configs, _ = _setup(tmp_path, shared_data)
    nodes = make_nodes(tmp_path, shared_data, configs=configs)
    with pytest.raises(JobFailedError) as info:
        run_in_process(nodes, _spec("consent-refused", purpose=purpose))
    text = str(info.value)
    assert f"party '{GUEST}'" in text or f"party '{HOST}'" in text
    assert said in text
    assert not any(f"'{c}'" in text for c in ALLOWED_HOST + ["forbidden"])  # no columns named
    assert not (tmp_path / HOST / "jobs" / "consent-refused" / "audit.jsonl").exists()


def test_binning_and_the_scorecard_never_see_a_column_outside_the_purpose(
    tmp_path: Path, shared_data: Path
) -> None:
    """A two-party scorecard bins every column it may use: never the forbidden ones."""
    configs, _ = _setup(tmp_path, shared_data)
    nodes = make_nodes(tmp_path, shared_data, configs=configs)
    spec = _spec("consent-scorecard", model={"type": "scorecard", "epochs": 1, "max_bins": 4})
    run_in_process(nodes, spec)
    share = (tmp_path / HOST / "jobs" / "consent-scorecard" / "model.json").read_text()
    named = set(json.loads(share)["feature_names"])
    assert named and named <= set(ALLOWED_HOST)
    assert not any(f'"{c}"' in share for c in ("forbidden", "x12", "x19"))


def test_too_few_consents_for_the_purpose_stop_the_party_with_its_own_error(
    tmp_path: Path, shared_data: Path
) -> None:
    """A register with no grant for the job's purpose: the party itself says so (found in a
    user run: the peer's 'brings 0 ids' told the operator nothing about consent)."""
    configs, _ = _setup(tmp_path, shared_data)
    nodes = make_nodes(tmp_path, shared_data, configs=configs)
    with pytest.raises(JobFailedError) as info:
        run_in_process(nodes, _spec("consent-none", purpose="research"))
    text = str(info.value)
    assert "fewer ids with consent valid for purpose 'research'" in text
    assert "minimum intersection of 100" in text and "consent register" in text


def test_a_column_outside_the_purpose_is_refused_at_prepare(
    tmp_path: Path, shared_data: Path
) -> None:
    configs, _ = _setup(tmp_path, shared_data)
    nodes = make_nodes(tmp_path, shared_data, configs=configs)
    spec = JobSpec.from_dict(
        {
            **json.loads(_spec("consent-columns").to_json()),
            "parties": [
                {"name": GUEST, "role": "guest", "address": "-", "dataset": "breast"},
                {
                    "name": HOST,
                    "role": "host",
                    "address": "-",
                    "dataset": "breast",
                    "columns": ["x0", "x15"],
                },
            ],
        }
    )
    with pytest.raises(JobFailedError) as info:
        run_in_process(nodes, spec)
    assert f"party '{HOST}'" in str(info.value)


def test_a_job_resumed_before_alignment_cannot_use_consent_withdrawn_since_it_started(
    tmp_path: Path, shared_data: Path
) -> None:
    """Attack: a coordinator starts a job, has it stop before alignment, and resumes it
    long after; consent would be read as of the old start and a customer who withdrew
    since would be aligned. The node refuses: nothing was aligned, so submit a new job."""
    configs, ids = _setup(tmp_path, shared_data)
    nodes = make_nodes(tmp_path, shared_data, configs={GUEST: configs[GUEST]})
    node = nodes[GUEST]
    spec = _spec("consent-stale")
    node.prepare("coordinator", spec.job_id, spec.to_json())
    node.start("coordinator", spec.job_id)  # waits for the host, which never comes
    node.cancel("coordinator", spec.job_id)
    node.wait(spec.job_id, timeout=60)
    job_dir = configs[GUEST].state_dir / "jobs" / spec.job_id
    assert not (job_dir / "checkpoints" / "align.json").exists()
    # the job started before ids[1] withdrew at the guest (PAST + 1 day)
    (job_dir / "started_at").write_text((PAST + timedelta(hours=12)).isoformat())
    with pytest.raises(PolicyError, match="submit it again as a new job") as info:
        node.resume("coordinator", spec.job_id)
    assert f"party '{GUEST}'" in str(info.value) and ids[1] not in str(info.value)
    assert node.status("coordinator", spec.job_id).state == "cancelled"


def test_a_model_trained_for_one_purpose_does_not_score_for_another(
    tmp_path: Path, shared_data: Path
) -> None:
    """Attack: train for 'research' (consented to by the customers), then score with that
    model for 'credit_scoring'; both purposes allow the columns, but the model was made
    from data given for research only."""
    configs, _ = _setup(tmp_path, shared_data)
    for name in ("guest_consent.csv", "host_consent.csv"):  # research consented as well
        register = _rows(tmp_path / name)
        _write(tmp_path / name, register + [{**r, "purpose": "research"} for r in register])
    nodes = make_nodes(tmp_path, shared_data, configs=configs)
    run_in_process(nodes, _spec("research-train", purpose="research"))
    with pytest.raises(JobFailedError) as info:
        run_in_process(nodes, _spec("research-score", task="predict", model_job="research-train"))
    assert "trained for purpose 'research'" in str(info.value)
    assert not (tmp_path / GUEST / "jobs" / "research-score" / "scores.csv").exists()
