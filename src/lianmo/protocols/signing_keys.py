"""The first step of every job: each party tells every other its audit signing key.

1. every party -> every other party : ``audit.signing_key``, its Ed25519 public key

Each party logs the keys it received, so a party's log is vouched for by its peers'
logs: ``lianmo audit verify`` checks that the key a party signed its records with is
the key every peer received from it over mutual TLS when the job started.
"""

from __future__ import annotations

import re

from lianmo.errors import ProtocolError
from lianmo.protocols.context import RoleContext
from lianmo.transport.messages import Signal

TAG = "audit.signing_key"
ALGORITHM = "ed25519"
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


def exchange_signing_keys(ctx: RoleContext, public_hex: str) -> dict[str, str]:
    """Send ``public_hex`` to every peer; return each peer's public signing key."""
    peers = ctx.channel.peers
    ctx.channel.broadcast(peers, TAG, Signal(ALGORITHM, public_hex))
    keys = {}
    for peer in peers:
        msg = ctx.channel.recv(peer, TAG)
        if not isinstance(msg, Signal) or msg.name != ALGORITHM or not _KEY_RE.match(msg.value):
            raise ProtocolError(
                f"party '{peer}' sent '{TAG}' that is not an Ed25519 public key in hex; "
                "it runs an incompatible lianmo version"
            )
        keys[peer] = msg.value
    return keys
