"""The constraints config fields declare, and the one error format they all share.

A config field carries its rule in its metadata (see ``_read.checked``); the rule checks
a value as read from TOML, YAML or JSON and returns it, converted where the dataclass
wants another type (a tuple, a resolved path). Every refusal names the key by its path
(``model.batch_size``, ``datasets.credit.id_column``), the value received, what was
expected and the fix, in the spirit of scikit-learn's ``_parameter_constraints``.
"""

from __future__ import annotations

import abc
import difflib
import math
import re
import typing as t
from dataclasses import dataclass, is_dataclass, replace
from pathlib import Path

from lianmo.errors import ConfigError

#: Largest integer a config field takes: seeds and counts stay int64 and print as JSON.
MAX_INT = 2**63 - 1
# fullmatch: '$' would allow "name\n"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class _Required:
    """The default of a key that has none: it must be given."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: t.Final = _Required()


def shown(value: t.Any) -> str:
    """``repr(value)``, cut to 200 characters, for an error message.

    An int of over 4300 digits, even inside a list, has no repr: ValueError.
    """
    try:
        text = repr(value)
    except ValueError:
        kind = type(value).__name__
        return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} holding an integer too large to print"
    return text if len(text) <= 200 else f"{text[:200]}..."


def literal(value: t.Any) -> str:
    """A default as the config file spells it: ``true``, ``'train'``, ``['coordinator']``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return shown(list(value))
    return shown(value)


def did_you_mean(word: t.Any, choices: t.Iterable[str]) -> str | None:
    """The closest of ``choices`` to a misspelt ``word``, if one is close."""
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


@dataclass(frozen=True, slots=True)
class Where:
    """Where a value sits: the file it came from, its key's path, and that key's default."""

    source: str
    path: str = ""
    default: t.Any = REQUIRED
    #: relative file paths in the config are resolved against this folder
    base: Path | None = None
    #: what the format calls a nested mapping: "table" (TOML) or "mapping" (YAML, JSON)
    table: str = "mapping"

    def child(self, key: str | int, default: t.Any = REQUIRED) -> Where:
        if isinstance(key, int):
            return replace(self, path=f"{self.path}[{key}]", default=default)
        return replace(self, path=f"{self.path}.{key}" if self.path else key, default=default)

    def refuse(self, text: str) -> t.NoReturn:
        """Raise ``text`` about this table or key, prefixed with the file and the path."""
        where = f"{self.source}: {self.path}" if self.path else self.source
        raise ConfigError(f"{where}: {text}")

    def reject(self, text: str) -> t.NoReturn:
        """Raise "FILE: KEY text" about this key's value."""
        raise ConfigError(f"{self.source}: {self.path} {text}")

    def fail(self, value: t.Any, expected: str, fix: str | None = None) -> t.NoReturn:
        """Raise "KEY is VALUE but must be EXPECTED; FIX (or remove it for the default)"."""
        if not self.path:  # the whole file
            raise ConfigError(f"{self.source} holds {shown(value)} but must be {expected}; {fix}")
        if self.default is not REQUIRED:
            fix = f"{fix} (or {_removal(self.default)})" if fix else _removal(self.default)
        text = f"{self.source}: {self.path} is {shown(value)} but must be {expected}"
        raise ConfigError(f"{text}; {fix}" if fix else text)


def _removal(default: t.Any) -> str:
    """The fix of leaving a key out: what it then means."""
    if default is None:
        return "remove it to leave it unset"
    if is_dataclass(default) or isinstance(default, dict):
        return "remove it for the defaults"
    return f"remove it for the default, {literal(default)}"


class Rule(abc.ABC):
    """A constraint on one key's value; ``rule(value, where)`` returns the value to keep."""

    @property
    @abc.abstractmethod
    def expected(self) -> str:
        """What the value must be, completing "KEY must be ..."."""

    @abc.abstractmethod
    def __call__(self, value: t.Any, at: Where) -> t.Any: ...


def _is_number(value: t.Any, kind: type[int] | type[float]) -> bool:
    if isinstance(value, bool):  # a YAML 'true' is no count
        return False
    return isinstance(value, int if kind is int else (int, float))


@dataclass(frozen=True, slots=True)
class Interval(Rule):
    """A number in a range; ``kind`` int takes integers only, float any finite number.

    ``closed="right"`` leaves the low end out, as in scikit-learn: ``(low, high]``. Ints
    above :data:`MAX_INT` are refused, and so are NaN and the infinities. The value is
    kept as given: an int written for a float setting stays an int (and prints as one in
    the job spec's canonical JSON).
    """

    kind: type[int] | type[float]
    low: float
    high: float | None = None
    closed: t.Literal["both", "right"] = "both"
    fix: str = "choose a value in that range"

    @property
    def expected(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        bound = f"{'>' if self.closed == 'right' else '>='} {self.low}"
        return f"{noun} {bound}" + (f" and <= {self.high}" if self.high is not None else "")

    def __call__(self, value: t.Any, at: Where) -> t.Any:
        if not _is_number(value, self.kind):
            noun = "a whole number" if self.kind is int else "a number"
            at.fail(value, self.expected, f"write {noun}, unquoted")
        if isinstance(value, float) and not math.isfinite(value):
            at.fail(value, f"a finite {self.expected.removeprefix('a ')}", self.fix)
        if self.high is None and isinstance(value, int) and value > MAX_INT:
            at.fail(value, f"{self.expected} and <= {MAX_INT}", self.fix)
        too_low = value < self.low or (self.closed == "right" and value == self.low)
        if too_low or (self.high is not None and value > self.high):
            at.fail(value, self.expected, self.fix)
        return value


@dataclass(frozen=True, slots=True)
class Options(Rule):
    """One of a few strings; a near miss gets a did-you-mean."""

    values: tuple[str, ...]

    @property
    def expected(self) -> str:
        return f"one of {list(self.values)}"

    def __call__(self, value: t.Any, at: Where) -> t.Any:
        if isinstance(value, str) and value in self.values:
            return value
        close = did_you_mean(value, self.values)
        at.fail(value, self.expected, f"did you mean {close!r}?" if close else "choose one of them")


@dataclass(frozen=True, slots=True)
class Name(Rule):
    """A party, job or data set name: it becomes a folder and a certificate name."""

    expected: str = (
        "a name: letters, digits, '_', '.', '-', at most 63 characters, starting with a "
        "letter or digit"
    )

    def __call__(self, value: t.Any, at: Where) -> t.Any:
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            at.fail(value, self.expected, "rename it")
        return value


@dataclass(frozen=True, slots=True)
class Text(Rule):
    """A string, e.g. an address or a column name."""

    expected: str

    def __call__(self, value: t.Any, at: Where) -> t.Any:
        if not isinstance(value, str):
            at.fail(value, self.expected, "write it as a quoted string")
        return value


@dataclass(frozen=True, slots=True)
class FilePath(Rule):
    """A path, relative to the config file's folder (``Where.base``) unless absolute."""

    expected: str

    def __call__(self, value: t.Any, at: Where) -> t.Any:
        if not isinstance(value, str):
            at.fail(value, self.expected, "write it as a quoted string")
        return at.base / value if at.base is not None else Path(value)


@dataclass(frozen=True, slots=True)
class Boolean(Rule):
    """true or false; no 'yes', no 0 or 1."""

    expected: str = "true or false"

    def __call__(self, value: t.Any, at: Where) -> t.Any:
        if not isinstance(value, bool):
            at.fail(value, self.expected, "write true or false, unquoted")
        return value


@dataclass(frozen=True, slots=True)
class OrNone(Rule):
    """``rule``, or None (null in YAML and JSON; a key left out means the same)."""

    rule: Rule

    @property
    def expected(self) -> str:
        return self.rule.expected

    def __call__(self, value: t.Any, at: Where) -> t.Any:
        return None if value is None else self.rule(value, at)
