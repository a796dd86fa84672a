"""choose_features: the catalogue's offer, then the job's columns or exclude, by name."""

from __future__ import annotations

import typing as t

import pytest

from lianmo.data.feature_choice import choose_features
from lianmo.errors import ConfigError

HEADER = ["id", "age", "y", "income", "zip", "sex"]


def _choose(**kwargs: t.Any) -> tuple[str, ...]:
    args: dict[str, t.Any] = {"id_column": "id", "label_column": "y", "offered": None}
    return choose_features(HEADER, party="broker", dataset="credit", **{**args, **kwargs})


def test_default_is_every_column_but_id_and_label_in_file_order() -> None:
    assert _choose() == ("age", "income", "zip", "sex")
    assert _choose(label_column=None) == ("age", "y", "income", "zip", "sex")  # a host


def test_offer_then_choice() -> None:
    assert _choose(offered=["sex", "age", "income"]) == ("age", "income", "sex")
    assert _choose(offered=["sex", "age", "income"], exclude=["age"]) == ("income", "sex")
    assert _choose(columns=["sex", "age"]) == ("sex", "age")


def test_the_local_message_says_why_and_what_is_offered_the_public_one_does_not() -> None:
    with pytest.raises(ConfigError) as held_back:
        _choose(offered=["age", "income"], columns=["zip"])
    with pytest.raises(ConfigError) as missing:
        _choose(offered=["age", "income"], columns=["salary"])
    assert str(held_back.value) == (
        "party 'broker', data set 'credit', column 'zip': the job spec's columns names a "
        "column the data set does not offer to jobs (the catalogue holds it back; it offers "
        "age, income); the coordinator must name only offered feature columns"
    )
    assert "(the file has no such column; it offers age, income)" in str(missing.value)
    public = {str(e.value.public_text()).replace("'zip'", "'salary'") for e in (held_back, missing)}
    assert len(public) == 1 and "income" not in public.pop()


@pytest.mark.parametrize(
    ("offered", "message"),
    [
        (["age", "y"], "the catalogue's columns names 'y', the label column, which is never a "
         "feature; remove it"),
        (["age", "age"], "the catalogue's columns names 'age' more than once; list each column"),
        (["age", "salary"], "the catalogue's columns names 'salary', which the file does not "
         "have (it has id, age, y, income, zip, sex)"),
    ],
)  # fmt: skip
def test_a_bad_catalogue_offer_is_the_operators_to_fix(offered: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _choose(offered=offered)
    assert message in str(info.value)
    assert "[datasets.credit] columns in its party config" in str(info.value)
