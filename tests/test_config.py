"""Party config and job spec: what is accepted, and the errors for what is not."""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing as t
from pathlib import Path

import pytest

from lianmo.config import (
    AlignmentSpec,
    BoostSpec,
    DatasetEntry,
    JobSpec,
    LrSpec,
    NodePolicy,
    PartyConfig,
    PartySpec,
    ScorecardSpec,
    ValidationSpec,
)
from lianmo.config._rules import REQUIRED, Where
from lianmo.errors import ConfigError


def _spec(**changes: t.Any) -> dict[str, t.Any]:
    spec: dict[str, t.Any] = {
        "job_id": "j1",
        "parties": [
            {"name": "broker", "role": "guest", "address": "a:1", "dataset": "d1"},
            {"name": "platform", "role": "host", "address": "b:1", "dataset": "d2"},
            {"name": "arbiter", "role": "arbiter", "address": "c:1"},
        ],
    }
    spec.update(changes)
    return spec


def test_defaults_and_canonical_json_round_trip() -> None:
    spec = JobSpec.from_dict(_spec())
    assert (spec.guest, spec.hosts, spec.arbiter) == ("broker", ("platform",), "arbiter")
    assert spec.model.key_bits == 2048 and spec.validation.share == 0.2
    assert JobSpec.from_json(spec.to_json()) == spec
    assert len(spec.digest()) == 64


def test_lr_optimizer_and_clip_keep_the_digest_at_their_defaults_only() -> None:
    """Optional keys: a spec that leaves them at their defaults hashes as it did before."""
    base = JobSpec.from_dict(_spec())
    same = JobSpec.from_dict(_spec(model={"optimizer": "sgd", "clip": 0.02}))
    adam = JobSpec.from_dict(_spec(model={"optimizer": "adam", "clip": 0}))
    assert same.digest() == base.digest()
    assert isinstance(adam.model, LrSpec)
    assert (adam.model.optimizer, adam.model.clip) == ("adam", 0)
    assert adam.digest() != base.digest()
    assert JobSpec.from_json(adam.to_json()) == adam
    card = JobSpec.from_dict(_spec(model={"type": "scorecard", "optimizer": "momentum"}))
    assert isinstance(card.model, ScorecardSpec) and card.model.optimizer == "momentum"


def test_secureboost_spec_round_trips_and_needs_no_arbiter() -> None:
    raw = _spec(
        model={"type": "secureboost", "trees": 5, "class_weights": [1, 3.5]},
        validation={"share": 0.2, "stratify": True},
    )
    raw["parties"] = [p for p in raw["parties"] if p["role"] != "arbiter"]
    spec = JobSpec.from_dict(raw)
    assert isinstance(spec.model, BoostSpec) and spec.arbiter is None
    assert spec.model.class_weights == (1.0, 3.5) and spec.model.trees == 5
    assert JobSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"learning_rte": 0.1}, r"unknown field\(s\) \['learning_rte'\]"),
        ({"model": {"epochs": 0}}, "model.epochs is 0 but must be an integer >= 1"),
        ({"model": {"key_bits": 1024}}, "smaller Paillier keys are refused"),
        ({"model": {"type": "xgboost"}}, r"\['hetero_lr', 'secureboost', 'scorecard'\]"),
        ({"model": {"type": "secureboost", "epochs": 3}}, r"unknown field\(s\) \['epochs'\]"),
        ({"model": {"type": "secureboost", "objective": "poisson"}}, "objective is 'poisson'"),
        ({"model": {"type": "secureboost", "depth": 0}}, "depth is 0 but must be an integer >= 1"),
        (
            {"model": {"type": "secureboost", "subsample": 0}},
            "subsample is 0 but must be a number > 0",
        ),
        ({"model": {"type": "secureboost", "class_weights": [1]}}, "needs 2 weights"),
        ({"model": {"type": "secureboost", "class_weights": "auto"}}, "'balanced' or a list"),
        ({"model": {"type": "secureboost", "key_bits": 1024}}, "key_bits is 1024 but must be"),
        ({"validation": {"stratify": "yes"}}, "stratify is 'yes' but must be true or false"),
        ({"validation": {"share": 0}}, "validation.share is 0 but must be above 0"),
        ({"validation": {"share": 0.95}}, "must be a number >= 0 and <= 0.9"),
        ({"job_id": "../etc"}, "job_id is '../etc' but must be a name"),
        ({"task": "predict"}, "model_job is missing but a predict job needs it"),
        ({"seed": True}, "seed is True but must be an integer"),
    ],
)
def test_bad_job_specs_are_refused_with_the_field_named(
    changes: dict[str, t.Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        JobSpec.from_dict(_spec(**changes))


def _boost(**changes: t.Any) -> dict[str, t.Any]:
    return {"model": {"type": "secureboost", **changes}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"model": {"batch_size": 0}},
            "job.yaml: model.batch_size is 0 but must be an integer >= 1; choose a value in "
            "that range (or remove it for the default, 1024)",
        ),
        (
            {"model": {"batch_size": "64"}},
            "job.yaml: model.batch_size is '64' but must be an integer >= 1; write a whole "
            "number, unquoted (or remove it for the default, 1024)",
        ),
        (
            {"model": {"optimizer": "adm"}},
            "job.yaml: model.optimizer is 'adm' but must be one of ['sgd', 'momentum', "
            "'adam']; did you mean 'adam'? (or remove it for the default, 'sgd')",
        ),
        (
            {"model": {"clip": 0.2}},
            "job.yaml: model.clip is 0.2 but must be a number >= 0 and <= 0.1; clip at most "
            "10% of the rows in each tail; 0 turns clipping off (or remove it for the "
            "default, 0.02)",
        ),
        (
            {"model": {"tol": math.nan}},
            "job.yaml: model.tol is nan but must be a finite number >= 0; choose a value in "
            "that range (or remove it for the default, 0.0001)",
        ),
        (
            {"model": {"learning_rte": 0.1}},
            "job.yaml: model: unknown field(s) ['learning_rte'] (did you mean "
            "'learning_rate'?); allowed fields are ['batch_size', 'clip', 'epochs', 'key_bits', "
            "'l2', 'label_protection', 'learning_rate', 'lr_decay', 'objective', 'optimizer', "
            "'tol', 'type']",
        ),
        (
            {"model": {"type": "secureboot"}},
            "job.yaml: model.type is 'secureboot' but must be one of ['hetero_lr', "
            "'secureboost', 'scorecard']; did you mean 'secureboost'? (or remove it for the "
            "default, "
            "'hetero_lr')",
        ),
        (
            _boost(depth=17),
            "job.yaml: model.depth is 17 but must be an integer >= 1 and <= 16; choose a "
            "value in that range (or remove it for the default, 3)",
        ),
        (
            _boost(class_weights=[1, 0]),
            "job.yaml: model.class_weights[1] is 0 but must be a number > 0; choose a value "
            "in that range",
        ),
        (
            _boost(objective="regression", class_weights="balanced"),
            "job.yaml: model.class_weights is 'balanced' but class weights apply to "
            "classification objectives only, and model.objective is 'regression'; remove "
            "class_weights",
        ),
        (
            _boost(early_stopping_rounds=0),
            "job.yaml: model.early_stopping_rounds is 0 but must be an integer >= 1; choose a "
            "value in that range (or remove it to leave it unset)",
        ),
        (
            {"model": 5},
            "job.yaml: model is 5 but must be a mapping with a type (one of ['hetero_lr', "
            "'secureboost', 'scorecard']) and that model's keys; write it as a mapping (or remove "
            "it for "
            "the defaults)",
        ),
        (
            {"validation": {"stratify": "yes"}},
            "job.yaml: validation.stratify is 'yes' but must be true or false; write true or "
            "false, unquoted (or remove it for the default, false)",
        ),
        (
            {"task": "trian"},
            "job.yaml: task is 'trian' but must be one of ['train', 'predict', 'align']; did "
            "you mean 'train'? (or remove it for the default, 'train')",
        ),
        (
            {"seed": 2**63},
            "job.yaml: seed is 9223372036854775808 but must be an integer >= 0 and <= "
            "9223372036854775807; choose a value in that range (or remove it for the default, "
            "42)",
        ),
        (
            {"parties": [{"name": "p0", "role": "guset", "address": "h:1", "dataset": "d"}]},
            "job.yaml: parties[0].role is 'guset' but must be one of ['guest', 'host', "
            "'arbiter']; did you mean 'guest'?",
        ),
        (
            {"parties": [{"name": "p0", "role": "guest", "address": 7000, "dataset": "d"}]},
            "job.yaml: parties[0].address is 7000 but must be a string 'host:port'; write it "
            "as a quoted string",
        ),
        (
            {"parties": [{"role": "guest", "address": "h:1", "dataset": "d"}]},
            "job.yaml: parties[0]: missing required field(s) ['name']; add name (a name: "
            "letters, digits, '_', '.', '-', at most 63 characters, starting with a letter or "
            "digit)",
        ),
    ],
)
def test_job_spec_errors_name_the_key_the_value_the_expectation_and_the_fix(
    changes: dict[str, t.Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        JobSpec.from_dict(_spec(**changes), source="job.yaml")
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("parties", "message"),
    [
        ([1, 2], "exactly one party must be the guest"),
        ([0, 2], "at least one host"),
        ([0, 1, 1, 2], "party names must be unique"),
    ],
)
def test_party_lists_are_checked(parties: list[int], message: str) -> None:
    base = _spec()["parties"]
    with pytest.raises(ConfigError, match=message):
        JobSpec.from_dict(_spec(parties=[base[i] for i in parties]))


def test_lr_without_an_arbiter_is_two_party_with_one_host_only() -> None:
    base = _spec()["parties"]
    assert JobSpec.from_dict(_spec(parties=base[:2])).arbiter is None
    second = {**base[1], "name": "host2"}
    with pytest.raises(ConfigError, match="without an arbiter runs between the guest and one"):
        JobSpec.from_dict(_spec(parties=[*base[:2], second]))


def test_a_guest_with_two_hosts_is_a_valid_job() -> None:
    parties = [
        *_spec()["parties"],
        {"name": "telecom", "role": "host", "address": "d:1", "dataset": "d3"},
    ]
    assert JobSpec.from_dict(_spec(parties=parties)).hosts == ("platform", "telecom")


def test_arbiter_must_not_name_a_dataset() -> None:
    parties = _spec()["parties"]
    parties[2] = {**parties[2], "dataset": "x"}
    with pytest.raises(ConfigError, match="the arbiter holds no data"):
        JobSpec.from_dict(_spec(parties=parties))


def _with_columns(index: int, **choice: t.Any) -> dict[str, t.Any]:
    """The default spec with ``choice`` (columns and/or exclude) on party ``index``."""
    parties = _spec()["parties"]
    parties[index] = {**parties[index], **choice}
    return _spec(parties=parties)


def test_a_party_chooses_its_columns_or_leaves_some_out() -> None:
    spec = JobSpec.from_dict(_with_columns(0, columns=["age", "income"]))
    assert spec.party("broker").columns == ("age", "income")
    assert spec.party("broker").exclude is None
    spec = JobSpec.from_dict(_with_columns(1, exclude=["zip"]))
    assert (spec.party("platform").columns, spec.party("platform").exclude) == (None, ("zip",))
    assert b'"exclude":["zip"]' in spec.to_json()
    assert JobSpec.from_json(spec.to_json()) == spec
    assert JobSpec.from_dict(_with_columns(1, exclude=[])).party("platform").exclude == ()


@pytest.mark.parametrize(
    ("index", "choice", "message"),
    [
        pytest.param(
            0,
            {"columns": ["age"], "exclude": ["zip"]},
            "job.yaml: parties[0]: party 'broker' gives both columns and exclude; give "
            "columns (exactly the feature columns to use) or exclude (all feature columns but "
            "these), not both",
            id="both",
        ),
        pytest.param(
            1,
            {"columns": []},
            "job.yaml: parties[1].columns is [] for party 'platform', which would use no "
            "feature column; name the columns to use, or remove it to use all of them",
            id="empty-columns",
        ),
        pytest.param(
            2,
            {"exclude": ["age"]},
            "job.yaml: parties[2].exclude is given for 'arbiter', but the arbiter holds no "
            "data; remove it",
            id="arbiter",
        ),
        pytest.param(
            0,
            {"columns": ["age", "income", "age"]},
            "job.yaml: parties[0].columns names ['age'] more than once for party 'broker'; "
            "list each column once",
            id="repeated",
        ),
        pytest.param(
            0,
            {"columns": "age"},
            "job.yaml: parties[0].columns is 'age' but must be a list of column names; write "
            "it as a list (or remove it to leave it unset)",
            id="not-a-list",
        ),
        pytest.param(
            1,
            {"exclude": ["zip", 7]},
            "job.yaml: parties[1].exclude[1] is 7 but must be a column name; write it as a "
            "quoted string",
            id="not-a-name",
        ),
        pytest.param(
            1,
            {"colums": ["zip"]},
            "job.yaml: parties[1]: unknown field(s) ['colums'] (did you mean 'columns'?); "
            "allowed fields are ['address', 'columns', 'dataset', 'exclude', 'name', 'role']",
            id="misspelt",
        ),
    ],
)
def test_column_choices_are_checked(index: int, choice: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        JobSpec.from_dict(_with_columns(index, **choice), source="job.yaml")
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        ("predict", "it scores with the columns model_job trained on"),
        ("align", "alignment reads only the ids"),
    ],
)
def test_only_a_training_job_chooses_columns(task: str, reason: str) -> None:
    raw = {**_with_columns(1, exclude=["zip"]), "task": task, "model_job": "j0"}
    raw["validation"] = {"share": 0}
    with pytest.raises(ConfigError) as info:
        JobSpec.from_dict(raw, source="job.yaml")
    assert str(info.value) == (
        f"job.yaml: parties[1].exclude is given for party 'platform' but a {task} job "
        f"chooses no columns: {reason}; remove it"
    )


def test_job_spec_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        JobSpec.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("job_id: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml cannot be read"):
        JobSpec.load(tmp_path / "bad.yaml")


PARTY_TOML = """
name = "broker"
listen = "127.0.0.1:0"
state_dir = "state"
[tls]
cert = "c.pem"
key = "c.key"
ca = "ca.pem"
[datasets.credit]
path = "data/credit.csv"
id_column = "client_id"
label_column = "y"
"""


def test_party_config_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "party.toml").write_text(PARTY_TOML)
    config = PartyConfig.load(tmp_path / "party.toml")
    assert config.state_dir == tmp_path / "state"
    assert config.dataset("credit").path == tmp_path / "data/credit.csv"
    assert config.coordinators == ("coordinator",)
    assert (config.compute_backend, config.compute_workers) == ("local", None)  # all cores
    with pytest.raises(ConfigError, match=r"no data set named 'credt'.*\['credit'\]"):
        config.dataset("credt")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s + "\nmax_mesage_mb = 5\n", r"unknown field\(s\) \['max_mesage_mb'\]"),
        (lambda s: s.replace('ca = "ca.pem"\n', ""), r"tls: missing required field"),
        (lambda s: s.replace('name = "broker"', 'name = "bro ker"'), "but must be a name"),
        (lambda s: s.replace("[tls]", "[tls"), "cannot be read"),
        (lambda s: s + '\n[compute]\nbackend = "dask"\n', r"backend is 'dask' but must be one"),
        (lambda s: s + '\n[compute]\nbackend = "ray"\n', r"compute.address is missing"),
        (lambda s: s + '\n[compute]\naddress = "auto"\n', "address applies only to"),
        (
            lambda s: s + '\n[compute]\nbackend = "ray"\naddress = "auto"\nworkers = 2\n',
            "workers applies only to",
        ),
        (lambda s: s + '\n[compute]\nbackend = "serial"\nworkers = 2\n', "applies only to"),
        (lambda s: s + "\n[compute]\nworkers = 0\n", r"workers"),
        (lambda s: s + "\n[compute]\nthreads = 2\n", r"unknown field\(s\) \['threads'\]"),
        (
            lambda s: s + "\n[metrics]\nlisten = 9464\n",
            r"metrics.listen is 9464 but must be a string 'host:port' \(plaintext HTTP /metrics",
        ),
        (
            lambda s: s + '\n[metrics]\nlisen = "0.0.0.0:9464"\n',
            r"metrics: unknown field\(s\) \['lisen'\] \(did you mean 'listen'\?\)",
        ),
    ],
)
def test_bad_party_configs_are_refused(
    tmp_path: Path, edit: t.Callable[[str], str], message: str
) -> None:
    (tmp_path / "party.toml").write_text(edit(PARTY_TOML))
    with pytest.raises(ConfigError, match=message):
        PartyConfig.load(tmp_path / "party.toml")


def test_party_config_reads_its_policy_table(tmp_path: Path) -> None:
    (tmp_path / "party.toml").write_text(
        PARTY_TOML
        + '\n[policy]\narbiters = ["arbiter"]\nhosts = ["platform"]\nmin_intersection = 1000'
        + '\nmax_peer_set = 50000\npredict_guests = ["broker-scoring"]\ntasks = ["train"]\n'
    )
    policy = PartyConfig.load(tmp_path / "party.toml").policy
    assert policy == NodePolicy(
        arbiters=("arbiter",),
        hosts=("platform",),
        min_intersection=1000,
        max_peer_set=50000,
        predict_guests=("broker-scoring",),
        tasks=("train",),
    )
    assert policy.guests == ("*",) and policy.accepted("arbiter", ("coordinator",)) == ("arbiter",)
    assert NodePolicy().accepted("arbiter", ("coordinator",)) == ("coordinator",)


def test_party_config_names_its_compute_backend(tmp_path: Path) -> None:
    (tmp_path / "party.toml").write_text(
        PARTY_TOML + '\n[compute]\nbackend = "local"\nworkers = 3\n'
    )
    config = PartyConfig.load(tmp_path / "party.toml")
    assert (config.compute_backend, config.compute_workers) == ("local", 3)
    (tmp_path / "party.toml").write_text(
        PARTY_TOML + '\n[compute]\nbackend = "ray"\naddress = "ray://head:10001"\n'
        'tls_cert = "ray.pem"\ntls_key = "ray.key"\ntls_ca = "ray-ca.pem"\n'
    )
    config = PartyConfig.load(tmp_path / "party.toml")
    assert (config.compute_backend, config.compute_address) == ("ray", "ray://head:10001")
    assert config.ray_tls == (tmp_path / "ray.pem", tmp_path / "ray.key", tmp_path / "ray-ca.pem")


def test_party_config_reads_its_metrics_endpoint(tmp_path: Path) -> None:
    (tmp_path / "party.toml").write_text(PARTY_TOML)
    assert PartyConfig.load(tmp_path / "party.toml").metrics_listen is None  # off by default
    (tmp_path / "party.toml").write_text(PARTY_TOML + '\n[metrics]\nlisten = "0.0.0.0:9464"\n')
    assert PartyConfig.load(tmp_path / "party.toml").metrics_listen == "0.0.0.0:9464"


def _party(**changes: t.Any) -> dict[str, t.Any]:
    party: dict[str, t.Any] = {
        "name": "broker",
        "listen": "127.0.0.1:0",
        "state_dir": "state",
        "tls": {"cert": "c.pem", "key": "c.key", "ca": "ca.pem"},
        "datasets": {"credit_broker": {"path": "credit.csv", "id_column": "client_id"}},
    }
    party.update(changes)
    return party


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"max_mesage_mb": 5},
            "party.toml: unknown field(s) ['max_mesage_mb'] (did you mean 'max_message_mb'?); "
            "allowed fields are ['audit', 'compute', 'coordinators', 'datasets', "
            "'health_listen', 'limits', 'listen', 'max_job_mb', 'max_message_mb', 'metrics', "
            "'name', 'peer_backoff_s', 'peer_retries', 'policy', 'recv_timeout_s', 'retention', "
            "'secrets_dir', 'send_deadline_s', 'serving', 'state_dir', 'tls']",
        ),
        (
            {"datasets": {"credit_broker": {"path": "credit.csv", "id_column": 5}}},
            "party.toml: datasets.credit_broker.id_column is 5 but must be a column name; "
            "write it as a quoted string",
        ),
        (
            {"datasets": {"credit broker": {"path": "credit.csv", "id_column": "id"}}},
            "party.toml: datasets key is 'credit broker' but must be a name: letters, digits, "
            "'_', '.', '-', at most 63 characters, starting with a letter or digit; rename it",
        ),
        (
            {"datasets": {"credit_broker": {"path": "credit.csv"}}},
            "party.toml: datasets.credit_broker: missing required field(s) ['id_column']; add "
            "id_column (a column name)",
        ),
        (
            {"tls": {"cert": "c.pem", "key": "c.key"}},
            "party.toml: tls: missing required field(s) ['ca']; add ca (a file path, relative "
            "to the party config)",
        ),
        (
            {"compute": {"workers": 0}},
            "party.toml: compute.workers is 0 but must be an integer >= 1; choose a value in "
            "that range (or remove it to leave it unset)",
        ),
        (
            {"compute": {"backend": "serial", "workers": 2}},
            "party.toml: compute.workers is 2 but workers applies only to backend = 'local' "
            "(compute.backend is 'serial'); remove it or switch the backend",
        ),
        (
            {"compute": 5},
            "party.toml: compute is 5 but must be a table with keys backend, workers, address, "
            "tls_cert, tls_key, tls_ca; write it as a table (or remove it for the defaults)",
        ),
        (
            {"audit": {"level": "ful"}},
            "party.toml: audit.level is 'ful' but must be one of ['full', 'chain']; did you "
            "mean 'full'? (or remove it for the default, 'full')",
        ),
        (
            {"coordinators": "ops"},
            "party.toml: coordinators is 'ops' but must be a list of certificate names; write "
            "it as a list (or remove it for the default, ['coordinator'])",
        ),
        (
            {"recv_timeout_s": math.inf},
            "party.toml: recv_timeout_s is inf but must be a finite number >= 1; choose a value "
            "in that range (or remove it for the default, 1800.0)",
        ),
        (
            {"policy": {"arbiter": ["arbiter"]}},
            "party.toml: policy: unknown field(s) ['arbiter'] (did you mean 'arbiters'?); "
            "allowed fields are ['arbiters', 'coordinator_tasks', 'guests', 'hosts', "
            "'max_depth', 'max_peer_set', 'min_batch_size', 'min_bin_share', 'min_child_weight', "
            "'min_intersection', 'min_key_bits', 'predict_guests', 'tasks']",
        ),
        (
            {"policy": {"arbiters": ["arbiter", "all of them"]}},
            "party.toml: policy.arbiters[1] is 'all of them' but must be a party name or '*' "
            "(any party certified by the CA); write the name in the party's certificate",
        ),
        (
            {"policy": {"min_intersection": 0}},
            "party.toml: policy.min_intersection is 0 but must be an integer >= 1; choose a "
            "value in that range (or remove it for the default, 100)",
        ),
        (
            {"policy": {"tasks": ["trian"]}},
            "party.toml: policy.tasks[0] is 'trian' but must be one of ['train', 'predict', "
            "'align']; did you mean 'train'?",
        ),
        (
            {"policy": {"min_key_bits": 1024}},
            "party.toml: policy.min_key_bits is 1024 but must be an integer >= 2048; choose a "
            "value in that range (or remove it for the default, 2048)",
        ),
        (
            {"limits": {"calls_per_peer": 13}},
            "party.toml: limits.calls_per_peer is 13 but must be an integer >= 1 and <= 12; "
            "choose a value in that range (or remove it for the default, 4)",
        ),
        (
            {"limits": {"first_chunk_s": 0}},
            "party.toml: limits.first_chunk_s is 0 but must be a number >= 1; choose a value "
            "in that range (or remove it for the default, 30.0)",
        ),
    ],
)
def test_party_config_errors_name_the_key_the_value_the_expectation_and_the_fix(
    changes: dict[str, t.Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        PartyConfig.from_dict(_party(**changes), base=Path("/srv"), source="party.toml")
    assert str(info.value) == message


# ---- one place per key ----------------------------------------------------------------

DEMO_SPEC: dict[str, t.Any] = {  # demo_spec(addresses, epochs=5, key_bits=2048) in cli/demo.py
    "job_id": "credit-demo",
    "seed": 42,
    "parties": [
        {"name": "broker", "role": "guest", "address": "127.0.0.1:50051",
         "dataset": "credit_broker"},
        {"name": "platform", "role": "host", "address": "127.0.0.1:50052",
         "dataset": "credit_platform"},
        {"name": "arbiter", "role": "arbiter", "address": "127.0.0.1:50053"},
    ],
    "alignment": {"min_intersection": 1000},
    "validation": {"share": 0.2},
    "model": {
        "type": "hetero_lr", "epochs": 5, "batch_size": 1024, "learning_rate": 0.5,
        "lr_decay": 0.01, "l2": 0.0, "tol": 1e-4, "key_bits": 2048,
    },
}  # fmt: skip
BOOST_SPEC = _spec(
    seed=7,
    parties=_spec()["parties"][:2],
    alignment={"min_intersection": 10},
    validation={"share": 0.25, "stratify": True},
    model={
        "type": "secureboost", "trees": 5, "depth": 3, "learning_rate": 0.3, "max_bins": 32,
        "min_child_weight": 1.0, "l2": 1.0, "gamma": 0.0, "subsample": 0.8, "colsample": 1.0,
        "early_stopping_rounds": 3, "objective": "binary", "class_weights": [1, 3.5],
        "key_bits": 2048,
    },
)  # fmt: skip


# Digests taken with config.py as it was before its keys were declared on the fields; the
# job spec digest is in every party's audit log and compared across parties, so the same
# spec must keep it byte for byte.
@pytest.mark.parametrize(
    ("raw", "digest"),
    [
        (DEMO_SPEC, "c52caa8320dd1e9a9a76b3a63f0d51ed7b76fa9db55a5c1185d7ff5401f3e732"),
        (
            {**DEMO_SPEC, "purpose": "credit_scoring"},
            "bd3934a810db39fe428c8b52aac8b18ecfab538878a0c0671574612b007f33df",
        ),
        (_spec(), "331e5feeafee732d5aae85e88e45e2ac35e70879a81039cbd805a8ff2a5476df"),
        (BOOST_SPEC, "121b78c5a6d1478f16fb4b9346c0450efd603b150150527b51c1802985cd6d06"),
        (
            _spec(
                task="predict",
                model_job="j0",
                validation={"share": 0},
                model={"epochs": 2, "batch_size": 64, "learning_rate": 0.1, "lr_decay": 0.01,
                       "l2": 0.001, "tol": 0.0, "key_bits": 3072},
            ),
            "dd7ddced1d069eb728d5772db3f8f976bb56ebcd7bfa043fdfb145bc3354658e",
        ),
        (
            _spec(
                seed=3,
                parties=_spec()["parties"][:2],
                model={"type": "secureboost", "objective": "multiclass",
                       "class_weights": "balanced", "trees": 4, "depth": 5, "max_bins": 16,
                       "key_bits": 3072, "learning_rate": 1},
            ),
            "d2d4dbd619fc269e15466281dd23f044eed1d74d477f50b30db0464cfb6de278",
        ),
        (  # ints given for float settings stay ints in the canonical JSON
            _spec(task="align", validation={"share": 0},
                  model={"learning_rate": 1, "l2": 0, "tol": 0}),
            "708a5584d79a92826c7bd9c687baf9724c06e41b9dd28cba4c71f326362a2e16",
        ),
    ],
    ids=["demo", "demo-0.7-purpose", "defaults", "secureboost", "predict", "multiclass",
         "align-int-numbers"],
)  # fmt: skip
def test_job_spec_digests_are_unchanged(raw: dict[str, t.Any], digest: str) -> None:
    spec = JobSpec.from_dict(raw)
    assert spec.digest() == digest, spec.to_json()
    assert JobSpec.from_json(spec.to_json()).digest() == digest


def test_the_demo_spec_pinned_above_is_the_demos() -> None:
    """If the demo's spec changes on purpose, copy it to DEMO_SPEC and pin its digest anew."""
    from lianmo.cli.demo import demo_spec

    addresses = {p["name"]: p["address"] for p in DEMO_SPEC["parties"]}
    # 0.7: the demo states its purpose (a spec without one keeps its old digest, above)
    assert demo_spec(addresses, epochs=5, key_bits=2048) == {
        **DEMO_SPEC,
        "purpose": "credit_scoring",
    }


def test_keys_left_out_take_the_dataclass_defaults() -> None:
    spec = JobSpec.from_dict({"job_id": "j1", "parties": _spec()["parties"]})
    assert (spec.seed, spec.task, spec.model_job) == (42, "train", None)
    assert (spec.model, spec.alignment, spec.validation) == (
        LrSpec(),
        AlignmentSpec(),
        ValidationSpec(),
    )
    boost = JobSpec.from_dict(_spec(model={"type": "secureboost"})).model
    assert boost == BoostSpec()
    config = PartyConfig.from_dict(_party(), base=Path("/srv"))
    fields = dataclasses.fields(PartyConfig)
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    assert {name: getattr(config, name) for name in defaults} == defaults
    assert config.policy == NodePolicy()


CONFIG_CLASSES = [
    PartyConfig, DatasetEntry, JobSpec, PartySpec, AlignmentSpec, ValidationSpec, LrSpec,
    BoostSpec, NodePolicy,
]  # fmt: skip


def _as_written(value: t.Any) -> t.Any:
    """A default as a config file would spell it: lists, not tuples."""
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda cls: cls.__name__)
def test_every_default_passes_its_own_rule(cls: type[t.Any]) -> None:
    for f in dataclasses.fields(cls):
        if "lianmo.rule" not in f.metadata or f.default is dataclasses.MISSING:
            continue
        at = Where("test", f.name, default=REQUIRED, base=Path("/srv"))
        assert f.metadata["lianmo.rule"](_as_written(f.default), at) == f.default, f.name


def test_fields_read_from_the_file_all_declare_a_rule() -> None:
    unchecked = [
        f"{cls.__name__}.{f.name}"
        for cls in CONFIG_CLASSES
        for f in dataclasses.fields(cls)
        if "lianmo.rule" not in f.metadata
    ]
    assert unchecked == ["DatasetEntry.name"]  # the name of its [datasets.NAME] table


def test_the_policy_docs_example_is_a_valid_party_config() -> None:
    """docs/policy.md's full example and README's party.toml parse with their [policy]."""
    root = Path(__file__).resolve().parents[1]
    for doc in ("docs/policy.md", "README.md"):
        text = (root / doc).read_text(encoding="utf-8")
        block = next(b for b in text.split("```toml\n")[1:] if "[policy]" in b).split("```")[0]
        config = PartyConfig.from_dict(tomllib.loads(block), base=Path("/srv"), source=doc)
        assert config.policy.arbiters == ("arbiter",), doc
        if doc == "docs/policy.md":
            assert config.policy.tasks_of("ops") == ("align",)
            assert config.policy.tasks_of("coordinator") == ("train", "predict", "align")
