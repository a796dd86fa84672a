"""The ``[policy]`` table of a party config: what jobs this node accepts, whoever submits them.

A coordinator chooses who takes part in a job and its privacy settings; a node trusts no
coordinator blindly. Its policy names the peers it accepts per role (above all which
arbiters may hold a job's Paillier key), the tasks it runs, the floors and caps a job's
spec must respect, the largest set a peer may bring to alignment, and who may score with
its model shares. ``lianmo.node.policy`` applies it when a job is prepared.

Defaults keep every shipped example working and protect what a coordinator alone could
otherwise weaken: an arbiter must be one of the node's ``coordinators`` unless listed,
intersections below 100 ids are refused, and only the guest that trained a model may
score with it.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from lianmo.config._read import ListOf, checked
from lianmo.config._rules import NAME_RE, Interval, Name, Options, OrNone, Rule, Where
from lianmo.config.job import TASKS
from lianmo.config.model import MIN_KEY_BITS

#: a peer list entry that accepts any party certified by the federation's CA
ANY_PEER = "*"
NAME = Name()


@dataclass(frozen=True, slots=True)
class PeerName(Rule):
    """A party's certificate name, or ``"*"`` for any party the CA certified."""

    expected: str = f"a party name or {ANY_PEER!r} (any party certified by the CA)"

    def __call__(self, value: t.Any, at: Where) -> t.Any:
        if not isinstance(value, str) or not (value == ANY_PEER or NAME_RE.fullmatch(value)):
            at.fail(value, self.expected, "write the name in the party's certificate")
        return value


PEERS = ListOf(PeerName(), f"a list of party names, or [{ANY_PEER!r}] for any")
TASK_LIST = ListOf(Options(TASKS), f"a list of tasks from {list(TASKS)}")


@dataclass(frozen=True, slots=True)
class TasksByCoordinator(Rule):
    """``[policy.coordinator_tasks]``: a coordinator's name mapped to the tasks it may submit."""

    expected: str = "a table mapping coordinator names to lists of tasks"

    def __call__(self, value: t.Any, at: Where) -> dict[str, tuple[str, ...]]:
        if not isinstance(value, dict):
            at.fail(value, self.expected, f"write it as [{at.path}] with NAME = [tasks]")
        out = {}
        for name, tasks in value.items():
            NAME(name, Where(at.source, f"{at.path} key"))
            out[name] = TASK_LIST(tasks, at.child(name))
        return out


@dataclass(frozen=True, slots=True)
class NodePolicy:
    """What this node accepts in a job; see docs/policy.md for each key and why."""

    guests: tuple[str, ...] = field(default=(ANY_PEER,), metadata=checked(PEERS))
    hosts: tuple[str, ...] = field(default=(ANY_PEER,), metadata=checked(PEERS))
    # None: the names in the node's top-level `coordinators` (they already submit its jobs)
    arbiters: tuple[str, ...] | None = field(default=None, metadata=checked(OrNone(PEERS)))
    tasks: tuple[str, ...] = field(default=TASKS, metadata=checked(TASK_LIST))
    # narrower task lists for some coordinators (e.g. one that may only align); a
    # coordinator not named here may submit any of `tasks`
    coordinator_tasks: dict[str, tuple[str, ...]] = field(
        default_factory=dict, metadata=checked(TasksByCoordinator())
    )
    # floors (and a cap) on the spec: below them a job could single people out
    min_intersection: int = field(default=100, metadata=checked(Interval(int, 1)))
    min_batch_size: int = field(default=64, metadata=checked(Interval(int, 1)))
    min_child_weight: float = field(default=1.0, metadata=checked(Interval(float, 0)))
    max_depth: int = field(default=6, metadata=checked(Interval(int, 1, 16)))
    min_key_bits: int = field(default=MIN_KEY_BITS, metadata=checked(Interval(int, MIN_KEY_BITS)))
    # scorecards: the smallest share of rows a bin whose WOE a host learns may hold
    min_bin_share: float = field(default=0.02, metadata=checked(Interval(float, 0, 0.5)))
    # the most ids a peer may bring to alignment (checked when it announces its set size)
    max_peer_set: int = field(default=10_000_000, metadata=checked(Interval(int, 1)))
    # guests besides the training guest that may score with this party's model shares
    predict_guests: tuple[str, ...] = field(
        default=(), metadata=checked(ListOf(NAME, "a list of party names"))
    )

    def tasks_of(self, coordinator: str | None) -> tuple[str, ...]:
        """The tasks ``coordinator`` may submit: ``tasks``, narrowed by ``coordinator_tasks``."""
        narrowed = self.coordinator_tasks.get(coordinator or "", self.tasks)
        return tuple(task for task in self.tasks if task in narrowed)

    def accepted(self, role: str, coordinators: tuple[str, ...]) -> tuple[str, ...]:
        """The names this node accepts as a peer in ``role`` (``"*"``: any)."""
        if role == "arbiter":
            return self.arbiters if self.arbiters is not None else coordinators
        return self.guests if role == "guest" else self.hosts


__all__ = ["ANY_PEER", "NodePolicy"]
