"""Fuzz the job spec decoders: ``JobSpec.from_json`` and the YAML loader ``JobSpec.load``.

Whatever the bytes or the structure, decoding fails with :class:`ConfigError` only, and a
spec that loads round-trips through its canonical JSON with sane names and numbers.
Structured cases start from valid specs and mutate them (see ``strategies.mutated``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing as t
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lianmo.config import JobSpec
from lianmo.errors import ConfigError
from tests.fuzz.strategies import HUGE, mutated, values, write
from tests.test_config import _spec

FUZZ = settings(max_examples=250, deadline=None)
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"  # what the docs promise job, party, data set names


def _boost_spec() -> dict[str, t.Any]:
    model = {
        "type": "secureboost", "trees": 5, "depth": 3, "learning_rate": 0.3, "max_bins": 32,
        "min_child_weight": 1.0, "l2": 1.0, "gamma": 0.0, "subsample": 0.8, "colsample": 1.0,
        "early_stopping_rounds": 3, "objective": "binary", "class_weights": [1, 3.5],
        "key_bits": 2048,
    }  # fmt: skip
    raw = _spec(
        model=model,
        seed=7,
        validation={"share": 0.25, "stratify": True},
        alignment={"min_intersection": 10},
    )
    raw["parties"] = [p for p in raw["parties"] if p["role"] != "arbiter"]
    return raw


def _predict_spec() -> dict[str, t.Any]:
    model = {
        "type": "hetero_lr", "epochs": 2, "batch_size": 64, "learning_rate": 0.1,
        "lr_decay": 0.01, "l2": 0.001, "tol": 0.0, "key_bits": 3072,
    }  # fmt: skip
    return _spec(task="predict", model_job="j0", model=model, validation={"share": 0})


def _json(value: t.Any) -> bytes:
    try:
        return json.dumps(value).encode()
    except ValueError:
        return b"null"  # HUGE has no decimal form: JSON cannot carry it


SPECS = [_spec(), _boost_spec(), _predict_spec()]
specs = st.sampled_from(SPECS).flatmap(mutated)


def _check_spec(raw: t.Any) -> JobSpec | None:
    """Validate ``raw``; a spec that passes must round-trip through its canonical JSON."""
    try:
        spec = JobSpec.from_dict(raw)
    except ConfigError as exc:
        assert str(exc).startswith("job spec"), exc  # every refusal names where it is
        return None
    again = JobSpec.from_json(spec.to_json())
    assert again == spec and again.to_json() == spec.to_json()
    names = [spec.job_id, spec.model_job or "j0"]
    names += [n for p in spec.parties for n in (p.name, p.dataset or "d0")]
    assert all(re.fullmatch(NAME, n) for n in names), names
    assert all(_sane(v) for v in _leaves(dataclasses.asdict(spec)))
    return spec


def _leaves(value: t.Any) -> t.Iterator[t.Any]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _sane(value: t.Any) -> bool:
    """Numbers a spec may hold: finite, and ints that fit int64 (and print as JSON)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return not isinstance(value, int) or abs(value) < 2**63


@pytest.mark.parametrize("raw", SPECS)
def test_the_base_specs_are_valid(raw: dict[str, t.Any]) -> None:
    assert _check_spec(raw) is not None


@FUZZ
@given(specs)
@example(_spec(seed=HUGE))  # str(seed) raises: passed, then to_json crashed
@example(_spec(job_id=HUGE))  # the error message's repr() raised ValueError
@example(_spec(model={"learning_rate": math.nan}))  # NaN passed every bound
@example(_spec(model={"tol": math.inf}))
@example(_spec(job_id="j1\n"))  # '$' matched before the newline
@example({**_spec(), 1: 2, "x": 3})  # sorted() of int and str keys
@example(_boost_spec() | {"model": {"type": "secureboost", "class_weights": [HUGE, 1]}})
def test_mutated_job_specs_load_or_raise_config_error(raw: dict[str, t.Any]) -> None:
    _check_spec(raw)


@FUZZ
@given(st.one_of(st.binary(max_size=200), values.map(_json)))
@example(b"[" * 100_000)  # RecursionError in json
@example(b"\xff\xfe")
@example(b"NaN")
def test_arbitrary_job_spec_json_is_a_config_error(data: bytes) -> None:
    try:
        spec = JobSpec.from_json(data)
    except ConfigError:
        return
    assert JobSpec.from_json(spec.to_json()) == spec


@FUZZ
@given(specs)
def test_mutated_job_specs_decode_the_same_from_json(raw: dict[str, t.Any]) -> None:
    data = _json(raw)
    if data == b"null":
        return
    try:
        direct: JobSpec | None = JobSpec.from_dict(raw)
    except ConfigError:
        direct = None
    try:
        decoded: JobSpec | None = JobSpec.from_json(data)
    except ConfigError:
        decoded = None
    assert (direct is None) == (decoded is None)


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
@example("job_id: " + "1" * 5000)  # PyYAML's int() raised ValueError
@example("[" * 5000)  # RecursionError in the composer
@example("1: 2\na: 3\n")  # mixed int and str keys
@example("job_id: 0x" + "f" * 5000 + "\nparties: []\n")  # fine as hex, not as repr
@example("? [a]\n: 1\n")  # unhashable key
@example("a: &x [*x]\n")  # a list that contains itself
@example(b"\xff\xfe")
def test_arbitrary_job_spec_yaml_is_a_config_error(files: Path, text: str | bytes) -> None:
    try:
        JobSpec.load(write(files / "job.yaml", text))
    except ConfigError as exc:
        assert str(exc)


@FUZZ
@given(specs)
def test_mutated_job_spec_yaml_loads_as_its_mapping_validates(
    files: Path, raw: dict[str, t.Any]
) -> None:
    try:
        text = yaml.safe_dump(raw)
    except ValueError:
        return  # HUGE has no decimal form
    try:
        loaded: JobSpec | None = JobSpec.load(write(files / "job.yaml", text))
    except ConfigError:
        loaded = None
    if loaded is not None:
        assert JobSpec.from_json(loaded.to_json()) == loaded
