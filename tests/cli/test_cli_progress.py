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


def test_plain_output_prints_one_line_per_tenth_with_the_latest_loss() -> None:
    out = io.StringIO()
    view = ProgressView(out, interactive=False)
    for step in range(0, 101):
        view({"g": _status("g", step), "a": _status("a", step, f"round loss {1 / (step + 1):.4f}")})
    lines = out.getvalue().splitlines()
    assert len(lines) == 11
    assert lines[0].split("] ", 1)[1].startswith("train 0/100")
    assert lines[-1].endswith("round loss 0.0099")
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


def test_plain_output_prints_a_moving_detail_inside_a_long_step_every_heartbeat() -> None:
    # alignment of 10M ids stays at step 0/2 for minutes while its detail counts chunks
    now = [0.0]
    out = io.StringIO()
    view = ProgressView(out, interactive=False, clock=lambda: now[0])
    for second in range(0, 100):
        now[0] = float(second)
        chunk = second // 5  # the detail moves every 5 s
        view({"g": _status("g", 0, f"{chunk} of 20 chunks sent")})
    lines = out.getvalue().splitlines()
    assert [line.split("] ", 1)[0] for line in lines] == [
        "[   0.0s",
        "[  30.0s",
        "[  60.0s",
        "[  90.0s",
    ]
    assert lines[1].split("] ", 1)[1].startswith("train 0/100 6 of 20 chunks sent")
    # a detail that stands still prints nothing more, however long it stands
    now[0] = 500.0
    view({"g": _status("g", 0, "18 of 20 chunks sent")})  # as printed at 90 s
    assert out.getvalue().splitlines() == lines
