"""The one generic reader: a config dataclass from a parsed mapping, by its fields' rules.

Each field declares its rule with :func:`checked` and its default the dataclass way, so
both sit in one place. :func:`read` refuses unknown and missing keys, checks every key
that is present with its rule, and leaves an absent key to the dataclass default. A field
may live in a nested table of the file (``checked(rule, key="tls.cert")``).
:func:`plain` is the inverse: the mapping a dataclass is hashed and sent as.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, is_dataclass

from lianmo.config._rules import REQUIRED, Rule, Where, did_you_mean, shown

T = t.TypeVar("T")
_RULE = "lianmo.rule"
_KEY = "lianmo.key"
_OPTIONAL = "lianmo.optional"


def checked(rule: Rule, *, key: str | None = None, optional: bool = False) -> dict[str, t.Any]:
    """Field metadata: the field is read from ``key`` (default: its name) under ``rule``.

    ``optional``: a setting added after specs were first hashed; :func:`plain` leaves it
    out while it holds its default, so every spec written before keeps its digest.
    """
    meta: dict[str, t.Any] = {_RULE: rule, _OPTIONAL: True} if optional else {_RULE: rule}
    return meta if key is None else {**meta, _KEY: key}


def plain(value: t.Any) -> t.Any:
    """``value`` as plain data, as :func:`dataclasses.asdict` gives it, but without the
    ``optional`` fields that hold their defaults."""
    if is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in fields(value):
            item = getattr(value, f.name)
            if f.metadata.get(_OPTIONAL) and item == f.default:
                continue
            out[f.name] = plain(item)
        return out
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class _Key:
    """A key of the file that maps to one dataclass field."""

    name: str  # the field's name
    rule: Rule
    default: t.Any  # the dataclass default (made once, for messages), or REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self, table: str) -> str:  # as _Table.describe
        return self.rule.expected


@dataclass(frozen=True, slots=True)
class _Table:
    """A table of the file: its keys in field order, some of them tables themselves."""

    keys: dict[str, _Key | _Table] = field(default_factory=dict)

    @property
    def required(self) -> bool:
        return any(k.required for k in self.keys.values())

    @property
    def default(self) -> t.Any:
        return REQUIRED if self.required else {}

    def describe(self, table: str) -> str:
        return f"a {table} with keys {', '.join(self.keys)}"


_LAYOUTS: dict[type[t.Any], _Table] = {}


def _layout(cls: type[t.Any]) -> _Table:
    if cls not in _LAYOUTS:
        _LAYOUTS[cls] = _table_of(cls)
    return _LAYOUTS[cls]


def _table_of(cls: type[t.Any]) -> _Table:
    top = _Table()
    for f in fields(cls):
        if _RULE not in f.metadata:
            continue  # not read from the file (a data set's name is its table's name)
        default = (
            f.default
            if f.default is not MISSING
            else f.default_factory()
            if f.default_factory is not MISSING
            else REQUIRED
        )
        *tables, leaf = f.metadata.get(_KEY, f.name).split(".")
        table = top
        for name in tables:
            table = t.cast(_Table, table.keys.setdefault(name, _Table()))
        table.keys[leaf] = _Key(f.name, f.metadata[_RULE], default)
    return top


def read(cls: type[T], raw: t.Any, at: Where, *, also: t.Iterable[str] = (), **given: t.Any) -> T:
    """``cls(**given, **the checked values of raw)``; ``also`` names keys to allow and skip."""
    values = dict(given)
    _read_table(_layout(cls), raw, at, values, tuple(also))
    return cls(**values)


def _read_table(
    table: _Table, raw: t.Any, at: Where, values: dict[str, t.Any], also: tuple[str, ...]
) -> None:
    if not isinstance(raw, dict):
        at.fail(raw, table.describe(at.table), f"write it as a {at.table}")
    _check_keys(at, raw, table, also)
    for key, node in table.keys.items():
        if key not in raw:
            continue  # the dataclass default
        if isinstance(node, _Table):
            _read_table(node, raw[key], at.child(key, node.default), values, ())
        else:
            values[node.name] = node.rule(raw[key], at.child(key, node.default))


def _check_keys(at: Where, raw: dict[t.Any, t.Any], table: _Table, also: tuple[str, ...]) -> None:
    """Refuse keys the table does not have (with a did-you-mean) and required keys missing."""
    allowed = [*table.keys, *also]
    unknown = sorted(set(raw) - set(allowed), key=shown)  # YAML keys need not be str
    if unknown:
        guesses = {shown(k): g for k in unknown if (g := did_you_mean(k, allowed))}
        if len(unknown) == 1:
            hint = "".join(f" (did you mean {g!r}?)" for g in guesses.values())
        else:
            pairs = ", ".join(f"{g!r} for {k}" for k, g in guesses.items())
            hint = f" (did you mean {pairs}?)" if pairs else ""
        at.refuse(
            f"unknown field(s) [{', '.join(map(shown, unknown))}]{hint}; "
            f"allowed fields are {sorted(allowed)}"
        )
    missing = [k for k, node in table.keys.items() if node.required and k not in raw]
    if missing:
        wanted = " and ".join(f"{k} ({table.keys[k].describe(at.table)})" for k in missing)
        at.refuse(f"missing required field(s) {missing}; add {wanted}")


@dataclass(frozen=True, slots=True)
class Section(Rule, t.Generic[T]):
    """A nested mapping read as the dataclass ``cls``, then checked as a whole."""

    cls: type[T]
    check: Callable[[T, Where], None] | None = None

    @property
    def expected(self) -> str:
        return _layout(self.cls).describe("mapping")

    def __call__(self, value: t.Any, at: Where) -> T:
        spec = read(self.cls, value, at)
        if self.check is not None:
            self.check(spec, at)
        return spec


@dataclass(frozen=True, slots=True)
class ListOf(Rule):
    """A list, each item under ``item`` (at ``KEY[i]``); kept as a tuple."""

    item: Rule
    expected: str

    def __call__(self, value: t.Any, at: Where) -> tuple[t.Any, ...]:
        if not isinstance(value, list):
            at.fail(value, self.expected, "write it as a list")
        return tuple(self.item(v, at.child(i)) for i, v in enumerate(value))


@dataclass(frozen=True, slots=True)
class TableOf(Rule, t.Generic[T]):
    """A table of named tables (``[datasets.NAME]``), each read as ``cls`` with its name."""

    cls: type[T]
    name: Rule
    expected: str

    def __call__(self, value: t.Any, at: Where) -> dict[str, T]:
        if not isinstance(value, dict):
            at.fail(value, self.expected, f"write it as {at.table}s [{at.path}.NAME]")
        out = {}
        for key, entry in value.items():
            self.name(key, Where(at.source, f"{at.path} key"))
            out[key] = read(self.cls, entry, at.child(key), name=key)
        return out
