"""One party's side of one job: the job kind by model type, or alignment alone.

Everything here is independent of how messages travel: it gets a :class:`RoleContext`
whose channel may be in-memory or gRPC. Outputs go to the job's folder in the party's
state directory and are written atomically (temporary file, fsync, rename), so nothing
half-written ever looks complete.
"""

from __future__ import annotations

from pathlib import Path

from lianmo.config import BoostSpec, JobSpec, LrSpec, ScorecardSpec
from lianmo.errors import ConfigError
from lianmo.node import boost_job, lr_job, scorecard_job
from lianmo.node.data_use import JobDataset
from lianmo.node.job_data import (
    JobOutcome,
    align_rows,
    load,
    model_path,
    write_ids,
)
from lianmo.node.kind import JobKind
from lianmo.node.share import share_format
from lianmo.protocols.context import RoleContext


def run_party_job(
    ctx: RoleContext,
    spec: JobSpec,
    dataset: JobDataset | None,
    job_dir: Path,
) -> JobOutcome:
    """Run this party's role of ``spec``; returns the summary for the coordinator."""
    role = spec.party(ctx.party).role
    outcome = JobOutcome(role=role, record=ctx.record)
    if role == "arbiter":
        if spec.task == "train":
            KINDS[type(spec.model)].witness(ctx, spec, outcome)
        return outcome  # scoring needs no key holder; the arbiter only acknowledges
    if dataset is None:
        raise ConfigError(f"party '{ctx.party}' is a {role} but has no data set for this job")
    if spec.task == "align":
        _align_job(ctx, spec, dataset, job_dir, outcome)
    elif spec.task == "predict":
        kind_of_share(model_path(job_dir, spec), ctx.party).predict(
            ctx, spec, dataset, job_dir, outcome
        )
    else:
        KINDS[type(spec.model)].train(ctx, spec, dataset, job_dir, outcome)
    return outcome


#: the job kind of each model type, by the job spec's model section
KINDS: dict[type, JobKind] = {
    LrSpec: lr_job.KIND,
    BoostSpec: boost_job.KIND,
    ScorecardSpec: scorecard_job.KIND,
}


def kind_of_share(path: Path, party: str) -> JobKind:
    """The job kind that wrote a stored model share, from the format the file declares."""
    fmt = share_format(path)
    for kind in KINDS.values():
        if fmt in kind.share.formats():
            return kind
    if not path.exists():
        raise ConfigError(
            f"party '{party}' has no model share at {path}: was model_job trained with "
            "this party, and did it succeed?"
        )
    raise ConfigError(
        f"party '{party}': {path} is not a model share this lianmo version can score with "
        f"(format {fmt!r}; known: {sorted(f for k in KINDS.values() for f in k.share.formats())})"
    )


def _align_job(
    ctx: RoleContext, spec: JobSpec, dataset: JobDataset, job_dir: Path, outcome: JobOutcome
) -> None:
    """Only align: every data party learns the common ids and keeps them, in row order."""
    with outcome.timed("load"):
        table = load(ctx, outcome.role, dataset, training=False)
    with outcome.timed("align"):
        rows = align_rows(ctx, outcome.role, spec, table, dataset)
    write_ids(job_dir / "aligned_ids.csv", table.ids[rows])
    # rows: the ids brought to alignment (a peer learns that size in PSI anyway), not the
    # table's size, which would tell the coordinator how many lacked consent
    offered = dataset.eligible(table.ids)
    outcome.summary.aligned = len(rows)
    outcome.summary.rows = len(table) if offered is None else len(offered)
