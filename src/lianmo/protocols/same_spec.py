"""Before any data-dependent message, every party confirms it holds the same job spec.

1. every party -> every other party : ``job.spec_digest``, sha256 of the spec it holds
2. every party : each digest received must equal its own; otherwise it stops

A coordinator prepares each party separately, so nothing but this step shows that the
parties agreed on the same peers, roles and settings (an honest guest's minimum
intersection, say, next to a host told a lower one). Each party compares only after it
has every peer's digest, so no peer's send fails on a party that already stopped; and
since a mismatch is seen by both sides of it, every party stops before alignment.
"""

from __future__ import annotations

from lianmo.errors import PolicyError
from lianmo.protocols.context import RoleContext
from lianmo.wire.steps import JOB_SPEC_DIGEST


def confirm_same_spec(ctx: RoleContext, digest: str) -> None:
    """Send this party's spec ``digest`` to every peer; PolicyError if any peer's differs."""
    peers = ctx.channel.peers
    ctx.broadcast(JOB_SPEC_DIGEST, peers, digest)
    theirs = {peer: ctx.recv(JOB_SPEC_DIGEST, peer) for peer in peers}
    differ = sorted(peer for peer, other in theirs.items() if other != digest)
    if differ:
        shown = ", ".join(f"'{p}' holds {theirs[p][:12]}…" for p in differ)
        raise PolicyError(
            f"party '{ctx.party}' holds job spec {digest[:12]}… of job '{ctx.job_id}', but "
            f"{shown}: the parties were prepared with different specs, so the job stops "
            "before any data is exchanged; the coordinator must cancel it and submit one "
            "spec to every party under a new job_id"
        )
