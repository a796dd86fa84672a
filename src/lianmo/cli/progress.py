"""Show a running job's progress: a live bar in a terminal, plain lines otherwise."""

from __future__ import annotations

import os
import shutil
import sys
import time
import typing as t
import unicodedata
from collections.abc import Mapping

from lianmo.transport.control import JobStatusInfo

_BAR = 28
HEARTBEAT_S = 30.0  # plain output: the longest silence while a step's detail still changes


class ProgressView:
    """Callable for :func:`lianmo.coordinator.run.run_job`'s ``on_progress``.

    On a terminal the live line is cut to the terminal's width (asked again at every
    redraw, so a resize is followed): a line that wrapped would leave the carriage
    return on its last row, and every redraw would add rows.

    Parameters
    ----------
    stream : text stream, optional
        Where to write; standard error by default.
    interactive : bool, optional
        Draw the live bar; by default when ``stream`` is a terminal.
    clock : callable, optional
        Seconds, for the elapsed time and the plain output's heartbeat.
    columns : callable, optional
        The terminal's width in columns; by default the width of ``stream``'s terminal.
    """

    def __init__(
        self,
        stream: t.TextIO | None = None,
        *,
        interactive: bool | None = None,
        clock: t.Callable[[], float] = time.monotonic,
        columns: t.Callable[[], int] | None = None,
    ) -> None:
        self._out = stream or sys.stderr
        self._tty = self._out.isatty() if interactive is None else interactive
        self._clock = clock
        self._columns = columns or (lambda: terminal_columns(self._out))
        self._last_line = ""
        self._last_key: tuple[str, int] = ("", -1)
        self._start = clock()
        self._last_written = self._start

    def __call__(self, statuses: Mapping[str, JobStatusInfo]) -> None:
        lead = self._lead(statuses)
        if lead is None:
            return
        now = self._clock()
        elapsed = now - self._start
        parts = [
            f"{name}: {s.state if s.state != 'running' else s.phase or 'starting'}"
            for name, s in statuses.items()
        ]
        details = [
            f"{s.detail}"
            for s in statuses.values()
            if s.detail and "loss" in s.detail and s.detail != lead.detail  # shown once
        ]
        frac = lead.step / lead.total_steps if lead.total_steps else 0.0
        if self._tty:
            filled = int(frac * _BAR)
            bar = "#" * filled + "-" * (_BAR - filled)
            loss = f" | {details[-1]}" if details else ""
            line = (
                f"[{lead.phase or 'prepare':>8}] [{bar}] {lead.step}/{lead.total_steps} "
                f"{lead.detail}{loss} | {elapsed:4.0f}s"
            )
            # one column spare: some terminals wrap as soon as the last column is written
            width = max(1, self._columns() - 1)
            line = fit_width(line, width)
            # blank what is left of a longer previous line, within this width
            blank = max(0, min(display_width(self._last_line), width) - display_width(line))
            self._out.write("\r" + line + " " * blank)
            self._last_line = line
        else:
            loss = details[-1] if details else ""
            # a line per phase and per tenth of it, and one at least every HEARTBEAT_S while
            # the detail moves inside a long step (alignment's chunks of 10M ids)
            key = (lead.phase, int(frac * 10))
            line = f"{lead.phase or 'prepare'} {lead.step}/{lead.total_steps} {lead.detail}"
            moved = line != self._last_line and now - self._last_written >= HEARTBEAT_S
            if key != self._last_key or moved:
                self._out.write(
                    f"[{elapsed:6.1f}s] {line}; {', '.join(parts)}"
                    + (f"; {loss}" if loss else "")
                    + "\n"
                )
                self._last_key = key
                self._last_line = line
                self._last_written = now
        self._out.flush()

    def close(self) -> None:
        """End the live line so later output starts on a fresh line."""
        if self._tty and self._last_line:
            self._out.write("\n")
            self._out.flush()

    @staticmethod
    def _lead(statuses: Mapping[str, JobStatusInfo]) -> JobStatusInfo | None:
        """The party whose progress stands for the job: the furthest-behind data party."""
        running = [s for s in statuses.values() if s.total_steps]
        if not running:
            return next(iter(statuses.values()), None)
        return min(running, key=lambda s: (s.phase != "train", s.step / s.total_steps))


def terminal_columns(stream: t.TextIO) -> int:
    """Return the width of the terminal ``stream`` writes to (else ``shutil``'s guess).

    :func:`shutil.get_terminal_size` asks standard output (or ``$COLUMNS``), which is not
    the progress stream's terminal when only standard output is redirected.
    """
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):  # not a real file, or not a terminal
        return shutil.get_terminal_size().columns


def display_width(text: str) -> int:
    """Return how many terminal columns ``text`` takes (wide East Asian characters take 2)."""
    return sum(_char_width(char) for char in text)


def fit_width(text: str, width: int) -> str:
    """Return the longest start of ``text`` that takes at most ``width`` columns."""
    used = 0
    for index, char in enumerate(text):
        used += _char_width(char)
        if used > width:
            return text[:index]
    return text


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
