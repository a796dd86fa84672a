"""The fuzz strategies themselves: no drawn value is an object that other cases share."""

from __future__ import annotations

import typing as t

import pytest
from hypothesis import find, settings

from tests.fuzz.strategies import INTERESTING, scalars


@pytest.mark.parametrize("empty", [[], {}], ids=["list", "dict"])
def test_scalars_give_a_fresh_copy_of_each_shared_container(
    empty: list[t.Any] | dict[t.Any, t.Any],
) -> None:
    # mutated() appends to the lists and dicts it draws. When scalars handed out the very
    # [] and {} in INTERESTING, one case's edits leaked into every later case in the process:
    # CI saw hypothesis report "Inconsistent data generation" and a list that contained itself.
    shared = next(v for v in INTERESTING if type(v) is type(empty))
    drawn = find(
        scalars,
        lambda v: type(v) is type(empty) and v == empty,
        settings=settings(database=None, max_examples=10_000),
    )
    assert drawn == shared
    assert drawn is not shared
