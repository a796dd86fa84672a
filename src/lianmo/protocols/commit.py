"""The last step of a job: the guest tells everyone the job succeeded, then all keep outputs.

1. guest -> every other party : ``job.commit`` once its evaluation has succeeded

A party writes its model share only after this message, so no party keeps a share of a
job that failed at another party after its own last computation.
"""

from __future__ import annotations

from lianmo.protocols.context import RoleContext
from lianmo.wire.steps import JOB_COMMIT


def announce_commit(ctx: RoleContext) -> None:
    """Guest side: the job succeeded everywhere it can tell."""
    others = [*ctx.hosts, *([ctx.arbiter] if ctx.arbiter else [])]
    ctx.broadcast(JOB_COMMIT, others, "ok")


def await_commit(ctx: RoleContext) -> None:
    """Host and arbiter side: wait for the guest's commit before keeping any output."""
    ctx.recv(JOB_COMMIT, ctx.guest)
