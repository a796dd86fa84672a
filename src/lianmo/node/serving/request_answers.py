"""The data-subject question for online scoring: "was customer X scored online, when, by whom?"

Answered from the party's request record (:mod:`lianmo.node.serving.request_log`): per
day file, the customer's salted hash under that day's salt is looked up in every line.
A line is **proven** when the seal log verifies (hash chain and signatures), its latest
seal of the day covers the line, the file still begins with the bytes that seal names
(same size, same sha256), and the day's salt is the one the seal committed to. A day
whose file was altered, whose salt is gone or that is not sealed yet (the node seals a
day when it ends and when it closes) is listed with the reason: nothing it says, and
nothing it fails to say, is proven. A day removed under ``[retention]
request_record_days`` is listed as pruned: the party can no longer tell.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from lianmo.config import PartyConfig
from lianmo.node.data_use import subject_key
from lianmo.node.serving.request_log import (
    SEALS_FILE,
    day_path,
    last_seals,
    pruned_days,
    read_salt,
    recorded_days,
    sealed_part_ok,
    seals_path,
)


@dataclass(frozen=True)
class OnlineUse:
    """How often one caller asked this party about the customer on one day, per model."""

    day: str
    call: str  # Score (this party is the guest) or Part (a host)
    caller: str
    model: str
    version: str
    times: int  # requests naming the customer
    answered: int  # of those, answered for the customer (a score, or the host's part)
    proven: bool
    evidence: str

    def to_json(self) -> dict[str, object]:
        return {
            "day": self.day,
            "call": self.call,
            "caller": self.caller,
            "model": self.model,
            "version": self.version,
            "times": self.times,
            "answered": self.answered,
            "proven": self.proven,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class OnlineAnswer:
    """The customer's online requests over every recorded day."""

    days: int  # day files read
    proven_days: int  # days whose whole file is proven
    uses: tuple[OnlineUse, ...]
    unproven: tuple[tuple[str, str], ...]  # (day, why it is not proven)
    pruned: tuple[tuple[str, str], ...] = ()  # (day, the record of its removal)

    def to_json(self) -> dict[str, object]:
        return {
            "days": self.days,
            "proven_days": self.proven_days,
            "scored": [u.to_json() for u in self.uses],
            "unproven_days": [{"day": d, "reason": r} for d, r in self.unproven],
            "pruned_days": [{"day": d, "evidence": e} for d, e in self.pruned],
        }


def online_answer(config: PartyConfig, customer: str) -> OnlineAnswer:
    """Every online request of ``config``'s party that named ``customer``, day by day."""
    seals, problem = last_seals(config)
    uses: list[OnlineUse] = []
    unproven: list[tuple[str, str]] = []
    days = recorded_days(config)
    proven_days = 0
    for day in days:
        path = day_path(config, day)
        salt = read_salt(config, day)
        if salt is None:
            unproven.append(
                (
                    day,
                    f"its salt is missing from {config.secrets_path}; it "
                    "cannot be answered from this party's records",
                )
            )
            continue
        body = path.read_bytes()
        covered, reason, evidence = 0, None, ""
        seal = seals.get(day)
        if problem is not None:
            reason = f"the seal log {seals_path(config)} does not verify: {problem}"
        elif seal is None:
            reason = (
                "not sealed yet: the node seals a day's file when the day ends and when it closes"
            )
        elif not sealed_part_ok(body, seal[1]):
            reason = (
                f"{path.name} is not the file the signed log sealed (record {seal[0]} of "
                f"{SEALS_FILE}): it was altered"
            )
        elif seal[1].get("salt_sha256") != hashlib.sha256(salt).hexdigest():
            reason = f"its salt is not the one record {seal[0]} of {SEALS_FILE} committed to"
        else:
            covered = int(str(seal[1]["bytes"]))
            evidence = (
                f"requests_sealed record {seal[0]} of the verified, signed log {seals_path(config)}"
            )
            if covered < len(body):
                reason = (
                    f"its last {len(body) - covered} bytes were written after its last seal "
                    f"(record {seal[0]}); they are proven once the node seals the day again"
                )
        if reason is None:
            proven_days += 1
        else:
            unproven.append((day, reason))
        uses += _uses(
            day,
            body,
            subject_key(salt, customer.strip().encode("utf-8")),
            covered,
            evidence,
            reason or "",
        )
    gone = [
        (day, f"requests_pruned record {seq} of {SEALS_FILE} ([retention] request_record_days)")
        for day, (seq, _) in sorted(pruned_days(config).items())
        if day not in days
    ]
    return OnlineAnswer(len(days), proven_days, tuple(uses), tuple(unproven), tuple(gone))


def _uses(
    day: str, body: bytes, key: str, covered: int, evidence: str, reason: str
) -> list[OnlineUse]:
    needle = key.encode()
    counts: dict[tuple[str, str, str, str, bool], list[int]] = {}
    end = 0
    for raw in body.splitlines(keepends=True):
        end += len(raw)
        if needle not in raw:
            continue
        try:
            line = json.loads(raw)
            ids, answered = list(line["ids"]), str(line["answered"])
            group = (str(line["call"]), str(line["caller"]), str(line["model"]))
            version = str(line["version"])
        except (ValueError, KeyError, TypeError):
            continue  # a line a crash cut short, or not a record: the seal check says so
        proven = end <= covered
        got = counts.setdefault((*group, version, proven), [0, 0])
        for j, k in enumerate(ids):
            if k == key:
                got[0] += 1
                got[1] += answered[j : j + 1] == "1"
    return [
        OnlineUse(
            day,
            call,
            caller,
            model,
            version,
            times,
            answered,
            proven,
            evidence if proven else (reason or "written after the last seal"),
        )
        for (call, caller, model, version, proven), (times, answered) in counts.items()
    ]


__all__ = ["OnlineAnswer", "OnlineUse", "online_answer"]
