"""A node's own say over the jobs it runs: the spec checked against its ``[policy]`` at prepare.

The coordinator picks the parties and the privacy settings of a job; this module is where
a party refuses a job its operator did not agree to (see :mod:`lianmo.config.policy`):

- a peer in a role the policy does not accept, above all an arbiter (the key holder);
- a task the node does not run, or one the submitting coordinator may not submit;
- a setting below a floor or above a cap (minimum intersection, LR batch size, Paillier
  key size, SecureBoost leaf weight and depth);
- a scoring job with this party's model share whose guest did not train the model, or
  whose parties are not the training job's in the same roles.

Every problem found is named at once, with the setting and who must change what; the
message reaches the coordinator, so it names no local path.
"""

from __future__ import annotations

import json
import logging

from lianmo.config import (
    ANY_PEER,
    COORDINATED,
    BoostSpec,
    JobSpec,
    NodePolicy,
    PartyConfig,
    ScorecardSpec,
)
from lianmo.errors import ConfigError, PolicyError

_LOG = logging.getLogger("lianmo.node")
SPEC_FILE = "spec.json"


def check_job(config: PartyConfig, spec: JobSpec, caller: str | None = None) -> None:
    """Refuse ``spec`` with a :class:`PolicyError` if this node's policy does not accept it.

    ``caller`` is the submitting coordinator's certificate name (``None``: any of them).
    """
    policy = config.policy
    problems = [
        *_task_problems(policy, spec, caller),
        *_peer_problems(config, spec),
        *_floor_problems(policy, spec),
        *_scoring_problems(config, spec),
    ]
    if problems:
        text = (
            f"party '{config.name}' refuses job '{spec.job_id}' under its policy: "
            + "; ".join(problems)
            + f" (or the operator of party '{config.name}' changes [policy] in its party config)"
        )
        _LOG.warning("job %s refused: %s", spec.job_id, text, extra={"job_id": spec.job_id})
        raise PolicyError(text)


def _task_problems(policy: NodePolicy, spec: JobSpec, caller: str | None) -> list[str]:
    allowed = policy.tasks_of(caller)
    if spec.task in allowed:
        return []
    if caller in policy.coordinator_tasks:
        return [
            f"task '{spec.task}' is not one coordinator '{caller}' may submit (policy."
            f"coordinator_tasks.{caller} and policy.tasks allow {list(allowed)}); that "
            "coordinator must send this party only those tasks"
        ]
    return [
        f"task '{spec.task}' is not one of policy.tasks {list(policy.tasks)}; the coordinator "
        "must send this party only those tasks"
    ]


def _peer_problems(config: PartyConfig, spec: JobSpec) -> list[str]:
    """Every other party must be accepted in its role; the arbiter holds the job's key."""
    problems = []
    for party in spec.parties:
        if party.name == config.name:
            continue
        accepted = config.policy.accepted(party.role, config.coordinators)
        if ANY_PEER in accepted or party.name in accepted:
            continue
        if party.role == "arbiter" and config.policy.arbiters is None:
            rule = (
                f"an arbiter holds the job's Paillier key, and without [policy] arbiters it "
                f"must be one of coordinators {list(config.coordinators)}"
            )
        elif party.role == "arbiter":
            rule = (
                f"an arbiter holds the job's Paillier key, and policy.arbiters is {list(accepted)}"
            )
        else:
            rule = f"policy.{party.role}s is {list(accepted)}"
        problems.append(
            f"the job names '{party.name}' as {party.role}, but {rule}; the coordinator must "
            f"choose an accepted {party.role}"
        )
    return problems


def _floor_problems(policy: NodePolicy, spec: JobSpec) -> list[str]:
    """Settings a coordinator could lower (or raise) to learn more about individuals."""
    # (key in the job spec, its value, the policy's setting, its bound, bound is a floor)
    checks: list[tuple[str, float, str, float, bool]] = [
        ("alignment.min_intersection", spec.alignment.min_intersection, "min_intersection",
         policy.min_intersection, True),
    ]  # fmt: skip
    model = spec.model
    if spec.task == "train" and isinstance(model, COORDINATED):
        checks += [
            ("model.batch_size", model.batch_size, "min_batch_size", policy.min_batch_size, True),
            ("model.key_bits", model.key_bits, "min_key_bits", policy.min_key_bits, True),
        ]
    if spec.task == "train" and isinstance(model, ScorecardSpec):
        checks += [
            ("model.min_bin_share", model.min_bin_share, "min_bin_share",
             policy.min_bin_share, True),
        ]  # fmt: skip
    if spec.task == "train" and isinstance(model, BoostSpec):
        checks += [
            ("model.min_child_weight", model.min_child_weight, "min_child_weight",
             policy.min_child_weight, True),
            ("model.depth", model.depth, "max_depth", policy.max_depth, False),
            ("model.key_bits", model.key_bits, "min_key_bits", policy.min_key_bits, True),
        ]  # fmt: skip
    problems = []
    for key, value, setting, bound, floor in checks:
        if value < bound if floor else value > bound:
            side, most = ("below", "least") if floor else ("above", "most")
            problems.append(
                f"{key} is {value}, {side} policy.{setting} = {bound}; the coordinator must "
                f"set it to at {most} {bound}"
            )
    return problems


def _scoring_problems(config: PartyConfig, spec: JobSpec) -> list[str]:
    """A scoring job uses this party's model share only with the parties that trained it."""
    me = spec.party(config.name)
    if spec.task != "predict" or me.role == "arbiter":
        return []  # an arbiter holds no share of the model
    model_job = str(spec.model_job)
    trained = training_spec(config, model_job)
    if trained is None:
        return [
            f"model_job '{model_job}' is not a job this party trained (it has no record of "
            "it); the coordinator must name a training job this party took part in"
        ]
    if trained.task != "train":
        return [f"model_job '{model_job}' is a {trained.task} job, not a training job"]
    problems = []
    if trained.purpose is not None and spec.purpose != trained.purpose:
        problems.append(
            f"model_job '{model_job}' was trained for purpose '{trained.purpose}', and its "
            "model share may serve that purpose only; a scoring job must state the same "
            "purpose (or train a new model for this one)"
        )
    if spec.guest != trained.guest and spec.guest not in config.policy.predict_guests:
        problems.append(
            f"the job's guest '{spec.guest}' is not '{trained.guest}', the guest that trained "
            f"model_job '{model_job}', and policy.predict_guests is "
            f"{list(config.policy.predict_guests)}; only the training guest may score with "
            "this party's model share: the coordinator must make it the guest"
        )
    roles = {p.name: p.role for p in trained.parties}
    for party in spec.parties:
        if party.role == "guest" or roles.get(party.name) == party.role:
            continue
        then = f"a {roles[party.name]}" if party.name in roles else "not a party"
        problems.append(
            f"'{party.name}' takes part as {party.role} but was {then} in training job "
            f"'{model_job}'; a scoring job's parties must be the training job's, in the same "
            "roles"
        )
    return problems


def training_spec(config: PartyConfig, job_id: str) -> JobSpec | None:
    """The spec of this party's job ``job_id`` as it kept it at prepare; None if it has none."""
    path = config.state_dir / "jobs" / job_id / SPEC_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        _LOG.error("cannot read %s: %s", path, exc)
        raise ConfigError(
            f"party '{config.name}' cannot read its record of job '{job_id}' (its node log "
            "says why)"
        ) from exc
    try:
        return JobSpec.from_dict(json.loads(data), source=f"the spec of job '{job_id}'")
    except (ValueError, ConfigError) as exc:
        _LOG.error("the spec kept at %s is unreadable: %s", path, exc)
        raise ConfigError(
            f"party '{config.name}' keeps an unreadable spec of job '{job_id}' (its node log "
            "says why)"
        ) from exc
