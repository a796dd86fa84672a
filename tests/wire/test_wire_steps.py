"""The registry of protocol steps: declared once, used for every message, true to the docs."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from lianmo.crypto import Drbg, generate_keypair
from lianmo.errors import ProtocolError, UnexpectedMessageError
from lianmo.protocols.context import RoleContext
from lianmo.transport.envelope import Envelope
from lianmo.transport.inbox import Inbox
from lianmo.transport.memory import MemoryHub
from lianmo.transport.messages import IndexList, Signal
from lianmo.transport.serde import encode_payload
from lianmo.wire import steps
from lianmo.wire.step import Expect, Step

SRC = Path(__file__).resolve().parents[2] / "src" / "lianmo"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocols.md"
BEGIN, END = "<!-- steps:begin -->", "<!-- steps:end -->"


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(func: ast.expr) -> str:
    return ast.unparse(func)


def test_steps_are_made_only_in_the_registry_and_messages_go_only_through_steps() -> None:
    made, raw = [], []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for call in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            name = _name(call.func)
            if name in ("Step", "step.Step") and rel not in ("wire/steps.py", "wire/step.py"):
                made.append(f"{rel}:{call.lineno}")
            if name.endswith(("channel.send", "channel.recv", "channel.broadcast")):
                if rel != "protocols/context.py":
                    raw.append(f"{rel}:{call.lineno} {name}")
    assert not made, f"steps declared outside lianmo/wire/steps.py: {made}"
    assert not raw, f"messages sent or received without a step: {raw}"


def test_every_declared_step_is_in_the_registry() -> None:
    declared = []
    for value in vars(steps).values():
        if isinstance(value, Step):
            declared.append(value)
        elif isinstance(value, steps.RouteSteps):
            declared.extend(value)
    assert len(declared) == len(steps.REGISTRY) > 35
    assert all(step.tag in steps.REGISTRY for step in declared)
    assert all(steps.REGISTRY.get(s.tag) is s for s in declared)


def test_the_docs_message_table_is_the_registry() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"{DOCS} lost its generated step table markers"
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip() + "\n"
    assert table == steps.markdown_table(), (
        "docs/protocols.md's message table differs from lianmo/wire/steps.py; regenerate "
        "it with: python -c 'from lianmo.wire.steps import markdown_table as m; print(m())'"
    )


def test_a_tag_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'lr.loss' is declared twice"):
        steps.Registry([steps.LR_LOSS, steps.LR_LOSS])


def test_describe_names_the_step_and_an_unknown_tag() -> None:
    assert steps.describe("lr.masked_gradient") == (
        "'lr.masked_gradient' (guest or host → arbiter: [[X_pᵀ 4d + r_p]], masked)"
    )
    assert steps.describe("lr.bogus") == "'lr.bogus' (not a step of this lianmo version)"


# ---- the screen on the receive path ---------------------------------------------------


def _env(tag: str, payload: object, sender: str = "broker", receiver: str = "platform") -> Envelope:
    payload_type, data = encode_payload(payload)  # type: ignore[arg-type]
    return Envelope.build(
        job_id="j",
        round=0,
        tag=tag,
        sender=sender,
        receiver=receiver,
        seq=0,
        payload_type=payload_type,
        payload=data,
    )


def _screened_inbox() -> Inbox:
    roles = {"broker": "guest", "platform": "host", "arbiter": "arbiter"}

    def screen(env: Envelope) -> None:
        steps.REGISTRY.screen(env, roles[env.sender], roles[env.receiver])

    return Inbox("j", "platform", roles, screen=screen)


@pytest.mark.parametrize(
    ("tag", "payload", "sender", "match"),
    [
        ("lr.bogus", Signal("x"), "broker", "has a tag no lianmo protocol step uses"),
        (
            "lr.gradient",
            Signal("x"),
            "broker",
            r"'lr.gradient' from 'broker' \(guest\) to 'platform' \(host\) is not a step of any "
            r"lianmo protocol: it goes arbiter → guest or host",
        ),
        (
            "lr.epoch_end",
            IndexList(b""),
            "arbiter",
            "carries lianmo.v1.IndexList, but 'lr.epoch_end' carries lianmo.v1.Signal",
        ),
    ],
    ids=["unknown-tag", "misdirected", "wrong-payload-type"],
)
def test_the_inbox_screen_refuses_what_no_step_allows(
    tag: str, payload: object, sender: str, match: str
) -> None:
    inbox = _screened_inbox()
    with pytest.raises(UnexpectedMessageError, match=match):
        inbox.put(_env(tag, payload, sender=sender))
    assert inbox.position() == {"arbiter": 0, "broker": 0}
    assert inbox.arrived("broker") == 0 and inbox.arrived("arbiter") == 0
    assert not inbox.put(_env("lr.epoch_end", Signal("epoch_end", "stop"), sender="arbiter"))
    assert inbox.arrived("arbiter") == 1


# ---- sending and receiving through steps ------------------------------------------------


def _contexts() -> dict[str, RoleContext]:
    hub = MemoryHub("j", ["g", "h", "a"])
    return {
        name: RoleContext(
            job_id="j",
            party=name,
            channel=hub.channel(name),
            rng=Drbg(bytes(32), name),
            guest="g",
            hosts=("h",),
            arbiter="a",
        )
        for name in ("g", "h", "a")
    }


def test_a_party_cannot_send_a_step_of_another_role() -> None:
    ctx = _contexts()
    with pytest.raises(UnexpectedMessageError, match=r"'lr.gradient' from 'h' \(host\) to 'g'"):
        ctx["h"].send(steps.LR_GRADIENT, "g", None)  # type: ignore[arg-type]
    with pytest.raises(UnexpectedMessageError, match=r"'sb.gh' from 'a' \(arbiter\)"):
        ctx["g"].recv(steps.SB_GH, "a")


def test_received_values_go_through_the_steps_check() -> None:
    ctx = _contexts()
    ctx["g"].send(steps.SB_PLAN, "h", 300)
    with pytest.raises(
        ProtocolError, match=r"'sb.plan' as 'outputs' = 300, expected 'outputs' from 1 to 256"
    ):
        ctx["h"].recv(steps.SB_PLAN, "g")
    ctx["g"].send(steps.SB_SAMPLE, "h", np.array([1, 3, 3]))
    with pytest.raises(ProtocolError, match="'sb.sample' with an index repeated"):
        ctx["h"].recv(steps.SB_SAMPLE, "g", below=5)
    ctx["a"].broadcast(steps.LR_EPOCH_END, ["g", "h"], "stop")
    assert ctx["g"].recv(steps.LR_EPOCH_END, "a") == "stop"
    assert ctx["h"].recv(steps.LR_EPOCH_END, "a") == "stop"
    with pytest.raises(ValueError, match="'maybe' is not one of"):
        ctx["a"].send(steps.LR_EPOCH_END, "g", "maybe")


def test_a_ciphertext_at_another_exponent_is_refused() -> None:
    public, _ = generate_keypair(512, Drbg(b"k" * 32, "t"), insecure_test_size=True)
    ctx = _contexts()
    wrong = public.encrypt_ints([5], steps.LR_U_EXP, Drbg(b"e" * 32, "t"))
    ctx["g"].channel.send("a", steps.LR_LOSS.tag, steps.LR_LOSS.encode(wrong))
    with pytest.raises(ProtocolError, match="'lr.loss' at fixed-point exponent -6, expected -9"):
        ctx["a"].recv(steps.LR_LOSS, "g", key=public, count=1)


def test_a_wrong_payload_type_is_refused_by_the_step() -> None:
    with pytest.raises(ProtocolError, match="sent Signal as 'sb.nodes', expected IndexList"):
        steps.SB_NODES.decode(Signal("x"), "g", Expect())
