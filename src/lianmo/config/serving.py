"""The ``[serving]`` table of a party config: the online scoring service (docs/serving.md).

Off unless ``listen`` is set. At a guest, ``peers`` gives each host's serving address and
``clients`` the certificate names that may ask for scores (a decision engine, the HTTP
front); a host answers only the guest that trained the model version it has promoted,
and about at most ``id_budget`` distinct ids per ``budget_window_s``.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from lianmo.config._read import ListOf, checked
from lianmo.config._rules import Interval, Name, Options, OrNone, Rule, Text, Where

#: what the guest answers for an id when a host does not answer in time: an error per id
#: ("none"), or for LR a score from the guest's part alone, the host's part taken at its
#: training mean and the score marked as a fallback ("guest_only")
FALLBACKS = ("none", "guest_only")
NAME = Name()


@dataclass(frozen=True, slots=True)
class PeerAddresses(Rule):
    """``[serving.peers]``: a host's party name mapped to its serving address."""

    expected: str = "a table mapping party names to 'host:port' serving addresses"

    def __call__(self, value: t.Any, at: Where) -> dict[str, str]:
        if not isinstance(value, dict):
            at.fail(value, self.expected, f"write it as [{at.path}] with NAME = 'host:port'")
        out = {}
        for name, address in value.items():
            NAME(name, Where(at.source, f"{at.path} key"))
            out[name] = Text("a string 'host:port'")(address, at.child(name))
        return out


@dataclass(frozen=True, slots=True)
class ServingConfig:
    """``[serving]``; see docs/serving.md for each key."""

    # the scoring port, mutual TLS (None: no online scoring at this node)
    listen: str | None = field(default=None, metadata=checked(OrNone(Text("a string 'host:port'"))))
    # at a guest: each host's serving address by party name
    peers: dict[str, str] = field(default_factory=dict, metadata=checked(PeerAddresses()))
    # certificate names that may ask this node for scores
    clients: tuple[str, ...] = field(
        default=(), metadata=checked(ListOf(NAME, "a list of certificate names"))
    )
    max_ids: int = field(default=1000, metadata=checked(Interval(int, 1, 10_000)))
    max_inflight: int = field(default=64, metadata=checked(Interval(int, 1, 1024)))
    # the time a guest gives its hosts when the request sets no deadline (and at most)
    deadline_ms: float = field(default=1000.0, metadata=checked(Interval(float, 1, 60_000)))
    fallback: str = field(default="none", metadata=checked(Options(FALLBACKS)))
    # at a host: for how long after a promotion it still answers for the version replaced
    # (the guest is promoted after its hosts with no failed request); 0: never
    handover_s: float = field(default=600.0, metadata=checked(Interval(float, 0, 86_400)))
    # how often the feature store and consent register are checked for a changed file
    refresh_s: float = field(default=5.0, metadata=checked(Interval(float, 0)))
    # how often consent validity (expiry) is recomputed
    consent_refresh_s: float = field(default=60.0, metadata=checked(Interval(float, 0)))
    # at a host: distinct ids a guest may ask about per window (0: no limit); enough for a
    # decision engine's day, far too few for a sweep of the whole population
    id_budget: int = field(default=100_000, metadata=checked(Interval(int, 0, 100_000_000)))
    # the budget's window: fixed windows from the Unix epoch (86400: UTC days)
    budget_window_s: float = field(
        default=86_400.0, metadata=checked(Interval(float, 1, 31 * 86_400))
    )


__all__ = ["FALLBACKS", "ServingConfig"]
