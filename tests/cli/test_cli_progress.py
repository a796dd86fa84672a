"""Progress display: a live bar on a terminal, throttled plain lines otherwise."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import termios

import pytest

from lianmo.cli.progress import ProgressView, display_width, fit_width, terminal_columns
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
    view = ProgressView(out, interactive=True, columns=lambda: 200)
    view({"g": _status("g", 50)})
    view({"g": _status("g", 100)})
    view.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[" + "#" * 14 + "-" * 14 + "]" in text
    assert "#" * 28 in text


def test_plain_output_prints_a_moving_detail_inside_a_long_step_every_heartbeat() -> None:
    # a long step (e.g. one epoch of a 10M-row job) keeps its step while the detail moves
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


LONG = "round loss 0.123456 " + "x" * 200


def _redraws(text: str) -> list[str]:
    """What each carriage-return redraw of the live line wrote."""
    assert text.startswith("\r")
    return text[1:].removesuffix("\n").split("\r")


@pytest.mark.parametrize("columns", [20, 60, 80, 120])
def test_terminal_lines_are_cut_to_the_terminal_width(columns: int) -> None:
    out = io.StringIO()
    view = ProgressView(out, interactive=True, columns=lambda: columns)
    view({"g": _status("g", 10, LONG), "a": _status("a", 10, LONG)})
    view({"g": _status("g", 20, "short")})
    view.close()
    redraws = _redraws(out.getvalue())
    assert len(redraws) == 2
    assert "\n" not in "".join(redraws)
    # a spare column: writing the last one makes some terminals wrap
    assert [len(r) for r in redraws] == [columns - 1, columns - 1]
    assert redraws[0].startswith("[   train] "[: columns - 1])
    if columns > 70:  # the shorter line fits: it blanks what is left of the longer one
        assert re.search(r" 20/100 short \|    0s {5,}$", redraws[1])


def test_terminal_width_is_asked_at_every_redraw() -> None:
    width = [100]
    out = io.StringIO()
    view = ProgressView(out, interactive=True, columns=lambda: width[0])
    view({"g": _status("g", 10, LONG)})
    width[0] = 30  # the window was made narrower
    view({"g": _status("g", 20, LONG)})
    assert [len(r) for r in _redraws(out.getvalue())] == [99, 29]


def test_wide_characters_count_two_columns() -> None:
    out = io.StringIO()
    view = ProgressView(out, interactive=True, columns=lambda: 51)
    view({"g": _status("g", 10, "联邦学习" * 20)})
    (redraw,) = _redraws(out.getvalue())
    # 49 ASCII columns, then a 2-column character that does not fit in the 50th
    assert redraw.endswith(" 10/100 ") and display_width(redraw) == len(redraw) == 49
    assert fit_width("联邦ab", 3) == "联" and fit_width("联邦ab", 6) == "联邦ab"
    assert display_width("e\u0301") == 1  # a combining accent takes no column


def test_plain_output_is_not_cut() -> None:
    out = io.StringIO()
    view = ProgressView(out, interactive=False, columns=lambda: 20)
    view({"g": _status("g", 10, LONG)})
    (line,) = out.getvalue().splitlines()
    assert line == f"[   0.0s] train 10/100 {LONG}; g: train"  # as long as it is, loss once


def test_a_stream_that_is_no_terminal_falls_back_to_shutils_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "33")
    assert terminal_columns(io.StringIO()) == 33


def test_a_real_terminal_is_detected_and_its_width_used() -> None:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 57, 0, 0))
    try:
        with open(follower, "w", encoding="utf-8", closefd=False) as stream:
            view = ProgressView(stream)  # a terminal: the live bar, cut to its 57 columns
            view({"g": _status("g", 10, LONG)})
        written = os.read(leader, 4096).decode()
    finally:
        os.close(leader)
        os.close(follower)
    assert written.startswith("\r[   train] [##") and len(written) == 1 + 56
