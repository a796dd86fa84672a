"""Real jobs for the audit tests, run once per session with in-process party nodes.

``audited_jobs`` holds, under one state root (``<root>/<party>/jobs/<job_id>``):

* ``lr-a``: logistic regression on the breast data (broker guest, platform host, arbiter);
* ``lr-b``: the same job after every party rotated its signing key;
* ``lr-p``: scoring with lr-a's model (PSI plus scoring, no training);
* ``sb-a``: two SecureBoost trees on the same data (arbiter as witness only).

Seeds are pinned (:func:`fixed_seeds`), so a rerun produces the same logs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lianmo.audit.signing import write_signing_key
from lianmo.config import JobSpec, PartyConfig
from tests.node.inprocess_nodes import (
    ARBITER,
    GUEST,
    HOST,
    breast_configs,
    fixed_seeds,
    make_nodes,
    run_in_process,
    train_spec,
)

PARTIES = (GUEST, HOST, ARBITER)


def boost_spec(job_id: str) -> JobSpec:
    return JobSpec.from_dict(
        {
            "job_id": job_id,
            "seed": 7,
            "parties": [
                {"name": GUEST, "role": "guest", "address": "-", "dataset": "breast_guest"},
                {"name": HOST, "role": "host", "address": "-", "dataset": "breast_host"},
                {"name": ARBITER, "role": "arbiter", "address": "-"},
            ],
            "validation": {"share": 0.2, "stratify": True},
            "model": {"type": "secureboost", "trees": 2, "depth": 2, "subsample": 0.8},
        }
    )


def predict_spec(job_id: str, model_job: str) -> JobSpec:
    raw = json.loads(train_spec(job_id).to_json())
    return JobSpec.from_dict({**raw, "task": "predict", "model_job": model_job})


@dataclass(frozen=True)
class AuditedJobs:
    root: Path
    configs: dict[str, PartyConfig]

    def job_dir(self, party: str, job_id: str) -> Path:
        return self.root / party / "jobs" / job_id

    def handed(self) -> Path:
        """What the parties hand auditors, copied afresh from the state root: see
        :func:`hand_to_auditors` (verify refuses the state root itself: it holds seeds and
        keys)."""
        return hand_to_auditors([self.root], self.root.with_name(self.root.name + "-handed"))

    def copy(self, target: Path) -> AuditedJobs:
        """A copy to tamper with (configs re-rooted there, data files shared)."""
        shutil.copytree(self.root, target)
        return AuditedJobs(target, breast_configs(target, _data_dir(self.configs)))


AUDITOR_FILES = ("audit.jsonl", "result.json", "payloads", "pruned.json")


def hand_to_auditors(sources: Iterable[Path], target: Path) -> Path:
    """Copy of each job folder under ``sources`` as auditors get it: log, payloads, result
    and, for a pruned job, its prune statement.

    ``target/<source name>/<path of the job folder under the source>`` (sources of the same
    name, such as the job folders of one job, become ``<i>-<name>``); ``target`` is replaced.
    No seed, key, checkpoint or inbox comes along.
    """
    shutil.rmtree(target, ignore_errors=True)
    sources = list(sources)
    names = [s.name for s in sources]
    for i, source in enumerate(sources):
        name = source.name if names.count(source.name) == 1 else f"{i}-{source.name}"
        for log in sorted(source.rglob("audit.jsonl")):
            folder = target / name / log.parent.relative_to(source)
            folder.mkdir(parents=True)
            for kept in AUDITOR_FILES:
                item = log.parent / kept
                if item.is_dir():
                    shutil.copytree(item, folder / kept)
                elif item.exists():
                    shutil.copy2(item, folder / kept)
    return target


def _data_dir(configs: dict[str, PartyConfig]) -> Path:
    return configs[GUEST].datasets["breast_guest"].path.parent


def old_key_path(config: PartyConfig) -> Path:
    """Where the fixture keeps a party's signing key from before the rotation."""
    return config.signing_key_path.with_suffix(".old")


def run_audited_jobs(
    root: Path, shared_data: Path, *, rotate: bool = True, keys_from: AuditedJobs | None = None
) -> AuditedJobs:
    """Run the jobs; ``keys_from`` reuses another run's (pre-rotation) signing keys."""
    root.mkdir(parents=True, exist_ok=True)
    configs = breast_configs(root, shared_data)
    if keys_from is not None:
        for name, config in configs.items():
            shutil.copy(old_key_path(keys_from.configs[name]), config.signing_key_path)
    nodes = make_nodes(root, shared_data, configs=configs, seed_for=fixed_seeds)
    run_in_process(nodes, train_spec("lr-a"))
    run_in_process(nodes, predict_spec("lr-p", "lr-a"))
    run_in_process(nodes, boost_spec("sb-a"))
    if rotate:
        for config in configs.values():
            shutil.copy(config.signing_key_path, old_key_path(config))
            write_signing_key(config.signing_key_path, force=True)
        nodes = make_nodes(root, shared_data, configs=configs, seed_for=fixed_seeds)
        run_in_process(nodes, train_spec("lr-b"))
    return AuditedJobs(root, configs)
