"""Tests for lianmo.models.encoding: one-hot categories, imputed numbers, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.impute import SimpleImputer  # type: ignore[import-untyped]
from sklearn.preprocessing import OneHotEncoder  # type: ignore[import-untyped]

from lianmo.errors import DataError
from lianmo.models.encoding import ImputeOneHot, encoder_from_dict

NAN = np.nan
VOCAB = ("a", "b", "c", "d")


def _table(rows: int = 300, seed: int = 0) -> np.ndarray:
    """Column 0 numbers with some missing, column 1 codes into VOCAB with some missing,
    column 2 numbers without missing."""
    rng = np.random.default_rng(seed)
    num = rng.normal(5.0, 2.0, rows)
    num[rng.random(rows) < 0.1] = NAN
    cat = rng.choice(4, size=rows, p=[0.5, 0.3, 0.15, 0.05]).astype(float)
    cat[rng.random(rows) < 0.08] = NAN
    return np.column_stack([num, cat, rng.normal(size=rows)])


def test_a_numeric_table_without_missing_cells_is_encoded_as_is() -> None:
    X = np.random.default_rng(2).normal(size=(50, 3))
    enc = ImputeOneHot.fit(X, ["x", "y", "z"], {})
    assert enc.is_identity and enc.output_names == ("x", "y", "z") and enc.categories == {}
    np.testing.assert_array_equal(enc.transform(X), X)


def test_equals_scikit_learns_imputers_and_one_hot_encoder() -> None:
    X = _table()
    enc = ImputeOneHot.fit(X, ["n", "c", "m"], {"c": VOCAB}, min_rows=1)
    out = enc.transform(X)
    assert not enc.is_identity
    # numbers: SimpleImputer(median, add_indicator=True), which adds an indicator only
    # for columns with missing training cells
    sk_num = SimpleImputer(strategy="median", add_indicator=True).fit_transform(X[:, [0, 2]])
    names = enc.output_names
    np.testing.assert_array_equal(out[:, names.index("n")], sk_num[:, 0])
    np.testing.assert_array_equal(out[:, names.index("m")], sk_num[:, 1])
    np.testing.assert_array_equal(out[:, names.index("n=<missing>")], sk_num[:, 2])
    # categories: SimpleImputer(constant "missing") + OneHotEncoder, one column per level
    texts = np.array([["missing"] if np.isnan(v) else [VOCAB[int(v)]] for v in X[:, 1]])
    onehot = OneHotEncoder(sparse_output=False).fit(texts)
    sk_cat = onehot.transform(texts)
    for j, level in enumerate(onehot.categories_[0]):
        name = "c=<missing>" if level == "missing" else f"c={level}"
        np.testing.assert_array_equal(out[:, names.index(name)], sk_cat[:, j])
    assert len(names) == 3 + len(onehot.categories_[0])  # n, its indicator, m: no <other>


def test_levels_are_the_most_frequent_codes_and_the_rest_is_other() -> None:
    X = _table(rows=1000)
    enc = ImputeOneHot.fit(X[:, [1]], ["c"], {"c": VOCAB}, max_levels=2)
    assert enc.output_names == ("c=a", "c=b", "c=<other>", "c=<missing>")
    out = enc.transform(X[:, [1]])
    np.testing.assert_array_equal(out.sum(axis=1), 1.0)  # exactly one level per row
    np.testing.assert_array_equal(out[:, 2], np.isin(X[:, 1], [2.0, 3.0]))
    # a level needs min_rows training rows: 'd' (about 5%) has fewer than 40
    rare = ImputeOneHot.fit(X[:, [1]], ["c"], {"c": VOCAB}, min_rows=40)
    assert rare.output_names == ("c=a", "c=b", "c=c", "c=<missing>")


def test_unseen_codes_and_untrained_missing_cells_go_to_other_or_to_no_level() -> None:
    train = np.array([[0.0], [0.0], [1.0], [2.0], [0.0], [1.0], [3.0]])
    vocab = ("x", "y", "z", "w")
    enc = ImputeOneHot.fit(train, ["c"], {"c": vocab}, min_rows=2)
    assert enc.output_names == ("c=x", "c=y", "c=<other>")  # 'z', 'w' once: other; no missing
    # code 4 (a category new at scoring, after the trained vocabulary) and a missing
    # cell (none in training) both go to <other>
    out = enc.transform(np.array([[4.0], [NAN], [2.0], [1.0]]))
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 0, 1], [0, 0, 1], [0, 1, 0]])
    # without an <other> level they encode as no level at all (scikit-learn's "ignore")
    closed = ImputeOneHot.fit(train, ["c"], {"c": vocab}, min_rows=1)
    assert closed.output_names == ("c=x", "c=y", "c=z", "c=w")
    np.testing.assert_array_equal(closed.transform(np.array([[4.0], [NAN]])), np.zeros((2, 4)))


def test_no_zero_one_column_covers_fewer_than_min_rows_training_rows() -> None:
    """A 0/1 column's gradient sums the residuals of exactly its rows: none is made for
    fewer than min_rows rows (the other level, the missing level, an indicator)."""
    codes = np.array([0.0] * 5 + [1.0] * 5 + [2.0, NAN])
    numbers = np.array([1.0] * 11 + [NAN])
    enc = ImputeOneHot.fit(np.column_stack([codes, numbers]), ["c", "n"],
                           {"c": ("x", "y", "z")}, min_rows=2)  # fmt: skip
    assert enc.output_names == ("c=x", "c=y", "n")
    # its rows get no level (or the median); the encoding still imputes at scoring
    np.testing.assert_array_equal(enc.transform(np.array([[2.0, NAN]])), [[0, 0, 1]])
    out = enc.transform(np.column_stack([codes, numbers]))
    assert (out[:, :2].sum(axis=0) >= 2).all()


def test_numbers_missing_only_at_scoring_get_the_median_and_no_indicator() -> None:
    enc = ImputeOneHot.fit(np.array([[1.0], [2.0], [10.0]]), ["n"], {})
    assert enc.is_identity
    np.testing.assert_array_equal(enc.transform(np.array([[NAN], [4.0]])), [[2.0], [4.0]])
    # a column with no value in training encodes to constants
    empty = ImputeOneHot.fit(np.array([[NAN], [NAN]]), ["n"], {}, min_rows=2)
    np.testing.assert_array_equal(empty.transform(np.array([[NAN], [3.0]])), [[0, 1], [3, 0]])


def test_round_trips_through_json_and_transforms_the_same() -> None:
    X = _table()
    enc = ImputeOneHot.fit(X[:200], ["n", "c", "m"], {"c": VOCAB}, max_levels=2)
    again = encoder_from_dict(json.loads(json.dumps(enc.to_dict())))
    assert again == enc and again.categories == {"c": VOCAB}
    np.testing.assert_array_equal(again.transform(X[200:]), enc.transform(X[200:]))


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.array([[-1.0]]), "not a category code"),
        (np.array([[0.5]]), "not a category code"),
        (np.array([[np.inf]]), "infinite"),
        (np.zeros((2, 2)), "has shape .* but the encoding has 1 columns"),
    ],
)
def test_bad_input_is_refused(X: np.ndarray, match: str) -> None:
    enc = ImputeOneHot.fit(np.array([[0.0], [1.0]]), ["c"], {"c": ("x", "y")})
    with pytest.raises(DataError, match=match):
        enc.transform(X)
    if X.shape[1] == 1:
        with pytest.raises(DataError, match=match):
            ImputeOneHot.fit(X, ["c"], {"c": ("x", "y")})


def test_fit_refuses_no_rows_and_unknown_kinds_are_refused() -> None:
    with pytest.raises(DataError, match="0 rows"):
        ImputeOneHot.fit(np.zeros((0, 1)), ["n"], {})
    with pytest.raises(DataError, match="unknown encoding kind 'woe'.*retrain"):
        encoder_from_dict({"kind": "woe"})
    with pytest.raises(DataError, match="malformed"):
        encoder_from_dict({"kind": "impute_onehot", "columns": [{"name": "n"}]})
    bad_level = {"name": "c", "type": "category", "vocabulary": ["x"], "levels": [3],
                 "other": False, "missing": False}  # fmt: skip
    with pytest.raises(DataError, match="levels .* must be distinct codes below its 1"):
        encoder_from_dict({"kind": "impute_onehot", "columns": [bad_level]})
