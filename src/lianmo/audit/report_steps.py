"""The audit report's table of messages by protocol step, named as the registry declares."""

from __future__ import annotations

from collections.abc import Iterable

from lianmo.audit.report_blocks import Block, Cell, Heading, Table
from lianmo.audit.verify import PartyLog
from lianmo.wire.steps import REGISTRY


def step_table(logs: Iterable[PartyLog]) -> list[Block]:
    """Messages and bytes per protocol step, in the order each step was first sent."""
    per_step: dict[str, list[int]] = {}
    for log in logs:
        for record in log.records:
            if record.get("kind") == "message" and record.get("direction") == "sent":
                count = per_step.setdefault(str(record.get("tag")), [0, 0])
                count[0] += 1
                size = record.get("size")
                count[1] += size if isinstance(size, int) and not isinstance(size, bool) else 0
    rows: list[tuple[Cell, ...]] = []
    for tag, (n, size) in per_step.items():
        step = REGISTRY.get(tag)
        who = "?" if step is None else step.direction()
        carries = "not a step of this lianmo version" if step is None else step.carries
        rows.append((tag, who, carries, str(n), f"{size:,}"))
    return [
        Heading("Messages by protocol step", level=2),
        Table(
            ("step", "from → to", "carries", "messages", "bytes"),
            rows,
            frozenset({3, 4}),
            "Steps as declared in lianmo/wire/steps.py, in the order they were first sent.",
        ),
    ]
