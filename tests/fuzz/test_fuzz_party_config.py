"""Fuzz the party config decoder ``PartyConfig.load`` with arbitrary and mutated TOML.

Whatever the text, loading fails with :class:`ConfigError` only. Mutated configs are
written by the small TOML writer below (``tomli_w`` is not a dependency).
"""

from __future__ import annotations

import math
import typing as t
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from lianmo.config import PartyConfig
from lianmo.errors import ConfigError
from tests.fuzz.strategies import FIELD_NAMES, HUGE, mutated, values, write

FUZZ = settings(max_examples=250, deadline=None)

PARTY: dict[str, t.Any] = {
    "name": "broker",
    "listen": "127.0.0.1:0",
    "state_dir": "state",
    "coordinators": ["coordinator", "ops"],
    "max_message_mb": 64,
    "recv_timeout_s": 30.0,
    "tls": {"cert": "c.pem", "key": "c.key", "ca": "ca.pem"},
    "datasets": {
        "credit": {"path": "data/credit.csv", "id_column": "client_id", "label_column": "y"}
    },
    "compute": {"backend": "local", "workers": 2},
    "audit": {"signing_key": "s.key", "level": "chain"},
}


def _toml_value(value: t.Any) -> str | None:
    """``value`` as an inline TOML value; None (TOML has no null) is left out."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return hex(abs(value)) if abs(value) > 10**4000 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return {math.inf: "inf", -math.inf: "-inf"}.get(value, repr(value))
    if isinstance(value, str):
        escaped = "".join(
            f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c
            for c in value
        )
        return f'"{escaped}"'
    if isinstance(value, list):
        items = [v for v in map(_toml_value, value) if v is not None]
        return "[" + ", ".join(items) + "]"
    pairs = [(k, _toml_value(v)) for k, v in value.items()]
    return "{" + ", ".join(f"{_toml_value(str(k))} = {v}" for k, v in pairs if v is not None) + "}"


def _toml(data: dict[str, t.Any]) -> str:
    lines = [(_toml_value(str(k)), _toml_value(v)) for k, v in data.items()]
    return "".join(f"{k} = {v}\n" for k, v in lines if v is not None)


def _load_party(files: Path, text: str | bytes) -> PartyConfig | None:
    try:
        return PartyConfig.load(write(files / "party.toml", text))
    except ConfigError as exc:
        assert str(files / "party.toml") in str(exc), exc  # every refusal names the file
        return None


def test_the_base_party_config_is_valid(files: Path) -> None:
    config = _load_party(files, _toml(PARTY))
    assert config is not None
    assert config.dataset("credit").path == files / "data/credit.csv"
    assert (config.compute_workers, config.audit_level) == (2, "chain")


BASE_TOML = _toml(PARTY)


@FUZZ
@given(mutated(PARTY))
@example({**PARTY, "datasets": "abc"})  # dict("abc") raised ValueError
@example({**PARTY, "datasets": 5})  # dict(5) raised TypeError
@example({**PARTY, "name": HUGE})  # repr() in the error message raised ValueError
@example({**PARTY, "max_message_mb": HUGE})
@example({**PARTY, "recv_timeout_s": math.nan})  # NaN passed the bound
@example({**PARTY, "recv_timeout_s": math.inf})
@example({**PARTY, "compute": {"backend": "local", "workers": math.inf}})
def test_mutated_party_configs_load_or_raise_config_error(
    files: Path, raw: dict[str, t.Any]
) -> None:
    config = _load_party(files, _toml(raw))
    if config is not None:
        assert config.name == raw["name"] and config.state_dir == files / raw["state_dir"]
        assert math.isfinite(config.recv_timeout_s) and config.max_message_mb < 2**63


toml_lines = st.lists(
    st.tuples(st.sampled_from(FIELD_NAMES), values.map(_toml_value)).map(
        lambda kv: f"{kv[0]} = {kv[1]}\n"
    ),
    max_size=6,
).map("".join)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        toml_lines,
        toml_lines.map(lambda extra: extra + BASE_TOML),
    )
)
@example("max_message_mb = " + "1" * 5000 + "\n" + BASE_TOML)  # tomllib's int() raised
@example("x = " + "[" * 5000)  # RecursionError in tomllib
@example(b"\xff" + BASE_TOML.encode())  # UnicodeDecodeError
def test_arbitrary_party_toml_is_a_config_error(files: Path, text: str | bytes) -> None:
    _load_party(files, text)
