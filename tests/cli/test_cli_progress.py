"""Progress display: a live bar on a terminal, throttled plain lines otherwise."""

from __future__ import annotations

import io

from lianmo.cli.progress import ProgressView
from lianmo.transport.control import JobStatusInfo


def _status(party: str, step: int, detail: str = "", state: str = "running") -> JobStatusInfo:
    return JobStatusInfo(
        job_id="j",
        party=party,
        state=state,
        phase="train",
        step=step,
        total_steps=100,
        detail=detail,
    )


def test_plain_output_prints_one_line_per_tenth_and_per_new_loss() -> None:
    out = io.StringIO()
    view = ProgressView(out, interactive=False)
    for step in range(0, 101):
        view({"g": _status("g", step), "a": _status("a", step)})
    view({"g": _status("g", 100), "a": _status("a", 100, "epoch 1 loss 0.5")})
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 13
    assert lines[0].split("] ", 1)[1].startswith("train 0/100")
    assert "epoch 1 loss 0.5" in lines[-1]
    assert "\r" not in out.getvalue()


def test_terminal_output_redraws_one_line_with_a_bar() -> None:
    out = io.StringIO()
    view = ProgressView(out, interactive=True)
    view({"g": _status("g", 50)})
    view({"g": _status("g", 100)})
    view.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[" + "#" * 14 + "-" * 14 + "]" in text
    assert "#" * 28 in text
