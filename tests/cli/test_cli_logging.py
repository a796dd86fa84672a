"""Logging set-up of lianmo commands: $LIANMO_LOG_LEVEL, $LIANMO_LOG_FORMAT (text or JSON)."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from lianmo.cli.logs import configure_logging
from lianmo.cli.main import main
from lianmo.errors import ConfigError


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.mark.parametrize(
    ("environ", "default", "verbose", "level"),
    [
        ({}, "WARNING", False, logging.WARNING),
        ({}, "INFO", False, logging.INFO),  # lianmo party serve
        ({"LIANMO_LOG_LEVEL": "error"}, "INFO", False, logging.ERROR),
        ({"LIANMO_LOG_LEVEL": " DEBUG "}, "WARNING", False, logging.DEBUG),
        ({"LIANMO_LOG_LEVEL": ""}, "INFO", False, logging.INFO),
        ({"LIANMO_LOG_LEVEL": "ERROR"}, "INFO", True, logging.DEBUG),  # -v wins
    ],
)
def test_the_level_comes_from_the_environment_or_the_commands_default(
    environ: dict[str, str], default: str, verbose: bool, level: int
) -> None:
    stream = io.StringIO()
    setup = configure_logging(
        default_level=default, verbose=verbose, environ=environ, stream=stream
    )
    assert setup.level == level and logging.getLogger().level == level
    logging.getLogger("lianmo.node").info("an info line")
    logging.getLogger("lianmo.node").warning("a warning line")
    lines = _lines(stream)
    assert any("a warning line" in x for x in lines) == (level <= logging.WARNING)
    assert any("an info line" in x for x in lines) == (level <= logging.INFO)


def test_json_logs_are_one_object_per_line_with_the_job_id() -> None:
    stream = io.StringIO()
    setup = configure_logging(
        default_level="INFO", environ={"LIANMO_LOG_FORMAT": "JSON"}, stream=stream
    )
    assert setup.json
    log = logging.getLogger("lianmo.node")
    log.info("job %s prepared", "j-7", extra={"job_id": "j-7"})
    log.warning('no job here: a message with "quotes"\nand a newline')
    try:
        raise KeyError("boom")
    except KeyError:
        log.exception("job %s failed", "j-8", extra={"job_id": "j-8"})
    # a record logged inside a job's thread (any module) carries that job's id
    inside = threading.Thread(
        target=lambda: logging.getLogger("lianmo.protocols").info("a step"), name="job-j-9"
    )
    inside.start()
    inside.join()
    records = [json.loads(line) for line in _lines(stream)]
    assert len(records) == 4
    first, second, third, fourth = records
    assert set(first) == {"time", "level", "logger", "message", "job_id"}
    assert first["level"] == "INFO" and first["logger"] == "lianmo.node"
    assert first["message"] == "job j-7 prepared" and first["job_id"] == "j-7"
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert "job_id" not in second and second["message"].endswith('"quotes"\nand a newline')
    assert third["job_id"] == "j-8" and "KeyError: 'boom'" in third["exception"]
    assert fourth["job_id"] == "j-9" and fourth["logger"] == "lianmo.protocols"


def test_text_logs_by_default_and_a_second_set_up_replaces_the_first() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(environ={"LIANMO_LOG_FORMAT": "json"}, stream=first)
    setup = configure_logging(default_level="INFO", environ={}, stream=second)
    assert not setup.json
    logging.getLogger("lianmo.node").info("job j-1 started by coordinator")
    assert first.getvalue() == ""
    (line,) = _lines(second)
    assert line.endswith(" lianmo.node INFO job j-1 started by coordinator")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LIANMO_LOG_LEVEL": "LOUD"}, r"\$LIANMO_LOG_LEVEL is 'LOUD'; set it to one of DEBUG"),
        ({"LIANMO_LOG_FORMAT": "xml"}, r"\$LIANMO_LOG_FORMAT is 'xml'; set it to one of text"),
    ],
)
def test_a_bad_setting_is_a_config_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        configure_logging(environ=environ, stream=io.StringIO())


def test_a_bad_setting_stops_any_command_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIANMO_LOG_LEVEL", "chatty")
    with pytest.raises(SystemExit) as info:
        main(["certs", "signing-key", "/nonexistent/never-written.key"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lianmo: error: $LIANMO_LOG_LEVEL is 'chatty'; set it to one of DEBUG, INFO, "
        "WARNING, ERROR, CRITICAL (or unset it)"
    ]
