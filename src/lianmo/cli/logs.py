"""Logging of lianmo commands: the level and format from the environment, to stderr.

``LIANMO_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR, CRITICAL) sets the level: by default
INFO for ``lianmo party serve`` and WARNING for every other command; ``-v`` means DEBUG.
``LIANMO_LOG_FORMAT`` is ``text`` (default) or ``json``: one JSON object per line with
``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``job_id`` when the record
concerns a job, and ``exception`` when it carries a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from lianmo.errors import ConfigError

LEVEL_ENV = "LIANMO_LOG_LEVEL"
FORMAT_ENV = "LIANMO_LOG_FORMAT"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
# A node runs each job in a thread of this name (lianmo.node.service), so a record logged
# by any module inside a job is tagged with its job id.
JOB_THREAD_PREFIX = "job-"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id:
            out["job_id"] = job_id
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class JobIdFilter(logging.Filter):
    """Give a record logged in a job's thread that job's id, unless it names one itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "job_id", None) and record.threadName:
            if record.threadName.startswith(JOB_THREAD_PREFIX):
                record.job_id = record.threadName[len(JOB_THREAD_PREFIX) :]
        return True


@dataclass(frozen=True, slots=True)
class LogSetup:
    """What :func:`configure_logging` chose."""

    level: int
    json: bool


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs (and replaces when called again)."""


def configure_logging(
    *,
    default_level: str = "WARNING",
    verbose: bool = False,
    environ: Mapping[str, str] = os.environ,
    stream: t.TextIO | None = None,
) -> LogSetup:
    """Send lianmo's log records to ``stream`` (stderr) at the chosen level and format.

    Parameters
    ----------
    default_level : str
        The level when ``LIANMO_LOG_LEVEL`` is unset or empty.
    verbose : bool
        ``-v``: DEBUG, whatever the environment says.
    environ : mapping
        Where to read ``LIANMO_LOG_LEVEL`` and ``LIANMO_LOG_FORMAT``.
    stream : text stream, optional
        Where records go (default: ``sys.stderr``).

    Returns
    -------
    LogSetup
        The level set, and whether records are JSON.

    Raises
    ------
    ConfigError
        If either variable holds a value it does not accept.
    """
    raw_level = environ.get(LEVEL_ENV, "").strip()
    level = "DEBUG" if verbose else (raw_level.upper() or default_level)
    if level not in LEVELS:
        raise ConfigError(
            f"${LEVEL_ENV} is {raw_level!r}; set it to one of {', '.join(LEVELS)} (or unset it)"
        )
    raw_format = environ.get(FORMAT_ENV, "").strip()
    kind = raw_format.lower() or "text"
    if kind not in FORMATS:
        raise ConfigError(
            f"${FORMAT_ENV} is {raw_format!r}; set it to one of {', '.join(FORMATS)} (or unset it)"
        )
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(JobIdFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return LogSetup(level=logging.getLevelNamesMapping()[level], json=kind == "json")
