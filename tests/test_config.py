"""Party config and job spec: what is accepted, and the errors for what is not."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from lianmo.config import BoostSpec, JobSpec, PartyConfig
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
        ({"model": {"epochs": 0}}, "epochs must be >= 1"),
        ({"model": {"key_bits": 1024}}, "1024-bit Paillier keys are refused"),
        ({"model": {"type": "xgboost"}}, "'hetero_lr' or 'secureboost'"),
        ({"model": {"type": "secureboost", "epochs": 3}}, r"unknown field\(s\) \['epochs'\]"),
        ({"model": {"type": "secureboost", "objective": "poisson"}}, "objective must be one of"),
        ({"model": {"type": "secureboost", "depth": 0}}, "depth must be >= 1"),
        ({"model": {"type": "secureboost", "subsample": 0}}, "subsample must be > 0"),
        ({"model": {"type": "secureboost", "class_weights": [1]}}, "needs 2 weights"),
        ({"model": {"type": "secureboost", "class_weights": "auto"}}, "'balanced' or a list"),
        ({"model": {"type": "secureboost", "key_bits": 1024}}, "1024-bit Paillier keys"),
        ({"validation": {"stratify": "yes"}}, "stratify must be true or false"),
        ({"validation": {"share": 0}}, "validation.share must be above 0"),
        ({"validation": {"share": 0.95}}, "share must be >= 0 and <= 0.9"),
        ({"job_id": "../etc"}, "is not a valid name"),
        ({"task": "predict"}, "needs model_job"),
        ({"seed": True}, "seed must be an integer"),
    ],
)
def test_bad_job_specs_are_refused_with_the_field_named(
    changes: dict[str, t.Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        JobSpec.from_dict(_spec(**changes))


@pytest.mark.parametrize(
    ("parties", "message"),
    [
        ([1, 2], "exactly one party must be the guest"),
        ([0, 2], "at least one host"),
        ([0, 1], "exactly one arbiter"),
        ([0, 1, 1, 2], "party names must be unique"),
    ],
)
def test_party_lists_are_checked(parties: list[int], message: str) -> None:
    base = _spec()["parties"]
    with pytest.raises(ConfigError, match=message):
        JobSpec.from_dict(_spec(parties=[base[i] for i in parties]))


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
        (lambda s: s.replace('ca = "ca.pem"\n', ""), r"\[tls\]: missing required field"),
        (lambda s: s.replace('name = "broker"', 'name = "bro ker"'), "not a valid name"),
        (lambda s: s.replace("[tls]", "[tls"), "cannot be read"),
        (lambda s: s + '\n[compute]\nbackend = "dask"\n', r"backend must be one of"),
        (lambda s: s + '\n[compute]\nbackend = "ray"\n', r"\[compute\] address must be"),
        (lambda s: s + '\n[compute]\naddress = "auto"\n', "address applies only to"),
        (
            lambda s: s + '\n[compute]\nbackend = "ray"\naddress = "auto"\nworkers = 2\n',
            "workers applies only to",
        ),
        (lambda s: s + '\n[compute]\nbackend = "serial"\nworkers = 2\n', "applies only to"),
        (lambda s: s + "\n[compute]\nworkers = 0\n", r"workers"),
        (lambda s: s + "\n[compute]\nthreads = 2\n", r"unknown field\(s\) \['threads'\]"),
    ],
)
def test_bad_party_configs_are_refused(
    tmp_path: Path, edit: t.Callable[[str], str], message: str
) -> None:
    (tmp_path / "party.toml").write_text(edit(PARTY_TOML))
    with pytest.raises(ConfigError, match=message):
        PartyConfig.load(tmp_path / "party.toml")


def test_party_config_names_its_compute_backend(tmp_path: Path) -> None:
    (tmp_path / "party.toml").write_text(
        PARTY_TOML + '\n[compute]\nbackend = "local"\nworkers = 3\n'
    )
    config = PartyConfig.load(tmp_path / "party.toml")
    assert (config.compute_backend, config.compute_workers) == ("local", 3)
    (tmp_path / "party.toml").write_text(
        PARTY_TOML + '\n[compute]\nbackend = "ray"\naddress = "ray://head:10001"\n'
    )
    config = PartyConfig.load(tmp_path / "party.toml")
    assert (config.compute_backend, config.compute_address) == ("ray", "ray://head:10001")
