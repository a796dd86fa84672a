"""The first step of every job: each party tells every other its audit signing key.

1. every party -> every other party : ``audit.signing_key``, its Ed25519 public key

Each party logs the keys it received, so a party's log is vouched for by its peers'
logs: ``lianmo audit verify`` checks that the key a party signed its records with is
the key every peer received from it over mutual TLS when the job started.
"""

from __future__ import annotations

from lianmo.protocols.context import RoleContext
from lianmo.wire.steps import AUDIT_SIGNING_KEY


def exchange_signing_keys(ctx: RoleContext, public_hex: str) -> dict[str, str]:
    """Send ``public_hex`` to every peer; return each peer's public signing key."""
    peers = ctx.channel.peers
    ctx.broadcast(AUDIT_SIGNING_KEY, peers, public_hex)
    return {peer: ctx.recv(AUDIT_SIGNING_KEY, peer) for peer in peers}
