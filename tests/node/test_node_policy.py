"""A node's [policy] applied to job specs at prepare: peers per role, tasks, floors, scoring.

Each refusal is what a coordinator alone could otherwise impose on a party: a key holder of
its choice, a setting that singles people out, a scoring guest that did not train the model.
The message names the party, the setting and who must change what, and no local path.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from lianmo.config import JobSpec, PartyConfig
from lianmo.errors import ConfigError, PolicyError
from lianmo.node.policy import check_job
from lianmo.protocols.same_spec import confirm_same_spec

from ..protocols.conftest import WireRecorder, run_roles


def _config(
    tmp_path: Path,
    name: str = "platform",
    extra_top: dict[str, t.Any] | None = None,
    **policy: t.Any,
) -> PartyConfig:
    return PartyConfig.from_dict(
        {
            "name": name,
            "listen": "127.0.0.1:0",
            "state_dir": "state",
            "tls": {"cert": "x", "key": "x", "ca": "x"},
            "datasets": {"d": {"path": "d.csv", "id_column": "id"}},
            **({"policy": policy} if policy else {}),
            **(extra_top or {}),
        },
        base=tmp_path,
    )


def _spec(
    job_id: str = "j1", *, arbiter: str | None = "arbiter", guest: str = "broker", **extra: t.Any
) -> JobSpec:
    parties = [
        {"name": guest, "role": "guest", "address": "a:1", "dataset": "d"},
        {"name": "platform", "role": "host", "address": "b:1", "dataset": "d"},
    ]
    if arbiter is not None:
        parties.append({"name": arbiter, "role": "arbiter", "address": "c:1"})
    raw: dict[str, t.Any] = {"job_id": job_id, "parties": parties, **extra}
    if arbiter is None and "model" not in raw:
        raw["model"] = {"type": "secureboost"}
    return JobSpec.from_dict(raw)


def _refusal(config: PartyConfig, spec: JobSpec) -> str:
    with pytest.raises(PolicyError) as info:
        check_job(config, spec)
    text = str(info.value)
    assert text.startswith(f"party '{config.name}' refuses job '{spec.job_id}' under its policy: ")
    assert str(config.state_dir) not in text
    return text


# ---- peers ----------------------------------------------------------------------------------


def test_by_default_only_a_coordinator_may_be_the_arbiter(tmp_path: Path) -> None:
    config = _config(tmp_path)
    check_job(config, _spec(arbiter="coordinator"))
    text = _refusal(config, _spec(arbiter="mallory"))
    assert (
        "the job names 'mallory' as arbiter, but an arbiter holds the job's Paillier key, and "
        "without [policy] arbiters it must be one of coordinators ['coordinator']; the "
        "coordinator must choose an accepted arbiter" in text
    )
    assert text.endswith(
        "(or the operator of party 'platform' changes [policy] in its party config)"
    )


def test_attack_a_coordinator_names_an_arbiter_the_policy_does_not_list(tmp_path: Path) -> None:
    config = _config(tmp_path, arbiters=["arbiter"])
    check_job(config, _spec())
    assert "policy.arbiters is ['arbiter']" in _refusal(config, _spec(arbiter="coordinator"))
    assert "policy.arbiters is ['arbiter']" in _refusal(config, _spec(arbiter="broker-ops"))
    check_job(_config(tmp_path, arbiters=["*"]), _spec(arbiter="anyone"))


def test_guests_and_hosts_are_checked_by_name_and_a_node_never_checks_itself(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, guests=["broker"], hosts=[], arbiters=["arbiter"])
    check_job(config, _spec())  # platform is the only host: itself
    text = _refusal(config, _spec(guest="intruder"))
    assert "the job names 'intruder' as guest, but policy.guests is ['broker']" in text


# ---- tasks and floors -------------------------------------------------------------------------


def test_a_task_outside_the_policy_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, tasks=["train"], arbiters=["arbiter"])
    text = _refusal(config, _spec(task="align"))
    assert "task 'align' is not one of policy.tasks ['train']" in text


@pytest.mark.parametrize(
    ("extra", "arbiter", "problem"),
    [
        (
            {"alignment": {"min_intersection": 1}},
            "arbiter",
            "alignment.min_intersection is 1, below policy.min_intersection = 100; the "
            "coordinator must set it to at least 100",
        ),
        (
            {"model": {"batch_size": 8}},
            "arbiter",
            "model.batch_size is 8, below policy.min_batch_size = 64",
        ),
        (
            {"model": {"type": "secureboost", "min_child_weight": 0.0}},
            None,
            "model.min_child_weight is 0.0, below policy.min_child_weight = 1.0",
        ),
        (
            {"model": {"type": "scorecard", "min_bin_share": 0.0}},
            "arbiter",
            "model.min_bin_share is 0.0, below policy.min_bin_share = 0.02",
        ),
        (
            {"model": {"type": "scorecard", "batch_size": 8}},
            "arbiter",
            "model.batch_size is 8, below policy.min_batch_size = 64",
        ),
        (
            {"model": {"type": "secureboost", "depth": 12}},
            None,
            "model.depth is 12, above policy.max_depth = 6; the coordinator must set it to at "
            "most 6",
        ),
    ],
)
def test_attack_a_spec_below_a_floor_is_refused(
    tmp_path: Path, extra: dict[str, t.Any], arbiter: str | None, problem: str
) -> None:
    config = _config(tmp_path, arbiters=["arbiter"])
    assert problem in _refusal(config, _spec(arbiter=arbiter, **extra))


def test_floors_are_the_operators_to_raise(tmp_path: Path) -> None:
    config = _config(tmp_path, arbiters=["arbiter"], min_intersection=5000, min_key_bits=3072)
    text = _refusal(config, _spec(alignment={"min_intersection": 1000}))
    assert "alignment.min_intersection is 1000, below policy.min_intersection = 5000" in text
    assert "model.key_bits is 2048, below policy.min_key_bits = 3072" in text  # both at once
    check_job(
        config,
        _spec(alignment={"min_intersection": 5000}, model={"key_bits": 3072}),
    )


# ---- scoring with a model share ---------------------------------------------------------------


def _trained(config: PartyConfig, spec: JobSpec) -> None:
    """What prepare keeps of a training job: its spec."""
    folder = config.state_dir / "jobs" / spec.job_id
    folder.mkdir(parents=True)
    (folder / "spec.json").write_bytes(spec.to_json())


def _predict(guest: str = "broker", *, arbiter: str = "arbiter") -> JobSpec:
    """A scoring job with the model of training job 'train-1'."""
    data = json.loads(_spec("scores", guest=guest, arbiter=arbiter).to_json())
    data.update(task="predict", model_job="train-1")
    return JobSpec.from_dict(data)


def test_attack_a_guest_that_did_not_train_the_model_cannot_score_with_it(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, arbiters=["arbiter"])
    _trained(config, _spec("train-1"))
    check_job(config, _predict())
    text = _refusal(config, _predict(guest="mallory"))
    assert (
        "the job's guest 'mallory' is not 'broker', the guest that trained model_job "
        "'train-1', and policy.predict_guests is []; only the training guest may score with "
        "this party's model share" in text
    )
    check_job(
        _config(tmp_path, arbiters=["arbiter"], predict_guests=["mallory"]), _predict("mallory")
    )


def test_a_scoring_jobs_parties_must_be_the_training_jobs_in_the_same_roles(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, arbiters=["arbiter", "arbiter2"])
    _trained(config, _spec("train-1"))
    text = _refusal(config, _predict(arbiter="arbiter2"))
    assert "'arbiter2' takes part as arbiter but was not a party in training job 'train-1'" in text


def test_a_scoring_job_needs_a_training_job_of_this_party(tmp_path: Path) -> None:
    config = _config(tmp_path, arbiters=["arbiter"])
    text = _refusal(config, _predict())
    assert "model_job 'train-1' is not a job this party trained (it has no record of it)" in text
    _trained(config, _spec("train-1", task="align"))
    assert "model_job 'train-1' is a align job, not a training job" in _refusal(config, _predict())
    check_job(_config(tmp_path, name="arbiter"), _predict())  # the arbiter holds no share


# ---- the same spec everywhere -----------------------------------------------------------------


def test_parties_holding_different_specs_stop_before_anything_else() -> None:
    recorder = WireRecorder()
    digests = {"g": "a" * 64, "h": "a" * 64, "x": "b" * 64}
    with pytest.raises(PolicyError, match="the parties were prepared with different specs"):
        run_roles(
            {p: (lambda ctx, d=d: confirm_same_spec(ctx, d)) for p, d in digests.items()},
            guest="g",
            hosts=("h",),
            arbiter="x",
            recorder=recorder,
        )
    assert {e.tag for e in recorder.envelopes} == {"job.spec_digest"}
    assert len(recorder.envelopes) == 6  # every party's digest reached every other


def test_a_coordinator_limited_to_some_tasks_cannot_submit_others(tmp_path: Path) -> None:
    """``[policy.coordinator_tasks]``: an operations coordinator may only align."""
    config = _config(
        tmp_path,
        arbiters=["arbiter"],
        coordinator_tasks={"ops": ["align"]},
        extra_top={"coordinators": ["coordinator", "ops"]},
    )
    check_job(config, _spec(task="align"), "ops")
    text = _refusal_by(config, _spec(), "ops")
    assert (
        "task 'train' is not one coordinator 'ops' may submit (policy.coordinator_tasks.ops "
        "and policy.tasks allow ['align'])" in text
    )
    check_job(config, _spec(), "coordinator")  # the other coordinator keeps every task


def test_coordinator_tasks_must_name_a_coordinator(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, coordinator_tasks={"mallory": ["train"]})
    assert (
        "policy.coordinator_tasks.mallory names a coordinator that is not in coordinators "
        "['coordinator']" in str(info.value)
    )


def _refusal_by(config: PartyConfig, spec: JobSpec, caller: str) -> str:
    with pytest.raises(PolicyError) as info:
        check_job(config, spec, caller)
    return str(info.value)
